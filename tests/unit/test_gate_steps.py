"""The evaluate/register/deploy step functions the KFP components call, without KFP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import ProjectConfig, load_config
from ctloop.errors import ConfigError
from ctloop.registry import Registry
from ctloop.steps import deploy_step, evaluate_step, ingest_step, register_step, split_step, train_step
from tests.conftest import make_project, tree_bytes

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("steps")
    cfg = load_config(make_project(root / "proj", days=6, rows_per_day=200))
    w = root / "work"
    with threadpool_limits(1):
        info = ingest_step(cfg, "", str(w / "data.parquet"))
        split_step(cfg, str(w / "data.parquet"), str(w / "train.parquet"), str(w / "test.parquet"),
                   str(w / "recent.parquet"))
        train_step(cfg, str(w / "train.parquet"), str(w / "model"))
    return {"cfg": cfg, "w": w, "info": info}


def _evaluate(env: dict[str, Any], name: str) -> dict[str, Any]:
    w = env["w"]
    return evaluate_step(env["cfg"], str(w / "model"), str(w / "test.parquet"), str(w / "recent.parquet"),
                         str(w / f"{name}.json"))


def _register(env: dict[str, Any], decision: str, trigger: str) -> dict[str, Any]:
    data = {k: env["info"][k] for k in ("source", "first_day", "last_day", "content_hash", "rows")}
    return register_step(env["cfg"], str(env["w"] / "model"), str(env["w"] / f"{decision}.json"), data,
                         "run-1", trigger)


def test_register_deploy_and_lineage_then_compare_and_swap(env: dict[str, Any]) -> None:
    cfg: ProjectConfig = env["cfg"]
    reg = Registry(cfg.registry.uri, cfg.name)
    first = _evaluate(env, "d1")
    assert first["passed"] and first["champion"] is None
    assert first["kfp_metrics"]["gate_passed"] == 1.0
    out = _register(env, "d1", json.dumps({"cause": "schedule", "cron": "0 3 * * *"}))
    assert out == {"version": 1, "parent": None, "step_seconds": out["step_seconds"]}
    meta = reg.get(1).metadata
    assert meta["data"]["content_hash"] == env["info"]["content_hash"]
    assert meta["profile"] == "model/profile.json"
    assert (Path(reg.get(1).model_uri) / "profile.json").is_file()  # the drift watcher's reference
    assert meta["config_hash"] == cfg.config_hash() and meta["decision"]["passed"] is True
    assert deploy_step(cfg, 1, "run-1")["promoted"] and reg.alias("champion") == 1
    # same model again: a tie passes; its parent is the champion it was compared with
    second = _evaluate(env, "d2")
    assert second["passed"] and second["champion"]["version"] == 1
    assert _register(env, "d2", "")["parent"] == 1
    assert reg.get(2).metadata["trigger"] == {"cause": "manual"}
    v3 = _register(env, "d2", "")["version"]  # compared with v1 too
    reg.promote(v3, "another run won the race")
    before = reg.snapshot()
    res = deploy_step(cfg, 2, "run-2")  # v2 was evaluated against v1, but v3 is champion now
    assert res["promoted"] is False and "champion is v3, not v1" in res["reason"]
    assert reg.snapshot() == before


def test_bad_trigger_json_is_a_config_error_and_registers_nothing(env: dict[str, Any]) -> None:
    _evaluate(env, "d3")
    cfg: ProjectConfig = env["cfg"]
    before = tree_bytes(Path(cfg.registry.uri))
    for bad in ("{not json", '"drift"', '{"fingerprint": "x"}'):
        with pytest.raises(ConfigError, match="trigger_json"):
            _register(env, "d3", bad)
    assert tree_bytes(Path(cfg.registry.uri)) == before


def test_champion_that_cannot_be_evaluated_fails_the_gate_closed(env: dict[str, Any], tmp_path: Path) -> None:
    cfg: ProjectConfig = env["cfg"]
    reg = Registry(cfg.registry.uri, cfg.name)
    champ = reg.alias("champion")
    assert champ is not None
    joblib = Path(reg.get(champ).model_uri) / "model.joblib"
    saved = tmp_path / "saved.joblib"
    shutil.copy(joblib, saved)
    joblib.chmod(0o644)
    try:
        joblib.write_bytes(b"garbage")
        d = _evaluate(env, "d4")
    finally:
        joblib.write_bytes(saved.read_bytes())
        joblib.chmod(0o444)
    assert d["passed"] is False and d["champion"]["error"]
    failed = [c for c in d["checks"] if not c["passed"]]
    assert {c["name"] for c in failed} == {"beat_champion_holdout_roc_auc", "beat_champion_recent_roc_auc"}
    assert all(f"champion v{champ} could not be evaluated" in c["reason"] for c in failed)
