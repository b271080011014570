"""Nothing changed, no retrain: compare a run's inputs with the champion's lineage before training."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ctloop.config import ProjectConfig
from ctloop.errors import CtloopError
from ctloop.lineage import code_version
from ctloop.registry import Registry


def _window_hash(cfg: ProjectConfig, cutoff_date: str) -> str | None:
    from ctloop.data import read_window

    cutoff = dt.date.fromisoformat(cutoff_date) if cutoff_date else None
    snap = read_window(cfg.data.source, cfg.data.window_days, cutoff, cfg.data.allow_missing_days,
                       target=cfg.data.target)
    return snap.content_hash


def unchanged_reason(cfg: ProjectConfig, cutoff_date: str = "") -> str | None:
    """Why a run would retrain the champion on identical inputs, or ``None`` when something changed.

    Identical means: the data window's content hash, the config hash and the code version all equal
    those recorded in the champion's lineage. Any error reading the window (bad data, no champion)
    returns ``None`` so that the pipeline runs and reports it the usual way.
    """
    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    try:
        champ = reg.alias("champion")
        if champ is None:
            return None
        meta: dict[str, Any] = reg.get(champ).metadata
        if meta.get("config_hash") != cfg.config_hash() or meta.get("code_version") != code_version():
            return None
        recorded = (meta.get("data") or {}).get("content_hash")
        if not recorded or _window_hash(cfg, cutoff_date) != recorded:
            return None
    except (CtloopError, ValueError, OSError):
        return None
    return (f"unchanged: the data window (sha256 {str(recorded)[:12]}), config and code equal champion "
            f"v{champ}'s; nothing to retrain (use --force to retrain anyway)")
