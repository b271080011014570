"""Shared test helpers: example projects on tiny data, free ports, required binaries."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ctloop.config import ProjectConfig, load_config
from ctloop.datagen import DriftSpec, write_stream
from ctloop.project import init_project

# Small test models train far faster single-threaded, and KFP's subprocess steps inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

START = dt.date(2026, 1, 1)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    """Path of a binary the test needs: fails under CI=true when missing, skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"required binary {name!r} is not installed (.ci/run must install it)")
        pytest.skip(f"{name!r} not installed")
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_project(
    root: Path,
    days: int = 10,
    rows_per_day: int = 300,
    seed: int = 0,
    drift_from: dt.date | None = None,
    edit: Callable[[str], str] | None = None,
) -> Path:
    """Create an example project with generated data under ``root``; return its ctloop.yaml."""
    init_project(root)
    cfg = root / "ctloop.yaml"
    text = cfg.read_text().replace("window_days: 14", f"window_days: {days}")
    text = text.replace("max_iter: 150", "max_iter: 60")
    if edit:
        text = edit(text)
    cfg.write_text(text)
    write_stream(root / "data", START, days, seed, rows_per_day, DriftSpec(drift_from))
    return cfg


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Path of a ready example project's ctloop.yaml (10 days × 300 rows)."""
    return make_project(tmp_path / "proj")


@pytest.fixture
def cfg(project: Path) -> ProjectConfig:
    """The loaded config of :func:`project`."""
    return load_config(project)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the ``ctloop`` CLI in a subprocess (the real entry point)."""
    # the environment as Python sees it, without a terminal width: under pytest the process environment
    # can carry COLUMNS=80 that os.environ does not show, and piped output must not wrap
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "ctloop.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to prove a folder did not change."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real S3 API server (moto, server mode) on 127.0.0.1 for the whole session; the AWS environment
    points at it. Use ``s3_server.new_bucket()`` for a fresh bucket per test."""
    from tests.helpers_s3 import moto_server

    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.fail("moto[server] is not installed (pip install -e '.[test]')")
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as srv:
        yield srv
