"""Config-derived files (``ctloop manifests render``): one source of truth for every rendered artifact.

Each renderer takes the project config and returns ``{relative path: file text}``. Features register
their renderer in :data:`RENDERERS`; :func:`render_all` writes them all under one folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ctloop.config import ProjectConfig

Renderer = Callable[[ProjectConfig], dict[str, str]]
Finalizer = Callable[[ProjectConfig, dict[str, str]], dict[str, str]]


def _renderers() -> list[Renderer]:
    """The registered renderers (imported lazily so importing this module stays cheap)."""
    from ctloop.manifests import render_cluster
    from ctloop.serving.isvc import render_inferenceservice
    from ctloop.triggers.rules import render_trigger_files

    return [render_inferenceservice, render_trigger_files, render_cluster]


def _finalizers() -> list[Finalizer]:
    """Renderers that run last and see every other rendered file (kustomization.yaml files)."""
    from ctloop.manifests import render_kustomizations

    return [render_kustomizations]


def render_files(cfg: ProjectConfig) -> dict[str, str]:
    """Every rendered file, keyed by path relative to the output folder."""
    out: dict[str, str] = {}
    for r in _renderers():
        for path, text in r(cfg).items():
            if path in out:
                raise ValueError(f"two renderers produce {path!r}")
            out[path] = text
    for f in _finalizers():
        for path, text in f(cfg, dict(out)).items():
            if path in out:
                raise ValueError(f"a finalizer overwrites rendered file {path!r}")
            out[path] = text
    return dict(sorted(out.items()))


def render_all(cfg: ProjectConfig, out_dir: str | Path) -> list[Path]:
    """Write every rendered file under ``out_dir``; return the paths written."""
    root = Path(out_dir)
    written = []
    for rel, text in render_files(cfg).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        written.append(p)
    return written
