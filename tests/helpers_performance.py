"""Shared helpers for the performance-alert tests: a trigger project with ``monitoring.performance``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.helpers_triggers import trigger_project


def performance_project(root: Path, performance: dict[str, Any] | None = None, **triggers: Any) -> Path:
    """:func:`trigger_project` plus ``monitoring.performance`` settings (default: min 0.7, max_drop 0.05,
    min_labelled 100, alert_for 2s)."""
    path = trigger_project(root, **triggers)
    doc = yaml.safe_load(path.read_text())
    doc["monitoring"] = {"performance": {"min": 0.7, "max_drop": 0.05, "min_labelled": 100, "alert_for": "2s",
                                         **(performance or {})}}
    path.write_text(yaml.safe_dump(doc))
    return path
