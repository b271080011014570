"""Drift on held-out synthetic streams: real shifts flagged per feature, clean streams never flagged."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ctloop.config import DriftConfig
from ctloop.datagen import DriftSpec
from ctloop.drift import DriftMonitor, Reference
from ctloop.errors import DriftError, EventError
from tests.helpers_drift import FEATURES, START, columns, reference_profile, stream

pytestmark = pytest.mark.unit

# what DriftSpec's covariate shift moves (tenure_months, num_products and plan are untouched)
SHIFTED = {"age", "income", "balance", "credit_score", "txn_count_30d", "avg_txn_amount", "days_since_login",
           "region", "channel"}


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference.from_profile(reference_profile())


def run(monitor: DriftMonitor, frame, batch: int = 700) -> list:  # type: ignore[no-untyped-def]
    cols, evals = columns(frame), []
    for a in range(0, len(frame), batch):
        part = {k: v[a : a + batch] for k, v in cols.items()}
        evals += monitor.ingest(part, min(batch, len(frame) - a))
    return evals


def test_clean_streams_flag_nothing_across_50_seeds(reference: Reference) -> None:
    cfg = DriftConfig()  # the default window (2000 rows, K=2, calibrated thresholds)
    monitor = DriftMonitor(reference, cfg)
    flagged, windows, above = [], 0, 0
    for seed in range(50):
        m = monitor
        m.restart()  # fresh windows, same calibrated thresholds
        day = START + dt.timedelta(days=40 + seed)
        for ev in run(m, stream(5 * cfg.window_rows, seed=seed, day=day)):
            windows += 1
            above += sum(s.above for s in ev.features)
            flagged += [(seed, f) for f in ev.drifted]
    assert windows == 250
    assert flagged == []
    assert above <= 20  # single windows above threshold are rare and never two in a row


def test_covariate_shift_flags_exactly_the_shifted_features(reference: Reference) -> None:
    cfg = DriftConfig()
    monitor = DriftMonitor(reference, cfg)
    day = START + dt.timedelta(days=60)
    evals = run(monitor, stream(3 * cfg.window_rows, seed=7, day=day, drift=DriftSpec(start=START)))
    assert [e.drifted for e in evals][0] == []  # K=2: one window is not enough
    assert set(evals[1].drifted) == SHIFTED
    assert set(evals[-1].drifted) == SHIFTED
    assert evals[-1].drift_share == pytest.approx(len(SHIFTED) / len(FEATURES))


@pytest.mark.parametrize("feature", ["age", "credit_score", "tenure_months"])
def test_single_numeric_shift_is_flagged_alone(reference: Reference, feature: str) -> None:
    monitor = DriftMonitor(reference, DriftConfig())
    frame = stream(4000, seed=11, day=START + dt.timedelta(days=70))
    frame[feature] = frame[feature] + 0.5 * frame[feature].std()
    evals = run(monitor, frame)
    assert evals[-1].drifted == [feature]


def test_unseen_category_and_missing_values_are_flagged_alone(reference: Reference) -> None:
    monitor = DriftMonitor(reference, DriftConfig())
    frame = stream(4000, seed=12, day=START + dt.timedelta(days=71))
    rng = np.random.default_rng(0)
    frame.loc[rng.random(len(frame)) < 0.2, "region"] = "mars"
    frame.loc[rng.random(len(frame)) < 0.3, "tenure_months"] = np.nan
    last = run(monitor, frame)[-1]
    assert sorted(last.drifted) == ["region", "tenure_months"]
    by = {s.feature: s for s in last.features}
    assert by["region"].unseen_share == pytest.approx(0.2, abs=0.03)
    assert by["tenure_months"].missing_share_change == pytest.approx(0.3, abs=0.03)
    assert by["plan"].unseen_share == 0.0


def test_min_rows_and_sliding_windows(reference: Reference) -> None:
    cfg = DriftConfig(window_rows=2000, slide_rows=500, min_rows=1000, consecutive_windows=1)
    monitor = DriftMonitor(reference, cfg)
    frame = stream(3000, seed=13, day=START + dt.timedelta(days=72), drift=DriftSpec(start=START))
    evals = run(monitor, frame, batch=333)
    assert [e.rows for e in evals] == [1000, 1500, 2000, 2000, 2000]  # the 500-row window is below min_rows
    assert "age" in evals[0].drifted
    assert monitor.thresholds["age"] < DriftMonitor(reference, DriftConfig(window_rows=500)).thresholds["age"]


def test_fixed_and_per_feature_thresholds(reference: Reference) -> None:
    cfg = DriftConfig(thresholds="fixed", psi_threshold=0.3, feature_thresholds={"age": 0.01})
    m = DriftMonitor(reference, cfg)
    assert m.thresholds["age"] == 0.01 and m.thresholds["income"] == 0.3
    with pytest.raises(DriftError, match="shoe_size"):
        DriftMonitor(reference, DriftConfig(feature_thresholds={"shoe_size": 0.1}))


def test_prediction_drift_against_label_balance(reference: Reference) -> None:
    cfg = DriftConfig(window_rows=1000, min_rows=500, consecutive_windows=2)
    base = float(reference.label_balance["1"])
    clean = DriftMonitor(reference, cfg)
    rng = np.random.default_rng(3)
    scores = clean.ingest_predictions(rng.random(4000) < base)
    assert len(scores) == 4 and not any(s.drifted for s in scores)
    shifted = DriftMonitor(reference, cfg)
    scores = shifted.ingest_predictions(np.clip(rng.normal(min(base + 0.3, 0.95), 0.05, 3000), 0, 1))
    assert [s.drifted for s in scores] == [False, True, True]
    with pytest.raises(EventError, match="predictions"):
        shifted.ingest_predictions(np.array([0.2, 3.0]))


def test_config_rejects_a_slide_that_does_not_divide_the_window() -> None:
    from ctloop.config import parse_config
    from ctloop.errors import ConfigError

    with pytest.raises(ConfigError, match="drift.slide_rows: must divide window_rows"):
        parse_config({"name": "m", "data": {"source": "d"},
                      "drift": {"window_rows": 2000, "slide_rows": 300}})
    with pytest.raises(ConfigError, match="drift.min_rows: must be <= window_rows"):
        parse_config({"name": "m", "data": {"source": "d"}, "drift": {"window_rows": 200}})
