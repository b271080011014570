"""QualityMonitor: the realized window follows the serving version and survives a reopen of the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import parse_config
from ctloop.quality.monitor import QualityMonitor, duration_seconds, open_store
from ctloop.quality.store import Label

pytestmark = pytest.mark.unit
T0 = 1_800_000_000.0


def _monitor(tmp_path: Path, window: int = 3) -> QualityMonitor:
    cfg = parse_config({"name": "m", "data": {"source": str(tmp_path)},
                        "monitoring": {"labels": {"store": str(tmp_path / "p.sqlite")},
                                       "performance": {"window_rows": max(window, 10)}}})
    return QualityMonitor(cfg, open_store(cfg), CollectorRegistry())


def test_window_follows_the_serving_version_and_reloads_from_the_store(tmp_path: Path) -> None:
    mon = _monitor(tmp_path)
    mon.set_version(1, {"accuracy": 0.9, "note": "x"})  # type: ignore[dict-item]
    mon.record(["a", "b"], 1, np.array([0.9, 0.2]), np.array([1, 0]), when=T0)
    mon.record(["c"], 2, np.array([0.7]), np.array([1]), when=T0)  # a canary's prediction
    mon.apply_labels([Label("a", 1, T0 + 1), Label("b", 1, T0 + 1), Label("c", 0, T0 + 1)], now=T0 + 2)
    snap = mon.snapshot()
    assert (snap.version, snap.labelled, snap.realized["accuracy"]) == (1, 2, 0.5)
    assert snap.reference == {"accuracy": 0.9}
    mon.set_version(2, {})
    snap2 = mon.snapshot()
    assert (snap2.version, snap2.labelled, snap2.realized["accuracy"]) == (2, 1, 0.0)
    mon.store.close()
    again = _monitor(tmp_path)  # a restart: the window comes back from the store
    again.set_version(1, {})
    assert again.snapshot().labelled == 2 and again.coverage() == 1.0


def test_durations() -> None:
    assert duration_seconds("30d") == 30 * 86400 and duration_seconds("1h30m") == 5400
