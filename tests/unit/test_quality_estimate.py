"""Calibration fitted on the holdout, and performance estimated without labels (CBPE idea)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ctloop.datagen import DriftSpec, generate_day
from ctloop.errors import DataError
from ctloop.model import load_model
from ctloop.profile import Profile
from ctloop.project import example_schema
from ctloop.quality.calibration import Calibration, apply_calibration, fit_calibration
from ctloop.quality.estimate import estimate_window, expected_accuracy, expected_roc_auc
from ctloop.quality.training import holdout_calibration, with_calibration
from ctloop.train import train_model

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 3, 1)
WINDOW = 500


def _days(first: dt.date, n: int, rows: int, drift: DriftSpec | None = None) -> pd.DataFrame:
    return pd.concat([generate_day(first + dt.timedelta(days=i), rows, 0, drift) for i in range(n)],
                     ignore_index=True)


# -- pure functions on hand-computed cases ---------------------------------------------------------
def test_expected_accuracy_hand_computed() -> None:
    acc, sd = expected_accuracy(np.array([0.9, 0.2, 0.6, 0.5]), np.array([1, 0, 0, 1]))
    assert acc == pytest.approx((0.9 + 0.8 + 0.4 + 0.5) / 4)
    assert sd == pytest.approx(np.sqrt(0.9 * 0.1 + 0.8 * 0.2 + 0.4 * 0.6 + 0.25) / 4)


def test_expected_auc_equals_auc_when_probabilities_are_certain() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(300)
    labels = (rng.random(300) < scores).astype(float)
    assert expected_roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert expected_roc_auc(np.array([0.9, 0.1]), np.array([1.0, 0.0])) == pytest.approx(1.0)
    assert np.isnan(expected_roc_auc(np.array([0.9, 0.8]), np.array([1.0, 1.0])))  # one class only


def test_expected_auc_with_ties_is_half_for_constant_scores() -> None:
    assert expected_roc_auc(np.full(10, 0.5), np.linspace(0.1, 0.9, 10)) == pytest.approx(0.5)


def test_fit_calibration_is_monotone_and_improves_brier() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random(4000)
    labels = (rng.random(4000) < truth).astype(int)
    scores = truth**3  # an over-confident, badly calibrated model
    cal = fit_calibration(scores, labels)
    assert np.all(np.diff(cal.y) >= 0) and cal.rows == 4000 and len(cal.x) <= 200
    assert cal.brier_after is not None and cal.brier_before is not None
    assert cal.brier_after < cal.brier_before
    mid = apply_calibration(cal, np.array([0.125]))  # truth 0.5 → calibrated ≈ 0.5
    assert mid[0] == pytest.approx(0.5, abs=0.06)
    np.testing.assert_array_equal(apply_calibration(None, np.array([0.3, 1.2])), [0.3, 1.0])


@pytest.mark.parametrize(
    ("scores", "labels", "what"),
    [([0.1], [1], "at least 2"), ([0.1, 0.2], [1], "2 scores but 1"), ([0.1, 1.5], [0, 1], "in [0, 1]"),
     ([0.1, 0.2], [0, 2], "0 or 1")],
)
def test_fit_calibration_bad_input(scores: list[float], labels: list[int], what: str) -> None:
    with pytest.raises(DataError, match="calibration") as err:
        fit_calibration(np.array(scores), np.array(labels))
    assert what in str(err.value)


def test_calibration_validates_knots() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(x=[0.1, 0.5], y=[0.6, 0.2], rows=2)
    with pytest.raises(ValueError, match="same length"):
        Calibration(x=[0.1, 0.5], y=[0.6], rows=2)


def test_estimate_window_bad_input() -> None:
    with pytest.raises(DataError, match="no predictions"):
        estimate_window(np.array([]), None)
    with pytest.raises(DataError, match="probabilities"):
        estimate_window(np.array([0.2, np.nan]), None)


# -- profile format v2 -----------------------------------------------------------------------------
def test_profile_v2_carries_calibration_and_v1_still_loads(tmp_path: Path) -> None:
    v1 = {"format": "ctloop-profile/v1", "rows": 10, "target": "label", "label_balance": {"0": 0.5, "1": 0.5},
          "numeric": {}, "categorical": {}}
    (tmp_path / "old.json").write_text(json.dumps(v1))
    old = Profile.load(tmp_path / "old.json")
    assert old.format == "ctloop-profile/v1" and old.calibration is None
    cal = Calibration(x=[0.1, 0.9], y=[0.2, 0.8], rows=50)
    path = old.model_copy(update={"calibration": cal}).save(tmp_path / "new.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == "ctloop-profile/v2" and raw["calibration"]["x"] == [0.1, 0.9]
    assert Profile.load(path).calibration == cal
    raw["format"] = "ctloop-profile/v9"
    (tmp_path / "future.json").write_text(json.dumps(raw))
    with pytest.raises(Exception, match="invalid reference profile"):
        Profile.load(tmp_path / "future.json")


# -- measured on datagen streams -------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Calibration]:
    data = _days(DAY - dt.timedelta(days=10), 10, 400)
    train = data.sample(frac=0.75, random_state=0)
    holdout = data.drop(train.index)
    out = tmp_path_factory.mktemp("est") / "m"
    train_model("sklearn", train, example_schema(), {}, 0, out)
    doc = holdout_calibration(out, holdout, "label")
    return out, Calibration.model_validate(doc["calibration"])


def _errors(model_dir: Path, cal: Calibration, stream: pd.DataFrame) -> tuple[float, float]:
    """Mean |estimated - realized| accuracy over windows, and the share of windows inside the band."""
    scores = load_model(model_dir).predict_proba(stream)
    y = stream["label"].to_numpy()
    errs, inside = [], []
    for i in range(0, len(stream), WINDOW):
        w = slice(i, i + WINDOW)
        est = estimate_window(scores[w], cal)
        realized = float(((scores[w] >= 0.5) == y[w]).mean())
        errs.append(abs(est.values["accuracy"] - realized))
        lo, hi = est.bands["accuracy"]
        inside.append(lo <= realized <= hi)
    return float(np.mean(errs)), float(np.mean(inside))


@pytest.mark.parametrize("drift", [None, DriftSpec(start=DAY, concept=0.0)], ids=["clean", "covariate-only"])
def test_estimate_tracks_realized_accuracy(trained: tuple[Path, Calibration], drift: DriftSpec | None) -> None:
    model_dir, cal = trained
    mae, inside = _errors(model_dir, cal, _days(DAY, 10, WINDOW, drift))
    assert mae <= 0.03, mae
    assert inside >= 0.7, inside  # the 95% band holds the realized accuracy most of the time


def test_estimate_cannot_see_pure_concept_drift(trained: tuple[Path, Calibration]) -> None:
    model_dir, cal = trained
    clean = _days(DAY, 4, WINDOW)
    drifted = _days(DAY, 4, WINDOW, DriftSpec(concept_start=DAY))
    scores = load_model(model_dir).predict_proba(drifted)
    est_clean = estimate_window(load_model(model_dir).predict_proba(clean), cal).values["accuracy"]
    est_drift = estimate_window(scores, cal).values["accuracy"]
    realized = float(((scores >= 0.5) == drifted["label"].to_numpy()).mean())
    assert est_drift == pytest.approx(est_clean)  # same inputs, same estimate
    assert est_drift - realized > 0.2  # while the realized accuracy collapsed
    mae, _ = _errors(model_dir, cal, drifted)
    assert mae > 0.2


def test_with_calibration_stages_a_copy(trained: tuple[Path, Calibration]) -> None:
    model_dir, cal = trained
    before = (model_dir / "profile.json").read_text()
    with with_calibration(model_dir, cal.model_dump()) as staged:
        assert staged != model_dir
        assert Profile.load(staged).calibration == cal
        assert (staged / "model.json").is_file()
    assert (model_dir / "profile.json").read_text() == before  # the input folder is untouched
    with with_calibration(model_dir, None) as same:
        assert same == model_dir
    assert holdout_calibration(model_dir, pd.DataFrame({"x": [1]}), "label")["calibration"] is None
