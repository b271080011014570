"""Schema file loading and pandera checks naming column and check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from ctloop.datagen import generate_day
from ctloop.errors import DataValidationError, SchemaError
from ctloop.project import example_schema
from ctloop.schema import check_frame, dump_schema, enforce, infer_schema, load_schema

pytestmark = pytest.mark.unit


@pytest.fixture
def frame():  # type: ignore[no-untyped-def]
    return generate_day(dt.date(2026, 1, 1), 200, seed=0)


def test_example_schema_passes_clean_data(frame) -> None:  # type: ignore[no-untyped-def]
    assert [f for f in check_frame(frame, example_schema()) if f.severity == "error"] == []


def test_missing_column_and_extra_column(frame) -> None:  # type: ignore[no-untyped-def]
    bad = frame.drop(columns=["income"]).assign(surprise=1)
    findings = {(f.column, f.check, f.severity) for f in check_frame(bad, example_schema())}
    assert ("income", "column_present", "error") in findings
    assert ("surprise", "unexpected_column", "warning") in findings


def test_strings_in_numeric_column(frame) -> None:  # type: ignore[no-untyped-def]
    bad = frame.assign(age=frame.age.astype(str))
    with pytest.raises(DataValidationError, match="column 'age': check 'dtype'"):
        enforce(bad, example_schema(), "batch")


def test_out_of_range_and_nulls(frame) -> None:  # type: ignore[no-untyped-def]
    bad = frame.copy()
    bad.loc[:4, "credit_score"] = 9999
    bad.loc[:2, "age"] = np.nan
    findings = {(f.column, f.check): f for f in check_frame(bad, example_schema())}
    assert findings[("credit_score", "max")].failures == 5
    assert findings[("age", "not_nullable")].failures == 3
    assert "9999" in findings[("credit_score", "max")].message()


def test_load_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "missing.yaml")
    p = tmp_path / "schema.yaml"
    p.write_text("target: label\ncolumns: {age: {dtype: numeric, min: 5, max: 1}, label: {dtype: binary}}\n")
    with pytest.raises(SchemaError, match="min 5.0 is greater than max 1.0"):
        load_schema(p)
    p.write_text("target: y\ncolumns: {age: {dtype: numeric}}\n")
    with pytest.raises(SchemaError, match="target 'y' is not among the columns"):
        load_schema(p)


def test_infer_round_trip(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = infer_schema(frame, "label")
    assert s.columns["region"].dtype == "categorical"
    assert set(s.columns["region"].categories or []) == {"north", "south", "east", "west"}
    assert s.columns["num_products"].dtype == "integer"
    assert s.columns["balance"].nullable is (bool(frame.balance.isna().any()))
    p = tmp_path / "s.yaml"
    p.write_text(dump_schema(s))
    assert load_schema(p) == s
