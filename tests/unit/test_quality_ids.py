"""Row ids: the schema marks them as ids, never features; training, profile and validation ignore them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ctloop.datagen import ID, generate_day
from ctloop.profile import compute_profile
from ctloop.project import example_schema
from ctloop.schema import check_frame, infer_schema

pytestmark = pytest.mark.unit


@pytest.fixture
def frame():  # type: ignore[no-untyped-def]
    return generate_day(dt.date(2026, 1, 1), 300, seed=0)


def test_infer_marks_the_id_column_never_a_feature(frame) -> None:  # type: ignore[no-untyped-def]
    schema = infer_schema(frame, "label")
    assert schema.columns[ID].dtype == "id"
    assert schema.id_columns == [ID]
    assert ID not in schema.features and "age" in schema.features
    # another name for the id column: that column is the id, "id" would be a plain categorical
    renamed = frame.rename(columns={ID: "row_key"})
    s2 = infer_schema(renamed, "label", id_column="row_key")
    assert s2.columns["row_key"].dtype == "id" and "row_key" not in s2.features


def test_schema_checks_ids_present_unique_and_not_null(frame) -> None:  # type: ignore[no-untyped-def]
    schema = example_schema()
    assert [f for f in check_frame(frame, schema) if f.severity == "error"] == []
    dup = frame.copy()
    dup.loc[5, ID] = dup.loc[4, ID]
    checks = {(f.column, f.check) for f in check_frame(dup, schema) if f.severity == "error"}
    assert (ID, "field_uniqueness") in checks
    missing = frame.copy()
    missing.loc[7, ID] = None
    assert (ID, "not_nullable") in {(f.column, f.check) for f in check_frame(missing, schema)}
    gone = {(f.column, f.check) for f in check_frame(frame.drop(columns=[ID]), schema)}
    assert (ID, "column_present") in gone


def test_duplicate_share_ignores_the_id(frame) -> None:  # type: ignore[no-untyped-def]
    schema = example_schema()
    doubled = frame.iloc[list(range(200)) + list(range(100))].reset_index(drop=True)
    doubled[ID] = [f"x-{i}" for i in range(len(doubled))]  # unique ids on repeated rows
    prof = compute_profile(doubled, schema.numeric_features, schema.categorical_features, "label")
    assert prof.duplicate_share == pytest.approx(100 / 300)
    assert ID not in prof.numeric and ID not in prof.categorical


def test_trainer_never_uses_the_id(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ctloop.model import load_model
    from ctloop.train import train_sklearn

    out = tmp_path / "m"
    train_sklearn(frame, example_schema(), {"estimator": "logistic_regression", "max_iter": 200}, 0, out)
    man = json.loads((out / "model.json").read_text())
    assert ID not in man["numeric_features"] + man["categorical_features"]
    model = load_model(out)
    # predicting without the id column works: the model never saw it
    assert len(model.predict_proba(frame.drop(columns=[ID, "label"]))) == len(frame)
