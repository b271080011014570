"""The gate and the registry through the real KFP local runner and the real CLI.

Run 1 trains on the stable days (no champion: absolute checks only). Run 2, triggered by a drift alert,
trains on a window whose newest days drifted; the champion is re-evaluated on the same holdout and
recent slice, the challenger beats it and is promoted, ``previous`` points at v1, and the lineage names
the trigger and the parent. A stale challenger is then rejected on the recent slice by the same step
functions the components call, and ``ctloop registry rollback`` restores v1.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import ProjectConfig, load_config
from ctloop.errors import ModelError
from ctloop.registry import Registry
from ctloop.runner import RunResult, run_local
from ctloop.steps import evaluate_step, ingest_step, register_step, split_step, train_step
from tests.conftest import START, make_project, run_cli, tree_bytes

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

DRIFT_DAY = START + dt.timedelta(days=10)
ALERT = {"cause": "drift", "fingerprint": "3f9c2a1b7d", "alertname": "CtloopFeatureDrift"}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One OpenMP thread per process: on a shared, loaded machine this is many times faster."""
    from threadpoolctl import threadpool_limits

    with pytest.MonkeyPatch.context() as mp, threadpool_limits(1):
        mp.setenv("OMP_NUM_THREADS", "1")  # inherited by the KFP local runner's step subprocesses
        yield


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("gate-loop")
    cfg_path = make_project(root / "proj", days=14, drift_from=DRIFT_DAY)
    cfg = load_config(cfg_path)
    first = run_local(cfg, trigger={"cause": "manual", "reason": "bootstrap"},
                      cutoff_date=(DRIFT_DAY - dt.timedelta(days=1)).isoformat())
    second = run_local(cfg, trigger=ALERT)
    return {"cfg": cfg, "path": cfg_path, "first": first, "second": second, "root": root}


def _cli(loop: dict[str, Any], *args: str) -> Any:
    """The real typer app in-process (the subprocess entry point is exercised below)."""
    from typer.testing import CliRunner

    from ctloop.cli import app

    res = CliRunner().invoke(app, ["registry", *args, "--config", str(loop["path"]), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_first_run_no_champion_absolute_checks_only(loop: dict[str, Any]) -> None:
    first: RunResult = loop["first"]
    assert first.status == "succeeded" and first.promoted and first.version == 1, first.error
    assert first.decision is not None and first.decision["champion"] is None
    assert "no champion yet: only absolute checks apply" in first.decision["notes"]
    assert any(c["name"] == "infra_load_predict" and c["passed"] for c in first.decision["checks"])
    lin = _cli(loop, "lineage", "1")
    assert lin["trigger"] == {"cause": "manual", "reason": "bootstrap"} and lin["parent"] is None
    assert lin["data"]["last_day"] == (DRIFT_DAY - dt.timedelta(days=1)).isoformat()


def test_drift_triggered_challenger_beats_champion_and_lineage_names_trigger_and_parent(
        loop: dict[str, Any]) -> None:
    second: RunResult = loop["second"]
    assert second.status == "succeeded" and second.promoted and second.version == 2, second.error
    decision = second.decision or {}
    assert decision["champion"]["version"] == 1  # evaluated on the same data in the same step
    assert decision["champion"]["recent_metrics"]["rows"] == decision["recent_metrics"]["rows"] > 0
    recent = next(c for c in decision["checks"] if c["name"] == "beat_champion_recent_roc_auc")
    assert recent["passed"] and recent["value"] > 0.05, recent
    reg = Registry(loop["cfg"].registry.uri, loop["cfg"].name)
    assert (reg.alias("champion"), reg.alias("previous")) == (2, 1)
    lin = _cli(loop, "lineage", "champion")
    assert lin["version"] == 2 and lin["trigger"] == ALERT and lin["parent"] == 1
    assert lin["ancestors"][0]["version"] == 1 and lin["ancestors"][0]["trigger"] == "manual"
    assert lin["run_id"] == second.run_id and lin["decision"]["compared_with"] == 1
    assert lin["data"]["content_hash"]
    assert lin["data"]["last_day"] == (START + dt.timedelta(days=13)).isoformat()
    assert lin["config_hash"] == loop["cfg"].config_hash() and lin["code_version"]["source_sha256"]
    text = run_cli("registry", "lineage", "2", "--config", str(loop["path"]))
    assert "drift" in text.stdout and "3f9c2a1b7d" in text.stdout and "v1" in text.stdout


def _stale_challenger(cfg: ProjectConfig, work: Path) -> tuple[str, str, str]:
    """Current test/recent split, and a model trained only on the days before the drift."""
    ingest_step(cfg, "", str(work / "now.parquet"))
    split_step(cfg, str(work / "now.parquet"), str(work / "train.parquet"), str(work / "test.parquet"),
               str(work / "recent.parquet"))
    ingest_step(cfg, (DRIFT_DAY - dt.timedelta(days=1)).isoformat(), str(work / "old.parquet"))
    split_step(cfg, str(work / "old.parquet"), str(work / "old-train.parquet"),
               str(work / "old-test.parquet"), str(work / "old-recent.parquet"))
    train_step(cfg, str(work / "old-train.parquet"), str(work / "stale-model"))
    return str(work / "stale-model"), str(work / "test.parquet"), str(work / "recent.parquet")


def test_stale_challenger_worse_on_recent_slice_is_rejected_with_reason(loop: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    cfg: ProjectConfig = loop["cfg"]
    reg = Registry(cfg.registry.uri, cfg.name)
    assert reg.alias("champion") == 2
    model, test, recent = _stale_challenger(cfg, tmp_path)
    before = tree_bytes(Path(cfg.registry.uri))
    record = evaluate_step(cfg, model, test, recent, str(tmp_path / "decision.json"))
    assert record["passed"] is False
    failed = {c["name"]: c for c in record["checks"] if not c["passed"]}
    assert "beat_champion_recent_roc_auc" in failed
    reason = failed["beat_champion_recent_roc_auc"]["reason"]
    assert "recent slice" in reason and "champion v2" in reason and "does not beat" in reason
    assert reason in record["markdown"] and "REJECTED" in record["markdown"]
    on_disk = json.loads((tmp_path / "decision.json").read_text())  # written although it failed
    assert on_disk["passed"] is False and on_disk["champion"]["version"] == 2
    with pytest.raises(ModelError, match="did not pass; nothing registered"):
        register_step(cfg, model, str(tmp_path / "decision.json"), {}, "run-x", json.dumps(ALERT))
    assert tree_bytes(Path(cfg.registry.uri)) == before


def test_cli_rollback_restores_and_promote_diff_list(loop: dict[str, Any]) -> None:
    assert _cli(loop, "rollback", "--reason", "canary errors") == {"champion": 1, "previous": 2}
    assert _cli(loop, "show", "champion")["version"] == 1
    reg = Registry(loop["cfg"].registry.uri, loop["cfg"].name)
    assert reg.alias_doc("champion")["reason"] == "canary errors"
    listed = {r["version"]: r for r in _cli(loop, "list")}
    assert listed[1]["aliases"] == ["champion"] and listed[2]["aliases"] == ["previous"]
    assert listed[2]["trigger"] == "drift" and listed[2]["parent"] == 1
    diff = _cli(loop, "diff", "1", "2")
    assert diff["fields"]["data.content_hash"]["same"] is False and diff["fields"]["trigger"]["b"] == "drift"
    assert _cli(loop, "promote", "2", "--reason", "fixed canary")["champion"] == 2
    assert [e["action"] for e in _cli(loop, "history")][-2:] == ["rollback", "promote"]
    missing = run_cli("registry", "show", "42", "--config", str(loop["path"]))
    assert missing.returncode != 0 and "no version 42" in missing.stderr
