"""Separate virtual environments for benchmark peers (never the project's own environment).

``ensure_venv(root, name, packages)`` creates ``root/name`` with ``python3 -m venv`` and installs the
pinned ``packages`` once (a marker file records what was installed); returns its python.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def ensure_venv(root: Path, name: str, packages: list[str]) -> Path:
    """The python of a venv holding ``packages`` (created and installed on first use)."""
    venv = root / name
    python = venv / "bin" / "python"
    marker = venv / ".ctloop-bench-packages"
    wanted = "\n".join(sorted(packages))
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    print(f"installing {' '.join(packages)} into {venv} (once)", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    marker.write_text(wanted)
    return python
