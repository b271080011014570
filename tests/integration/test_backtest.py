"""``ctloop backtest`` on a small stream with a drift episode: honesty, determinism, policy ordering, exit codes.

The replay is the real one: the pipeline's step functions in-process, the live drift monitor, quality
tracker and trigger policy with a simulated clock.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ctloop.backtest.results import build_results
from ctloop.backtest.run import BacktestRequest, run_backtest
from ctloop.config import load_config
from tests.conftest import START, make_project, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPLAY_START = START + dt.timedelta(days=8)
REPLAY_END = START + dt.timedelta(days=15)
DELAY = 1
ESTIMATED = "estimated:monitoring.performance.estimated_min=0.9"
POLICIES = ("never", "schedule:1d", "drift", "performance", ESTIMATED)


def _edit(text: str) -> str:
    text = text.replace("window_rows: 2000", "window_rows: 400").replace("min_rows: 500", "min_rows: 200")
    return text.replace("cooldown_minutes: 60", "cooldown_minutes: 0")


@pytest.fixture(scope="module")
def drift_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bt")
    return make_project(root / "proj", days=16, rows_per_day=400, drift_from=START + dt.timedelta(days=10),
                        edit=lambda t: _edit(t).replace("window_days: 16", "window_days: 6"))


def _run(config: Path, policies: tuple[str, ...] = POLICIES) -> dict[str, Any]:
    cfg = load_config(config)
    req = BacktestRequest(str(config.parent / "data"), REPLAY_START, REPLAY_END, policies, DELAY)
    meta = {"model": cfg.name, "stream": req.stream, "start": str(req.start), "end": str(req.end),
            "label_delay_days": DELAY, "policies": list(policies)}
    return build_results(cfg, run_backtest(cfg, req), meta, 2.0, 0.005)


@pytest.fixture(scope="module")
def result(drift_project: Path) -> dict[str, Any]:
    return _run(drift_project)


def _by_policy(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["policy"]: s for s in doc["summary"]}


def test_drift_and_daily_schedule_beat_never(result: dict[str, Any]) -> None:
    s = _by_policy(result)
    assert s["never"]["retrains"] == 0 and s["never"]["training_seconds"] == 0
    assert s["drift"]["retrains"] >= 1 and s["schedule:1d"]["retrains"] >= 1
    assert s["drift"]["mean_accuracy"] > s["never"]["mean_accuracy"]
    assert s["schedule:1d"]["mean_accuracy"] > s["never"]["mean_accuracy"]
    assert all(r["cause"] == "drift" for r in s["drift"]["retrain_dates"])
    assert s["performance"]["retrains"] >= 1
    assert all(r["cause"] == "performance" for r in s["performance"]["retrain_dates"])
    assert s[ESTIMATED]["retrains"] >= 1  # estimated_min 0.9 is above this model's estimated accuracy
    assert all(r["cause"] == "performance" for r in s[ESTIMATED]["retrain_dates"])
    assert len({d["day"] for r in result["runs"] for d in r["days"]}) == 8


def test_never_reads_a_label_early_nor_trains_on_later_days(result: dict[str, Any]) -> None:
    for run in result["runs"]:
        for rel in run["label_releases"]:
            assert rel["released_at"] >= rel["row_time"] + DELAY * 86400
        for r in run["retrains"]:
            day = dt.date.fromisoformat(r["day"])
            assert dt.date.fromisoformat(r["data_last_day"]) <= day - dt.timedelta(days=DELAY)
    releases = [rel for r in result["runs"] for rel in r["label_releases"]]
    assert releases, "labels were released to the quality tracker"
    assert result["champion"]["data_last_day"] == str(REPLAY_START - dt.timedelta(days=1))


def test_promotion_takes_effect_the_next_day(result: dict[str, Any]) -> None:
    run = next(r for r in result["runs"] if r["policy"] == "schedule:1d")
    serving = {d["day"]: d["version"] for d in run["days"]}
    promoted = [r for r in run["retrains"] if r["promoted"]]
    assert promoted
    for r in promoted:
        day = dt.date.fromisoformat(r["day"])
        assert serving[r["day"]] != r["version"]
        nxt = str(day + dt.timedelta(days=1))
        if nxt in serving:
            assert serving[nxt] == r["version"]


def test_fixed_seed_gives_the_same_results(drift_project: Path, result: dict[str, Any]) -> None:
    again = _run(drift_project, ("drift",))

    def stable(run: dict[str, Any]) -> Any:
        retrains = [{k: v for k, v in r.items() if k not in ("seconds", "fired_at")} for r in run["retrains"]]
        return run["days"], retrains, run["suppressed"]

    first = next(r for r in result["runs"] if r["policy"] == "drift")
    assert stable(again["runs"][0]) == stable(first)


def test_cli_writes_json_and_html(drift_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    p = run_cli("backtest", "--config", str(drift_project), "--stream", str(drift_project.parent / "data"),
                "--start", str(REPLAY_END - dt.timedelta(days=1)), "--end", str(REPLAY_END),
                "--policy", "never", "--policy", "schedule:1d", "--jobs", "2", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [s["policy"] for s in doc["summary"]] == ["never", "schedule:1d"]
    assert json.loads((out / "backtest.json").read_text())["summary"] == doc["summary"]
    html = (out / "backtest.html").read_text()
    assert html.count("<svg") == 2 and "schedule:1d" in html and "Recommended" in html


@pytest.mark.parametrize(("args", "message"), [
    (("--policy", "schedule:weekly"), "schedule:weekly"),
    (("--policy", "drift:drift.nope=1"), "drift.nope: unknown key"),
])
def test_bad_spec_exits_2(drift_project: Path, args: tuple[str, ...], message: str) -> None:
    p = run_cli("backtest", "--config", str(drift_project), "--stream", str(drift_project.parent / "data"),
                "--start", str(REPLAY_START), "--end", str(REPLAY_END), *args)
    assert p.returncode == 2
    assert message in p.stderr


def test_stream_without_labels_exits_2(drift_project: Path, tmp_path: Path) -> None:
    stream = tmp_path / "unlabelled"
    for part in sorted((drift_project.parent / "data").iterdir()):
        (stream / part.name).mkdir(parents=True)
        for f in part.glob("*.parquet"):
            pd.read_parquet(f).drop(columns=["label"]).to_parquet(stream / part.name / f.name, index=False)
    p = run_cli("backtest", "--config", str(drift_project), "--stream", str(stream),
                "--start", str(REPLAY_START), "--end", str(REPLAY_END), "--policy", "never")
    assert p.returncode == 2
    assert "no label column 'label'" in p.stderr


def test_starts_from_a_registry_champion(drift_project: Path, tmp_path: Path) -> None:
    from ctloop.backtest.run import _stream_cfg
    from ctloop.backtest.train import retrain
    from ctloop.errors import BacktestError

    cfg = load_config(drift_project)
    stream = str(drift_project.parent / "data")
    made = retrain(_stream_cfg(cfg, stream, tmp_path / "reg"), REPLAY_START - dt.timedelta(days=3),
                   tmp_path / "run", "seed-run", {"cause": "manual"})
    assert made.promoted and made.version == 1
    own = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": str(tmp_path / "reg")})})
    req = BacktestRequest(stream, REPLAY_END, REPLAY_END, ("never",), champion=1)
    raw = run_backtest(own, req)
    assert raw["champion"] == {"source": "registry", "version": 1}
    assert raw["runs"][0]["retrains"] == [] and raw["runs"][0]["days"][0]["accuracy"] is not None
    with pytest.raises(BacktestError, match="--champion 7"):
        run_backtest(own, BacktestRequest(stream, REPLAY_END, REPLAY_END, ("never",), champion=7))
