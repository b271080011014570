"""Mergeable drift counts: per-bin counters on an injected registry, bounded labels, versions never mix."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ctloop.config import DriftConfig
from ctloop.drift import DriftMonitor, Reference
from ctloop.drift.stats import proportions
from ctloop.watcher.fleet import FleetCounts, threshold_terms
from ctloop.watcher.metrics import WatcherMetrics
from tests.helpers_drift import columns, reference_profile, stream

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference.from_profile(reference_profile())


def _cfg(**kw: object) -> DriftConfig:
    return DriftConfig(**{"window_rows": 400, "min_rows": 100, "bootstrap_samples": 200, **kw})  # type: ignore[arg-type]


def _bins(reg: CollectorRegistry, version: str) -> dict[tuple[str, str], float]:
    out = {}
    for fam in reg.collect():
        for s in fam.samples:
            if s.name == "ctloop_drift_bin_rows_total" and s.labels["version"] == version:
                out[(s.labels["feature"], s.labels["bin"])] = s.value
    return out


def test_bin_counters_equal_the_batch_counts(reference: Reference) -> None:
    reg = CollectorRegistry()
    fleet = FleetCounts(reg, "churn")
    mon = DriftMonitor(reference, _cfg())
    fleet.follow(3, mon)
    assert set(_bins(reg, "3").values()) == {0.0}  # every bin exported from the start, at zero
    frame = stream(700, seed=5)
    for a in range(0, 700, 70):  # several batches, crossing window boundaries
        mon.ingest(columns(frame.iloc[a : a + 70]), 70)
    want = reference.count_columns(columns(frame), 700)
    got = _bins(reg, "3")
    # bounded cardinality: exactly the profile's bins, the same ids in every replica
    assert len(got) == int(reference.n_bins.sum())
    for f, name in enumerate(reference.features):
        for b in range(int(reference.n_bins[f])):
            assert got[(name, str(b))] == want[f, b]
    assert reg.get_sample_value("ctloop_drift_rows_total", {"model": "churn", "version": "3"}) == 700
    share = reg.get_sample_value("ctloop_drift_reference_share",
                                 {"model": "churn", "version": "3", "feature": reference.features[0], "bin": "0"})
    assert share == proportions(reference.counts)[0, 0]
    assert reg.get_sample_value("ctloop_drift_reference_rows", {"model": "churn", "version": "3"}) == reference.rows


def test_champion_change_stops_old_counters_and_never_mixes(reference: Reference) -> None:
    reg = CollectorRegistry()
    fleet = FleetCounts(reg, "churn")
    old = DriftMonitor(reference, _cfg())
    fleet.follow(1, old)
    old.ingest(columns(stream(50, seed=1)), 50)
    new = DriftMonitor(reference, _cfg())
    fleet.follow(2, new)
    assert _bins(reg, "1") == {}  # the old version is no longer exported
    old.ingest(columns(stream(50, seed=2)), 50)  # a late batch counted by the old monitor
    assert set(_bins(reg, "2").values()) == {0.0}
    new.ingest(columns(stream(30, seed=3)), 30)
    assert reg.get_sample_value("ctloop_drift_rows_total", {"model": "churn", "version": "2"}) == 30
    assert b'version="1"' not in generate_latest(reg)


def test_threshold_terms_reproduce_the_window_threshold(reference: Reference) -> None:
    cfg = _cfg(feature_thresholds={reference.features[1]: 0.3})
    mon = DriftMonitor(reference, cfg)
    coef, floor = threshold_terms(mon)
    x = 1 / cfg.window_rows + 1 / reference.rows
    at_window = np.maximum(floor, coef * x)
    np.testing.assert_allclose(at_window, list(mon.thresholds.values()), rtol=1e-12)
    assert coef[1] == 0 and floor[1] == 0.3  # a fixed threshold does not scale with rows
    assert coef[0] > 0 and floor[0] == cfg.min_effect
    # a window with more rows gets a lower calibrated threshold, never below the floor
    assert max(floor[0], coef[0] * (1 / 4000 + 1 / reference.rows)) < at_window[0]
    js = DriftMonitor(reference, _cfg(method="js"))
    c_js, f_js = threshold_terms(js)
    np.testing.assert_allclose(np.maximum(f_js, c_js * np.sqrt(x)), list(js.thresholds.values()), rtol=1e-12)


def test_watcher_metrics_carry_the_fleet_collector_on_the_injected_registry(reference: Reference) -> None:
    reg = CollectorRegistry()
    metrics = WatcherMetrics(reg, "churn")
    metrics.fleet.follow(7, DriftMonitor(reference, _cfg()))
    assert reg.get_sample_value("ctloop_drift_rows_total", {"model": "churn", "version": "7"}) == 0
    assert metrics.fleet.snapshot() is not None
