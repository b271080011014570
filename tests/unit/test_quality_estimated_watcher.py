"""The watcher's quality monitor exports the label-free estimate (source="estimated", with a band) from
the serving version's calibration, and the watcher's trigger service evaluates the performance alert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.quality.calibration import Calibration
from ctloop.quality.estimate import estimate_window
from ctloop.quality.monitor import QualityMonitor, open_store
from ctloop.quality.store import Label
from tests.helpers_performance import performance_project

pytestmark = pytest.mark.unit
CAL = Calibration(x=[0.0, 0.5, 1.0], y=[0.1, 0.4, 0.95], rows=100)


def _monitor(tmp_path: Path, **perf: object) -> tuple[QualityMonitor, CollectorRegistry]:
    cfg = load_config(performance_project(tmp_path / "p", {"min_labelled": 50, "estimated_window_rows": 80,
                                                           **perf}))
    reg = CollectorRegistry()
    return QualityMonitor(cfg, open_store(cfg), reg), reg


def test_estimate_follows_the_last_window_of_predictions(tmp_path: Path) -> None:
    mon, reg = _monitor(tmp_path)
    mon.set_version(3, {"accuracy": 0.8}, CAL)
    p = np.linspace(0.01, 0.99, 40)
    mon.record([f"a{i}" for i in range(40)], 3, p, (p >= 0.5).astype(int))
    assert mon.snapshot().estimated == {}  # fewer than min_labelled predictions: no estimate yet
    assert reg.get_sample_value("ctloop_model_performance", {"model": "churn", "version": "3",
                                                             "metric": "accuracy", "source": "estimated"}) is None
    q = np.random.default_rng(0).random(100)
    mon.record([f"b{i}" for i in range(20)], 3, q[:20], (q[:20] >= 0.5).astype(int), when=2e9)
    mon.record([f"b{i}" for i in range(20, 100)], 3, q[20:], (q[20:] >= 0.5).astype(int), when=2e9 + 10)
    snap = mon.snapshot()
    # the newest estimated_window_rows (80) predictions of v3, calibrated with its profile's calibration
    want = estimate_window(q[-80:], CAL)
    assert snap.estimated["accuracy"] == pytest.approx(want.values["accuracy"], abs=1e-4)
    assert snap.estimated["roc_auc"] == pytest.approx(want.values["roc_auc"], abs=1e-3)
    lo, hi = snap.estimated_band["accuracy"]
    assert lo < snap.estimated["accuracy"] < hi
    labels = {"model": "churn", "version": "3", "metric": "accuracy"}
    assert reg.get_sample_value("ctloop_model_performance", {**labels, "source": "estimated"}) == \
        pytest.approx(snap.estimated["accuracy"])
    assert reg.get_sample_value("ctloop_model_performance_band", {**labels, "bound": "low"}) == pytest.approx(lo)
    assert mon.status()["estimated"]["accuracy"] == pytest.approx(snap.estimated["accuracy"])
    # labels arriving change the realized numbers, never the estimate
    res = mon.apply_labels([Label(f"b{i}", 1, 2e9 + 100) for i in range(60)])
    assert res.counts["matched"] == 60
    after = mon.snapshot()
    assert after.estimated == snap.estimated and after.labelled == 60


def test_without_calibration_the_raw_scores_are_used(tmp_path: Path) -> None:
    mon, _reg = _monitor(tmp_path)
    mon.set_version(1, {})
    q = np.random.default_rng(1).random(80)
    mon.record([f"c{i}" for i in range(80)], 1, q, (q >= 0.5).astype(int), when=2e9)
    assert mon.snapshot().estimated["accuracy"] == pytest.approx(
        estimate_window(q, None).values["accuracy"], abs=1e-4)


def test_watcher_service_wires_the_embedded_performance_evaluator(tmp_path: Path) -> None:
    from ctloop.watcher.server import build_service

    cfg = load_config(performance_project(tmp_path / "p"))
    _app, svc = build_service(cfg, CollectorRegistry(), triggers=True)
    try:
        assert svc is not None and svc.performance_evaluator is not None
        snap = svc.performance_evaluator.read()
        assert snap.model == "churn" and snap.version is None  # no champion yet: nothing can fire
        assert svc.performance_evaluator.evaluate(__import__("datetime").datetime.now()) == []
    finally:
        svc.stop()
