"""sklearn trainer (transforms inside the artifact), model loading, metrics and the gate."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.config import GateConfig, MetricBounds
from ctloop.datagen import generate_day
from ctloop.errors import ConfigError, DataError, ModelError
from ctloop.evaluate import compute_metrics, decide, evaluate_model
from ctloop.model import load_model
from ctloop.profile import Profile
from ctloop.project import example_schema
from ctloop.train import train_model

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.concat([generate_day(dt.date(2026, 1, d), 300, 0) for d in range(1, 6)], ignore_index=True)
    test = generate_day(dt.date(2026, 1, 9), 400, 0)
    return train, test


def test_train_saves_pipeline_with_transforms(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    train, test = data
    manifest = train_model("sklearn", train, example_schema(), {"max_iter": 50}, 0, tmp_path / "m")
    assert manifest["numeric_features"][0] == "age"
    model = load_model(tmp_path / "m")
    assert (tmp_path / "m" / "profile.json").exists()
    assert Profile.load(tmp_path / "m").rows == len(train)
    p = model.predict_proba(test)
    assert p.shape == (len(test),) and ((p >= 0) & (p <= 1)).all()
    # the artifact scales inputs itself: raw, unscaled columns in any order give the same answer
    shuffled = test[list(reversed(test.columns))]
    assert np.allclose(model.predict_proba(shuffled), p)
    m = evaluate_model(model, test, "label")
    assert m["roc_auc"] > 0.75


def test_deterministic_training(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    train, test = data
    train_model("sklearn", train, example_schema(), {"max_iter": 30}, 0, tmp_path / "a")
    train_model("sklearn", train, example_schema(), {"max_iter": 30}, 0, tmp_path / "b")
    assert np.array_equal(load_model(tmp_path / "a").predict_proba(test),
                          load_model(tmp_path / "b").predict_proba(test))


def test_bad_params_and_single_class(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    with pytest.raises(ConfigError, match="model.params.max_depth"):
        train_model("sklearn", train, example_schema(), {"max_depth": 3}, 0, tmp_path / "x")
    with pytest.raises(DataError, match="single class"):
        train_model("sklearn", train.assign(label=1), example_schema(), {}, 0, tmp_path / "y")


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model manifest not found"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "ctloop-model/v1", "trainer": "sklearn"}))
    (tmp_path / "model.joblib").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="no digest recorded"):  # never unpickled without a digest
        load_model(tmp_path)
    digest = hashlib.sha256(b"garbage").hexdigest()
    (tmp_path / "model.json").write_text(json.dumps({"format": "ctloop-model/v1", "trainer": "sklearn",
                                                     "digests": {"model.joblib": digest}}))
    with pytest.raises(ModelError, match="cannot load model artifact"):
        load_model(tmp_path)


def test_metrics_hand_case() -> None:
    m = compute_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    assert m["roc_auc"] == 0.75
    assert m["accuracy"] == 0.5
    assert math.isclose(m["log_loss"], -np.mean(np.log([0.9, 0.4, 0.4, 0.9])))
    assert math.isnan(compute_metrics(np.array([1, 1]), np.array([0.2, 0.7]))["roc_auc"])


def test_gate_decision() -> None:
    gate = GateConfig(min_metric=MetricBounds(roc_auc=0.8), max_metric=MetricBounds(log_loss=0.5))
    ok = decide({"roc_auc": 0.85, "log_loss": 0.4}, gate)
    assert ok.passed and len(ok.checks) == 2
    bad = decide({"roc_auc": 0.7, "log_loss": 0.4}, gate)
    assert not bad.passed
    failed = [c for c in bad.checks if not c.passed]
    assert failed[0].name == "min_roc_auc" and "0.7000 < minimum 0.8000" in failed[0].reason
    assert "REJECTED" in bad.markdown()
    assert not decide({"roc_auc": math.nan, "log_loss": 0.1}, gate).passed
