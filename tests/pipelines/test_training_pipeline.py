"""The real KFP local runner end to end, the gate rejecting, bad data, and the golden compiled YAML."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ctloop.config import load_config
from ctloop.registry import Registry
from ctloop.runner import run_local
from pipelines.training import COMPILED, compile_pipeline
from tests.conftest import make_project, tree_bytes

pytestmark = pytest.mark.pipeline


def test_pipeline_registers_a_champion(project: Path) -> None:
    cfg = load_config(project)
    events: list[tuple[str, str]] = []
    result = run_local(cfg, trigger={"cause": "manual", "reason": "test"},
                       on_event=lambda t, s: events.append((t, s)))
    assert result.status == "succeeded", result.error
    assert result.exit_code == 0
    assert result.promoted and result.version == 1
    assert result.metrics["roc_auc"] > 0.7
    reg = Registry(cfg.registry.uri, cfg.name)
    champ = reg.get("champion")
    assert champ.version == 1
    assert champ.metadata["run_id"] == result.run_id
    assert champ.metadata["trigger"] == {"cause": "manual", "reason": "test"}
    assert champ.metadata["metrics"]["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert len(champ.metadata["data"]["content_hash"]) == 64
    assert champ.metadata["data"]["rows"] == 3000
    done = [t for t, s in events if s == "succeeded"]
    assert done == ["ingest", "validate", "validate-gate", "split", "features", "train", "evaluate", "register",
                    "deploy"]
    assert {s.replace("_", "-") for s in result.step_seconds} == set(done)


def test_gate_rejects_and_registry_unchanged(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "p", edit=lambda t: t.replace("roc_auc: 0.70", "roc_auc: 0.999"))
    cfg = load_config(cfg_path)
    before = tree_bytes(Path(cfg.registry.uri))
    result = run_local(cfg)
    assert result.status == "rejected" and result.exit_code == 0
    assert not result.promoted and result.version is None
    failed = [c for c in result.decision["checks"] if not c["passed"]]
    assert failed and failed[0]["name"] == "min_roc_auc"
    assert tree_bytes(Path(cfg.registry.uri)) == before


def test_bad_data_is_rejected_with_exit_3(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "p")
    cfg = load_config(cfg_path)
    assert run_local(cfg).promoted  # a champion exists first
    before = tree_bytes(Path(cfg.registry.uri))
    shutil.rmtree(Path(cfg.data.source) / "date=2026-01-05")
    result = run_local(cfg)
    assert result.status == "data_rejected" and result.exit_code == 3
    assert result.error["step"] == "ingest"
    assert "missing partitions" in result.error["message"]
    assert "missing partitions for 2026-01-05" in result.error["message"]
    assert tree_bytes(Path(cfg.registry.uri)) == before


def test_compiled_yaml_matches_committed(tmp_path: Path) -> None:
    out = compile_pipeline(tmp_path / "pipeline.yaml")
    assert out.read_text() == COMPILED.read_text(), "run `ctloop compile` and commit pipelines/training/pipeline.yaml"
    spec = next(yaml.safe_load_all(out.read_text()))  # 2nd document: the Kubernetes platform spec
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"config_json", "trigger_json", "run_id",
                                                                    "cutoff_date"}
    dag = spec["root"]["dag"]["tasks"]
    assert "condition-1" in dag or any("condition" in k for k in dag)
