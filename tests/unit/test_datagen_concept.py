"""Pure concept drift in the synthetic stream: P(label | inputs) changes, the inputs do not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctloop.cli import app
from ctloop.datagen import CATEGORICAL, NUMERIC, TARGET, DriftSpec, generate_day
from ctloop.drift.stats import psi
from ctloop.model import load_model
from ctloop.profile import compute_profile
from ctloop.project import example_schema
from ctloop.train import train_model

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 3, 1)
CONCEPT = DriftSpec(concept_start=DAY)


def _days(first: dt.date, n: int, rows: int, drift: DriftSpec | None = None) -> pd.DataFrame:
    return pd.concat([generate_day(first + dt.timedelta(days=i), rows, 0, drift) for i in range(n)],
                     ignore_index=True)


def _psi_by_feature(reference: pd.DataFrame, window: pd.DataFrame) -> dict[str, float]:
    ref = compute_profile(reference, NUMERIC, list(CATEGORICAL), TARGET, duplicates=False)
    cur = compute_profile(window, NUMERIC, list(CATEGORICAL), TARGET, reference=ref, duplicates=False)
    out = {c: float(psi(np.array(ref.numeric[c].counts), np.array(cur.numeric[c].counts))) for c in NUMERIC}
    out |= {c: float(psi(np.array(ref.categorical[c].counts), np.array(cur.categorical[c].counts)))
            for c in CATEGORICAL}
    return out


def test_concept_drift_keeps_inputs_changes_labels() -> None:
    before = generate_day(DAY - dt.timedelta(days=1), 2000, 0, CONCEPT)
    pd.testing.assert_frame_equal(before, generate_day(DAY - dt.timedelta(days=1), 2000, 0))
    after, clean = generate_day(DAY, 2000, 0, CONCEPT), generate_day(DAY, 2000, 0)
    inputs = [c for c in clean.columns if c != TARGET]
    pd.testing.assert_frame_equal(after[inputs], clean[inputs])  # the very same inputs
    assert (after[TARGET] != clean[TARGET]).mean() > 0.3  # a different rule for the label


def test_concept_drift_psi_flat_where_covariate_shift_is_not() -> None:
    reference = _days(DAY - dt.timedelta(days=7), 7, 500)
    concept = _psi_by_feature(reference, _days(DAY, 3, 700, CONCEPT))
    assert max(concept.values()) < 0.05, concept  # no feature looks drifted
    covariate = _psi_by_feature(reference, _days(DAY, 3, 700, DriftSpec(start=DAY, concept=0.0)))
    assert max(covariate.values()) > 0.2, covariate  # the same check does see covariate shift


def test_old_model_accuracy_falls_under_concept_drift(tmp_path: Path) -> None:
    train_model("sklearn", _days(DAY - dt.timedelta(days=8), 7, 400), example_schema(), {}, 0, tmp_path / "m")
    model = load_model(tmp_path / "m")
    clean = _days(DAY, 3, 700)
    drifted = _days(DAY, 3, 700, CONCEPT)
    acc_clean = float((model.predict(clean) == clean[TARGET]).mean())
    acc_drift = float((model.predict(drifted) == drifted[TARGET]).mean())
    assert acc_clean > 0.7
    assert acc_drift < acc_clean - 0.2, (acc_clean, acc_drift)


def test_partial_shift_and_ramp() -> None:
    spec = DriftSpec(concept_start=DAY, concept_shift=0.5, ramp_days=4)
    assert spec.concept_strength(DAY - dt.timedelta(days=1)) == 0.0
    assert spec.concept_strength(DAY) == pytest.approx(0.125)
    assert spec.concept_strength(DAY + dt.timedelta(days=10)) == pytest.approx(0.5)
    assert spec.strength(DAY) == 0.0  # no covariate shift unless asked for


def test_cli_concept_drift_from(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["datagen", "--out", str(tmp_path / "d"), "--days", "2", "--start",
                                   "2026-02-28", "--rows-per-day", "300", "--concept-drift-from", "2026-03-01"])
    assert res.exit_code == 0, res.output
    got = pd.read_parquet(tmp_path / "d" / "date=2026-03-01" / "part-0.parquet")
    pd.testing.assert_frame_equal(got, generate_day(DAY, 300, 0, CONCEPT))
    assert not got[TARGET].equals(generate_day(DAY, 300, 0)[TARGET])
    bad = CliRunner().invoke(app, ["datagen", "--out", str(tmp_path / "e"), "--concept-drift-from", "March"])
    assert bad.exit_code != 0
    assert "concept-drift-from" in bad.output + str(bad.exception)
