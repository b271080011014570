"""The demo's scenario arithmetic, atomic day landing, and its renderers (table, HTML) on a made-up result."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from rich.console import Console

from ctloop.config import parse_config
from ctloop.data import list_partitions
from ctloop.demo.record import DayRecord, DemoResult
from ctloop.demo.report import collapse_duplicates, html_report, timeline_table, timing_table, triggers_table
from ctloop.demo.scenario import DemoSettings, demo_config, write_project

pytestmark = pytest.mark.unit


def test_settings_keep_the_volume_trigger_behind_the_drift_retrain() -> None:
    s = DemoSettings(history_days=2, stable_days=3, drift_days=6, rows_per_day=100)
    assert s.drift_start == dt.date(2026, 1, 6) and s.replay[0] == dt.date(2026, 1, 3) and len(s.replay) == 9
    before_retrain = (s.stable_days + 1) * s.rows_per_day  # stable days + the first drifted day
    assert s.volume_rows > before_retrain
    assert s.volume_rows <= (s.drift_days - 1) * s.rows_per_day  # reached after the retrain, within the replay


def test_demo_config_is_a_valid_project_config() -> None:
    raw = demo_config(DemoSettings(), {"server": 18080, "watcher": 18090}, use_prometheus=True)
    cfg = parse_config(raw)
    assert cfg.triggers.prometheus and cfg.triggers.endpoint == "http://127.0.0.1:18090"
    assert cfg.serving.logger.url == "http://127.0.0.1:18090/events"
    assert cfg.drift.window_rows * 2 == DemoSettings().rows_per_day


def test_project_holds_history_only_and_days_land_whole(tmp_path: Path) -> None:
    from ctloop.demo.scenario import land_day

    s = DemoSettings(history_days=2, stable_days=1, drift_days=2, rows_per_day=100)
    write_project(tmp_path / "p", s, {"server": 1, "watcher": 2}, use_prometheus=False)
    src = str(tmp_path / "p" / "data")
    assert [p.day for p in list_partitions(src)] == [s.day(0), s.day(1)]
    land_day(tmp_path / "p", s.day(2))
    assert [p.day for p in list_partitions(src)][-1] == s.day(2)
    assert not [p for p in (tmp_path / "p" / "data").iterdir() if p.name.startswith(".")]


def _result() -> DemoResult:
    days = [DayRecord("2026-01-04", False, 100, [1], 0.8, 0.8, 0.0, {"age": 0.01}, [], 0, [], 100.0),
            DayRecord("2026-01-05", True, 100, [1], 0.5, 0.5, 0.75, {"age": 0.9}, ["alert"], 1, ["run-1"], 200.0),
            DayRecord("2026-01-06", True, 100, [2], 0.8, 0.5, 0.0, {"age": 0.02}, [], 0, [], 300.0)]
    ledger = [{"id": 1, "received_at": "2026-11-29T10:00:00.000000+00:00", "source": "alert", "decision": "fired",
               "reason_code": "fired", "reason": "alert: drift <share>", "run_id": "run-1", "version": 2}]
    ledger += [{"id": i, "received_at": "2026-11-29T10:00:01.000000+00:00", "source": "alert",
                "decision": "suppressed", "reason_code": "duplicate", "reason": "duplicate of trigger #1",
                "run_id": None, "version": None} for i in (2, 3, 4)]
    versions = [{"version": 1, "model_uri": "file:///r/1", "trigger": {"cause": "bootstrap"}, "parent": None},
                {"version": 2, "model_uri": "file:///r/2", "trigger": {"cause": "drift", "trigger_id": 1},
                 "parent": 1, "run_id": "run-1",
                 "decision": {"checks": [{"passed": True, "reason": "roc_auc 0.9 >= 0.65"}]}}]
    windows = [{"t": 150.0 + i, "version": 1, "window": i, "drift_share": 0.75 * (i == 2), "drifted": [],
                "psi": {"age": 0.1 * i}} for i in range(4)]
    markers = [{"t": 210.0, "kind": "alert", "label": "alert → trigger #1 fired"}]
    timings = {"window_fill_s": 0.5, "alert_s": 1.5, "pipeline_s": 10.0, "swap_s": 0.2, "closed_loop_s": 11.7}
    return DemoResult("/out", "/out/ctloop.yaml", "embedded", days, windows, markers, ledger, versions, 2, 2,
                      timings, {}, {})


def test_tables_render_and_duplicates_fold() -> None:
    r = _result()
    folded = collapse_duplicates(r.ledger)
    assert [(row["id"], n) for row, n in folded] == [(1, 1), (2, 3)]
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    for t in (timeline_table(r), triggers_table(r), timing_table(r)):
        console.print(t)
    text = buf.getvalue()
    assert "2-4" in text and "(×3)" in text and "11.70" in text and "75%" in text


def test_html_report_links_versions_to_lineage_and_escapes() -> None:
    page = html_report(_result())
    assert page.count("<svg") == 3
    assert 'id="v2"' in page and 'href="#v1"' in page  # v2's parent links to v1's lineage
    assert "&lt;share&gt;" in page and "<share>" not in page
    assert "roc_auc 0.9 &gt;= 0.65" in page


def test_out_folder_that_is_not_a_demo_is_never_deleted(tmp_path: Path) -> None:
    from ctloop.errors import DemoError

    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not an earlier `ctloop demo` folder"):
        write_project(precious, DemoSettings(rows_per_day=100), {"server": 1, "watcher": 2}, use_prometheus=False)
    assert (precious / "notes.txt").read_text() == "keep me"
    demo = tmp_path / "demo"
    for _ in range(2):  # an earlier demo folder is replaced
        write_project(demo, DemoSettings(rows_per_day=100), {"server": 1, "watcher": 2}, use_prometheus=False)
    assert (demo / "ctloop.yaml").is_file()

