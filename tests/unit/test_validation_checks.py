"""The bad-input catalogue of the data validation gate, on the library (ctloop.validation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.config import ConfigError, load_config
from ctloop.errors import DataValidationError, SchemaError
from ctloop.reports import render_validation_html, render_validation_markdown
from ctloop.validation import ValidationReport, psi, run_validation, validate_frame
from tests.conftest import make_project
from tests.helpers_validation import batch, parse_report, reference, schema, vcfg

pytestmark = pytest.mark.unit


def errors(rep: ValidationReport) -> set[tuple[str, str | None]]:
    return {(c.check, c.column) for c in rep.failing()}


def warns(rep: ValidationReport) -> set[tuple[str, str | None]]:
    return {(c.check, c.column) for c in rep.warnings()}


def test_clean_batch_passes_with_and_without_reference() -> None:
    rep = validate_frame(batch(), schema(), vcfg(), reference())
    assert rep.passed, [c.message for c in rep.failing()]
    checks = {c.check for c in rep.checks}
    assert {"psi", "out_of_range_share", "missing_share_increase", "unseen_category_share"} <= checks
    assert len(rep.histograms) == 12 and all(h.reference is not None for h in rep.histograms)

    alone = validate_frame(batch(), schema(), vcfg(), None)
    assert alone.passed
    skipped = [c for c in alone.checks if c.check == "reference"]
    assert skipped and skipped[0].status == "skipped" and "skipped" in skipped[0].message
    assert not {"psi", "out_of_range_share"} & {c.check for c in alone.checks}
    assert all(h.reference is None for h in alone.histograms)


def test_missing_column_is_an_error_naming_it() -> None:
    rep = validate_frame(batch().drop(columns=["credit_score"]), schema(), vcfg(), reference())
    assert ("column_present", "credit_score") in errors(rep)
    assert "'credit_score'" in rep.error_message() and "column_present" in rep.error_message()


def test_strings_in_numeric_column_are_a_dtype_error() -> None:
    f = batch()
    f["age"] = f["age"].astype(str)
    f.loc[:5, "age"] = "unknown"
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert ("dtype", "age") in errors(rep)
    msg = next(c.message for c in rep.failing() if c.column == "age")
    assert "'unknown'" in msg and "expected numbers" in msg


def test_entirely_null_column_is_an_error() -> None:
    f = batch()
    f["tenure_months"] = np.nan
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert ("all_null", "tenure_months") in errors(rep)


def test_null_share_surge_in_nullable_column_fails_against_champion() -> None:
    f = batch()
    f.loc[f.sample(frac=0.4, random_state=0).index, "balance"] = np.nan
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert ("missing_share_increase", "balance") in errors(rep)
    # nulls in a non-nullable column fail the schema itself, champion or not
    g = batch()
    g.loc[:10, "income"] = np.nan
    assert ("not_nullable", "income") in errors(validate_frame(g, schema(), vcfg(), None))


def test_values_out_of_schema_range_are_an_error() -> None:
    f = batch()
    f.loc[:29, "age"] = 150.0
    f.loc[:2, "credit_score"] = 10.0
    rep = validate_frame(f, schema(), vcfg(), None)
    assert {("max", "age"), ("min", "credit_score")} <= errors(rep)
    age = next(c for c in rep.failing() if c.column == "age")
    assert age.value == pytest.approx(30 / 600) and "150.0" in age.message
    # a tolerance in the config turns a small share into a warning
    relaxed = validate_frame(f, schema(), vcfg(schema_violation_share={"warn": 0, "error": 0.1}), None)
    assert relaxed.passed and ("max", "age") in warns(relaxed)


def test_out_of_reference_range_share() -> None:
    f = batch()
    f.loc[:199, "days_since_login"] = 10_000.0  # inside the schema (no max), far outside the champion's
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert ("out_of_range_share", "days_since_login") in errors(rep)


def test_unseen_category_surge() -> None:
    f = batch()
    f.loc[:149, "region"] = "atlantis"
    lenient = vcfg(schema_violation_share={"warn": 0, "error": 1})
    rep = validate_frame(f, schema(), lenient, reference())
    assert ("unseen_category_share", "region") in errors(rep)
    assert ("categories", "region") in warns(rep)
    # without a champion the schema's domain catches it
    assert ("categories", "region") in errors(validate_frame(f, schema(), vcfg(), None))


def test_empty_batch_and_too_few_rows() -> None:
    empty = validate_frame(batch().iloc[:0], schema(), vcfg(), reference())
    assert errors(empty) == {("row_count", None)} and "empty" in empty.error_message()
    few = validate_frame(batch(50), schema(), vcfg(), reference())
    assert ("row_count", None) in errors(few)
    assert "50 row(s), at least 100" in few.error_message()


def test_label_missing_or_single_class() -> None:
    rep = validate_frame(batch().drop(columns=["label"]), schema(), vcfg(), reference())
    assert ("label_present", "label") in errors(rep)
    f = batch()
    f["label"] = 0
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert ("label_classes", "label") in errors(rep)
    assert "found only ['0']" in rep.error_message()


def test_duplicate_row_surge() -> None:
    f = batch()
    f = pd.concat([f, f.iloc[:120]], ignore_index=True)
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert ("duplicate_share_increase", None) in errors(rep)


def test_extra_column_is_only_a_warning() -> None:
    f = batch()
    f["surprise"] = 1
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert rep.passed and ("unexpected_column", "surprise") in warns(rep)


def test_drift_warns_but_passes_by_default() -> None:
    f = batch()
    f["channel"] = np.where(np.arange(len(f)) % 10 < 8, "mobile", f["channel"])
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert rep.passed and ("psi", "channel") in warns(rep)
    strict = validate_frame(f, schema(), vcfg(psi={"warn": 0.1, "error": 0.2}), reference())
    assert ("psi", "channel") in errors(strict)


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert psi([10, 20, 30], [30, 20, 10]) > psi([10, 20, 30], [12, 20, 28]) > 0


def test_limit_order_is_validated() -> None:
    with pytest.raises(ConfigError, match="validation.psi"):
        from ctloop.config import parse_config

        parse_config({"name": "x", "data": {"source": "d"},
                      "validation": {"psi": {"warn": 0.5, "error": 0.1}}})


def _project(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = load_config(make_project(tmp_path / "p", days=2, rows_per_day=80))
    return cfg


def test_corrupted_parquet_is_rejected_with_a_report(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    bad = tmp_path / "dataset.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    out = tmp_path / "out"
    with pytest.raises(DataValidationError, match="readable") as exc:
        run_validation(cfg, str(bad), str(out / "r.json"), str(out / "r.html"), str(out / "r.md"))
    assert str(bad) in str(exc.value)
    doc = json.loads((out / "r.json").read_text())
    assert doc["passed"] is False and doc["checks"][0]["check"] == "readable"
    assert ("error", "readable", "") in parse_report(out / "r.html").rows


@pytest.mark.parametrize("content", [None, "columns: [1, 2", "target: label\ncolumns: {age: {dtype: float}}"])
def test_schema_file_missing_or_invalid(tmp_path: Path, content: str | None) -> None:
    cfg = _project(tmp_path)
    path = Path(cfg.schema_.path)
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    ds = tmp_path / "d.parquet"
    batch(200).to_parquet(ds)
    out = tmp_path / "out"
    with pytest.raises(SchemaError, match=str(path)):
        run_validation(cfg, str(ds), str(out / "r.json"), str(out / "r.html"))
    doc = json.loads((out / "r.json").read_text())
    assert doc["checks"][0]["check"] == "schema_file" and not doc["passed"]


def test_run_validation_writes_reports_and_fails_closed(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    ds = tmp_path / "d.parquet"
    f = batch(300)
    f.loc[:99, "plan"] = "platinum"
    f.to_parquet(ds)
    out = tmp_path / "out"
    with pytest.raises(DataValidationError) as exc:
        run_validation(cfg, str(ds), str(out / "r.json"), str(out / "r.html"), str(out / "r.md"))
    msg = str(exc.value)
    assert "column 'plan': check 'categories'" in msg and f"report: {out / 'r.html'}" in msg
    html = parse_report(out / "r.html")
    assert "FAILED" in html.status
    assert ("error", "categories", "plan") in html.rows
    assert html.rows[0][0] == "error"  # failing checks first
    assert ("skipped", "reference", "") in html.rows  # no champion yet
    assert len(html.features) == 12 and html.svgs == 12
    md = (out / "r.md").read_text()
    assert "FAILED" in md and "| error | categories | plan |" in md


def test_html_escapes_values() -> None:
    f = batch()
    f.loc[:5, "region"] = "<script>alert(1)</script>"
    doc = validate_frame(f, schema(), vcfg(), None).to_dict()
    page = render_validation_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "FAILED" in render_validation_markdown(doc)


def test_load_reference_from_the_champion(tmp_path: Path) -> None:
    from ctloop.errors import ModelError
    from ctloop.registry import Registry
    from ctloop.validation import load_reference

    cfg = _project(tmp_path)
    prof, info = load_reference(cfg)
    assert prof is None and info.note == "no champion yet"
    assert not Path(cfg.registry.uri).exists()  # looking did not create anything

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    reg = Registry(cfg.registry.uri, cfg.name)
    reg.promote(reg.register(model, {}))
    prof, info = load_reference(cfg)
    assert prof is None and info.version == 1 and "has no profile.json" in info.note

    reference().save(model)
    reg.promote(reg.register(model, {}))
    prof, info = load_reference(cfg)
    assert prof == reference() and info.note == "champion v2"
    assert info.uri and info.uri.endswith("profile.json")

    (model / "profile.json").write_text('{"format": "ctloop-profile/v9"}')
    reg.promote(reg.register(model, {}))
    with pytest.raises(ModelError, match="champion v3"):
        load_reference(cfg)
