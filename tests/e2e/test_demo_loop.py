"""The closed loop end to end (``ctloop demo``): drift → alert → one retrain → gate → promotion →
hot-swap, with real Prometheus and Alertmanager (Debian packages), and with the embedded evaluator.

Everything is real: the KFP local runner, the KServe model server over HTTP, the watcher and trigger
service over HTTP, Prometheus scraping the watcher and Alertmanager posting to its webhook. Data is
tiny (400 rows a day) so one run takes about a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ctloop.demo import DemoResult, DemoSettings, run_demo
from ctloop.demo.stack import http_ok
from ctloop.registry import Registry
from tests.conftest import require_binary, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SETTINGS = dict(history_days=1, stable_days=1, drift_days=4, rows_per_day=400)


def _assert_closed_loop(r: DemoResult, mode: str) -> None:
    assert r.mode == mode
    # exactly one retrain for the drift episode, started by the alert, and it promoted version 2
    fired = [x for x in r.ledger if x["decision"] == "fired"]
    assert len(fired) == 1, fired
    run = fired[0]
    assert run["source"] == "alert" and run["run_status"] == "succeeded" and run["version"] == 2
    evaluator = "embedded evaluator" in run["reason"]
    assert evaluator == (mode == "embedded")
    # new-data volume and the schedule tick went through the same policy: suppressed by the cooldown
    by_source = {x["source"]: x for x in r.ledger if x["decision"] == "suppressed" and x["source"] != "alert"}
    assert by_source["volume"]["reason_code"] == "cooldown" and run["run_id"] in by_source["volume"]["reason"]
    assert by_source["schedule"]["reason_code"] == "cooldown"
    # the registry links alert → run → version
    reg = Registry(str(Path(r.out) / "registry"), "churn")
    assert reg.versions() == [1, 2] and reg.alias("champion") == 2 and r.champion == 2
    meta = reg.get(2).metadata
    assert meta["run_id"] == run["run_id"] and meta["trigger"]["trigger_id"] == run["id"]
    assert meta["trigger"]["cause"] == "drift" and meta["parent"] == 1
    assert reg.get(1).metadata["trigger"]["cause"] == "bootstrap"
    # the gate compared the challenger with the champion (v1) on the recent slice, and it passed
    recent = [c for c in meta["decision"]["checks"] if c["name"].startswith("beat_champion_recent")]
    assert recent and all(c["passed"] for c in recent) and "champion v1" in recent[0]["reason"]
    # the server answers with the new version after the swap; the drifted day before it was served by v1
    assert r.served_version == 2
    drift_start = SETTINGS["stable_days"]  # index of the first drifted replayed day
    assert [d.versions for d in r.days[:drift_start + 1]] == [[1]] * (drift_start + 1)
    assert all(d.versions == [2] for d in r.days[drift_start + 1:])
    # the new champion beats the old on the drifted days (held out from its training) and on the recent slice
    later = r.comparison["later_drifted_days"]
    assert later["new"]["accuracy"] > later["old"]["accuracy"] + 0.15
    assert r.comparison["recent_slice"]["new"]["roc_auc"] > r.comparison["recent_slice"]["old"]["roc_auc"]
    assert all(d.accuracy > d.accuracy_without_retraining + 0.15 for d in r.days[drift_start + 1:])
    # drift scores fell back once the new champion's reference was in use
    assert max(w["drift_share"] for w in r.windows if w["version"] == 1) >= 0.25
    assert all(w["drift_share"] < 0.25 for w in r.windows if w["version"] == 2)
    assert r.days[drift_start].drift_share >= 0.25 and r.days[-1].drift_share < 0.25
    # the closed loop was timed, part by part
    t = r.timings
    assert set(t) >= {"window_fill_s", "alert_s", "pipeline_s", "swap_s", "closed_loop_s"}
    assert t["closed_loop_s"] == pytest.approx(t["alert_s"] + t["pipeline_s"] + t["swap_s"], abs=0.01)
    # every process was stopped
    for url in r.endpoints.values():
        assert not http_ok(f"{url}/-/ready") and not http_ok(f"{url}/metrics")


def test_closed_loop_with_real_prometheus_and_alertmanager(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    r = run_demo(tmp_path / "demo", DemoSettings(prometheus="on", **SETTINGS))  # type: ignore[arg-type]
    _assert_closed_loop(r, "prometheus")
    assert {"prometheus", "alertmanager"} <= set(r.endpoints)
    # Prometheus loaded the rendered rules (the same file the PrometheusRule is made from)
    rules = (tmp_path / "demo" / "manifests" / "monitoring" / "rules.yml").read_text()
    assert "CtloopDriftShareHigh" in rules and "for: 1s" in rules


def test_cli_demo_with_embedded_evaluator_gives_the_same_outcome(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = run_cli("demo", "--out", str(out), "--prometheus", "off", "--stable-days", "1", "--days", "4",
                  "--rows-per-day", "400", "--concept-days", "2", "--label-delay-days", "1", timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()  # stdout is a pipe: each headline fact is one whole line
    assert any(ln.startswith("champion: v2 (served: v2)") for ln in lines), res.stdout[-3000:]
    loop = [ln for ln in lines if ln.startswith("closed loop: ")]
    assert len(loop) == 1 and re.fullmatch(
        r"closed loop: [\d.]+ s \(alert [\d.]+ s \+ pipeline [\d.]+ s \+ swap [\d.]+ s\)", loop[0]), loop
    # episode 2: pure concept drift with delayed labels, the performance alert, one retrain
    from ctloop.demo.concept import ConceptResult
    from tests.e2e.test_performance_loop import _assert_episode

    _assert_episode(ConceptResult(**json.loads((out / "quality.json").read_text())), "embedded")
    assert "episode 2 champion: v2" in res.stdout and "realized acc" in res.stdout
    assert any(re.fullmatch(r"episode 2 closed loop: [\d.]+ s \(alert [\d.]+ s \+ run [\d.]+ s; .*\)", ln)
               for ln in lines), res.stdout[-3000:]
    page = (out / "report-quality.html").read_text()
    assert "<svg" in page and "realized accuracy (labels)" in page and "estimated accuracy" in page
    assert "champion: v2" in res.stdout and "closed loop" in res.stdout
    doc = json.loads((out / "demo.json").read_text())
    from ctloop.demo.record import DayRecord

    doc["days"] = [DayRecord(**d) for d in doc["days"]]
    _assert_closed_loop(DemoResult(**doc), "embedded")
    html = (out / "report.html").read_text()
    assert "<svg" in html and 'id="v2"' in html and 'href="#v1"' in html  # v2's lineage links its parent


def test_prometheus_on_without_binaries_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    from ctloop.demo.loop import resolve_mode
    from ctloop.errors import DemoError

    with pytest.raises(DemoError, match="prometheus-alertmanager"):
        resolve_mode("on")
    assert resolve_mode("auto") == ("embedded", None)
    with pytest.raises(DemoError, match="expected auto, on or off"):
        resolve_mode("maybe")


def test_ctrl_c_mid_replay_stops_every_process(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def progress(kind: str, info: dict[str, object]) -> None:
        if kind == "stack":
            seen.update(info["endpoints"])  # type: ignore[arg-type]
        if kind == "day_done":
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "demo", DemoSettings(prometheus="auto", **SETTINGS), progress)  # type: ignore[arg-type]
    assert {"watcher", "model_server"} <= set(seen)
    for url in seen.values():
        assert not http_ok(f"{url}/-/ready") and not http_ok(f"{url}/metrics")
    # what happened so far is kept: the first champion and the ledger
    assert Registry(str(tmp_path / "demo" / "registry"), "churn").alias("champion") == 1
    assert (tmp_path / "demo" / "state" / "ledger.sqlite").is_file()


def test_cli_rejects_unknown_alerting_mode_as_usage_error(tmp_path: Path) -> None:
    res = run_cli("demo", "--out", str(tmp_path / "d"), "--prometheus", "maybe")
    assert res.returncode == 2 and "maybe" in res.stderr
    assert not (tmp_path / "d").exists()
