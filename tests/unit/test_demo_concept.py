"""Episode 2 of the demo: its project (pure concept drift, performance alert settings) and its report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ctloop.config import load_config
from ctloop.datagen import DriftSpec, generate_day
from ctloop.demo.concept import ConceptResult, ConceptSettings, write_concept_project
from ctloop.demo.concept_report import concept_html, concept_timeline_table, write_concept_outputs

pytestmark = pytest.mark.unit


def test_project_has_a_concept_stream_and_the_performance_alert(tmp_path: Path) -> None:
    s = ConceptSettings(rows_per_day=120)
    cfg = load_config(write_concept_project(tmp_path / "p", s, {"server": 1234, "watcher": 1235}, False))
    p = cfg.monitoring.performance
    assert p.max_drop == 0.1 and p.min_labelled == 60 and p.window_rows == 120 and p.alert_for == "1s"
    assert cfg.triggers.volume_rows is None and cfg.triggers.schedule is None
    day = s.concept_start
    got = pd.read_parquet(tmp_path / "p" / "stream" / f"date={day.isoformat()}" / "part-0.parquet")
    pd.testing.assert_frame_equal(got, generate_day(day, 120, s.seed, DriftSpec(concept_start=day)))
    assert sorted(x.name for x in (tmp_path / "p" / "data").iterdir()) == ["date=2026-01-01"]  # history only


def _result() -> ConceptResult:
    days = [
        {"day": "2026-01-02", "concept": False, "versions": [1], "drift_share": 0.0},
        {"day": "2026-01-03", "concept": False, "versions": [1], "labels_for": "2026-01-02",
         "labels": {"matched": 400}, "realized_accuracy": 0.8, "estimated_accuracy": 0.79, "drift_share": 0.05},
        {"day": "2026-01-04", "concept": True, "versions": [1], "labels_for": "2026-01-03",
         "labels": {"matched": 400}, "realized_accuracy": 0.81, "estimated_accuracy": 0.78, "drift_share": 0.0},
        {"day": "2026-01-05", "concept": True, "versions": [1], "labels_for": "2026-01-04",
         "labels": {"matched": 400}, "realized_accuracy": 0.31, "estimated_accuracy": 0.78, "drift_share": 0.1,
         "events": ["alert: fired → run churn-performance-abc", "run succeeded", "promoted v2"]},
    ]
    return ConceptResult("embedded", days, [], [], 2, 2, 0.1, {"alert_s": 1.5, "run_s": 40.0,
                                                                "closed_loop_s": 42.0})


def test_report_shows_realized_vs_estimated_with_markers(tmp_path: Path) -> None:
    r = _result()
    page = concept_html(r)
    assert page.count("<polyline") == 2 and "realized accuracy (labels)" in page
    assert page.count('stroke-dasharray="2 2"><title>') == 3  # alert, run, promotion markers
    assert "31.0%" in page and "78.0%" in page and "42.00 s" in page
    table = concept_timeline_table(r)
    assert [c.header for c in table.columns][4:6] == ["realized acc", "estimated acc"]
    report, data = write_concept_outputs(r, tmp_path)
    assert report.read_text() == page
    assert ConceptResult(**json.loads(data.read_text())) == r
