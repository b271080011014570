"""The validate component: an HTML artifact, a JSON report and a Markdown summary, passing or failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import HTML, Artifact, Dataset, Markdown

from components.training import validate, validate_gate
from ctloop.config import load_config
from ctloop.errors import DataValidationError
from tests.conftest import make_project
from tests.helpers_validation import batch, parse_report

pytestmark = pytest.mark.component


def _artifacts(root: Path) -> tuple[Artifact, HTML, Markdown]:
    return (Artifact(uri=str(root / "report")), HTML(uri=str(root / "report_html")),
            Markdown(uri=str(root / "summary")))


def test_component_writes_all_three_outputs(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "p", days=2, rows_per_day=60))
    ds = tmp_path / "dataset"
    batch(300).to_parquet(ds)
    report, html, summary = _artifacts(tmp_path / "ok")
    assert validate(cfg.to_json(), Dataset(uri=str(ds)), report, html, summary) is True
    validate_gate(cfg.to_json(), report)  # passes
    assert report.metadata["passed"] is True and report.metadata["rows"] == 300
    assert json.loads(Path(report.path).read_text())["passed"] is True
    assert "PASSED" in parse_report(html.path).status
    assert Path(summary.path).read_text().startswith("**Data validation: PASSED**")


def test_component_publishes_reports_then_gate_fails_closed(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "p", days=2, rows_per_day=60))
    ds = tmp_path / "dataset"
    batch(300).drop(columns=["plan"]).to_parquet(ds)
    report, html, summary = _artifacts(tmp_path / "bad")
    # validate succeeds (so KFP uploads its reports) and says the batch failed ...
    assert validate(cfg.to_json(), Dataset(uri=str(ds)), report, html, summary) is False
    assert report.metadata["passed"] is False
    # ... and the gate stops the run
    with pytest.raises(DataValidationError, match="column 'plan': check 'column_present'") as exc:
        validate_gate(cfg.to_json(), report)
    assert f"report: {html.path}" in str(exc.value)
    assert ("error", "column_present", "plan") in parse_report(html.path).rows
    assert "| error | column_present | plan |" in Path(summary.path).read_text()


def test_gate_fails_closed_without_a_report(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "p", days=2, rows_per_day=60))
    with pytest.raises(DataValidationError, match="missing or unreadable"):
        validate_gate(cfg.to_json(), Artifact(uri=str(tmp_path / "nothing")))
