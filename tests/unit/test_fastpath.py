"""The compiled fast path: agreement with the reference path on both trainers, digest, export failure,
the gate's holdout check and what gets registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctloop.config import InfraCheckConfig, parse_config
from ctloop.errors import ModelError
from ctloop.evaluate import decision_from_dict, fast_path_check, run_gate
from ctloop.fastpath.artifact import FAST_FILE, export_fast_path, fast_path_status, frame_columns, load_fast, max_delta
from ctloop.model import load_model, save_model
from ctloop.project import example_schema
from ctloop.steps import served_model_dir
from ctloop.train import train_sklearn
from tests.helpers_serving import training_frame
from tests.helpers_torch import TINY_PARAMS

pytestmark = pytest.mark.unit


def holdout() -> pd.DataFrame:
    """Unseen rows, with missing numbers, missing and unknown categories mixed in."""
    frame = training_frame(seed=11, rows=600).reset_index(drop=True)
    frame.loc[0:20, "age"] = np.nan
    frame.loc[21:40, "region"] = None
    frame.loc[41:60, "plan"] = "never-seen-plan"
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from ctloop.torch_trainer.trainer import train_torch

    root = tmp_path_factory.mktemp("fast")
    schema = example_schema()
    frame = training_frame(seed=0, rows=800)
    out = {"hgb": root / "hgb", "logistic": root / "logistic", "torch": root / "torch"}
    train_sklearn(frame, schema, {"max_iter": 60}, 0, out["hgb"])
    train_sklearn(frame, schema, {"estimator": "logistic_regression"}, 0, out["logistic"])
    train_torch(frame, schema, TINY_PARAMS, 0, out["torch"])
    return out


@pytest.mark.parametrize("kind", ["hgb", "logistic", "torch"])
def test_fast_path_agrees_with_reference_on_unseen_rows(trained: dict[str, Path], kind: str) -> None:
    d = trained[kind]
    block = json.loads((d / "model.json").read_text())["fast_path"]
    assert block["status"] == "ok" and (d / FAST_FILE).is_file()
    assert block["max_abs_delta"] <= 1e-5 and block["checked_rows"] == 800
    model = load_model(d)
    fast = load_fast(d, model.manifest)
    assert fast is not None
    frame = holdout()
    ref = model.predict_proba(frame)
    got = fast.predict_proba(frame_columns(frame, model.numeric_features, model.categorical_features))
    assert got.shape == ref.shape == (600,)
    assert np.max(np.abs(got - ref)) <= 1e-5
    assert max_delta(model, fast, frame) <= 1e-5
    assert np.std(got) > 0.01  # real predictions, not a constant


def test_altered_fast_artifact_is_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "m"
    shutil.copytree(trained["hgb"], d)
    data = bytearray((d / FAST_FILE).read_bytes())
    data[-10] ^= 0xFF
    (d / FAST_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 .* does not match"):
        load_fast(d, load_model(d).manifest)
    (d / FAST_FILE).unlink()
    with pytest.raises(ModelError, match="cannot be read"):
        load_fast(d, load_model(d).manifest)


def unsupported_model(out: Path) -> Path:
    """A model folder whose estimator has no compiler (a random forest): the export must fail."""
    from sklearn.ensemble import RandomForestClassifier

    from ctloop.model import prepare_frame
    from ctloop.train import SklearnParams, build_sklearn_pipeline

    schema = example_schema()
    num, cat = schema.numeric_features, schema.categorical_features
    frame = training_frame(seed=0, rows=300)
    pipe = build_sklearn_pipeline(num, cat, SklearnParams(), 0)
    pipe.steps[-1] = ("model", RandomForestClassifier(n_estimators=5, random_state=0))
    pipe.fit(prepare_frame(frame, num, cat), frame[schema.target])
    save_model(pipe, {"trainer": "sklearn", "numeric_features": num, "categorical_features": cat,
                      "target": schema.target, "classes": [0, 1]}, out)
    export_fast_path(out, frame.head(50))
    return out


def test_export_failure_is_recorded_and_leaves_no_artifact(tmp_path: Path) -> None:
    d = unsupported_model(tmp_path / "rf")
    block = fast_path_status(d)
    assert block["status"] == "failed" and "RandomForestClassifier" in block["reason"]
    assert not (d / FAST_FILE).exists()
    assert load_fast(d, load_model(d).manifest) is None


def test_gate_records_fast_path_verdict(trained: dict[str, Path], tmp_path: Path) -> None:
    cfg = parse_config({"name": "churn", "data": {"source": str(tmp_path)}, "gate": {"beat_champion": None}})
    test = training_frame(seed=12, rows=300).reset_index(drop=True)
    decision = run_gate(cfg.gate, "label", trained["hgb"], test, test.head(50))
    assert decision.fast_path is not None and decision.fast_path["serve"] is True
    assert decision.fast_path["max_abs_delta"] <= 1e-5 and decision.fast_path["rows"] == 300
    assert any(n.startswith("fast path: compiled path (trees) agrees") for n in decision.notes)
    assert decision_from_dict(decision.to_dict()).fast_path == decision.fast_path
    assert "fast path:" in decision.markdown()
    # the gate passes either way: a failed export is recorded, the model still goes on
    rf = unsupported_model(tmp_path / "rf")
    failed = run_gate(cfg.gate, "label", rf, test, test.head(50))
    assert failed.fast_path is not None and failed.fast_path["serve"] is False
    assert "reference path" in failed.fast_path["reason"]
    assert all(c.passed for c in failed.checks if c.name.startswith("infra"))


def test_disagreement_on_the_holdout_registers_without_fast_path(trained: dict[str, Path]) -> None:
    model = load_model(trained["torch"])
    test = training_frame(seed=13, rows=200)
    strict = InfraCheckConfig(max_fast_path_delta=0.0)  # float32 MLP: ~1e-8 off, so "disagrees" at 0
    verdict = fast_path_check(trained["torch"], model, test, strict)
    assert verdict["serve"] is False and verdict["max_abs_delta"] > 0
    assert "differs from the reference" in verdict["reason"]
    src = Path(served_model_dir(str(trained["torch"]), {"fast_path": verdict}))
    assert src != trained["torch"] and not (src / FAST_FILE).exists()
    assert fast_path_status(src) == {"status": "disabled", "reason": verdict["reason"]}
    assert (trained["torch"] / FAST_FILE).exists()  # the training output is untouched
    ok: dict[str, Any] = {"fast_path": fast_path_check(trained["torch"], model, test, InfraCheckConfig())}
    assert ok["fast_path"]["serve"] is True
    assert served_model_dir(str(trained["torch"]), ok) == str(trained["torch"])
