"""``storage`` in the config reaches every compiled pipeline step (env values, the credentials Secret as
``secretKeyRef`` env), only when set: the reference pipeline (``pipelines/training/pipeline.yaml``) stays
as committed. The kind project's pipeline also asks for no GPU and trains on the runtime image."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.config import load_config
from pipelines.training import COMPILED, compile_for_config, compile_pipeline
from tests.helpers_cluster import KIND_CONFIG
from tests.pipelines.test_torch_scheduling import _load_compiled

pytestmark = pytest.mark.pipeline

STEPS = ("ingest", "validate", "validate-gate", "split", "features", "train", "evaluate", "register", "deploy")


def test_kind_config_gives_every_step_the_storage_env(tmp_path: Path) -> None:
    cfg = load_config(KIND_CONFIG)
    spec, executors = _load_compiled(compile_for_config(cfg, tmp_path / "pipeline.yaml"))
    containers = spec["deploymentSpec"]["executors"]
    assert sorted(containers) == sorted(f"exec-{s}" for s in STEPS)
    for name, ex in containers.items():
        env = {e["name"]: e["value"] for e in ex["container"].get("env", [])}
        assert env == cfg.storage.env, name
        (secret,) = executors[name]["secretAsEnv"]
        assert secret["secretName"] == cfg.storage.secret
        assert {m["envVar"]: m["secretKey"] for m in secret["keyToEnv"]} == cfg.storage.secret_keys
        assert ex["container"]["image"] == cfg.kfp.images.runtime  # trainer_gpu is the runtime image on kind
    train = containers["exec-train"]["container"]
    assert "accelerator" not in train["resources"]
    assert "tolerations" not in executors["exec-train"] and "nodeSelector" not in executors["exec-train"]
    assert executors["exec-train"]["pvcMount"][0]["constant"] == cfg.training.checkpoint_pvc


def test_without_storage_the_pipeline_is_the_reference_one(tmp_path: Path) -> None:
    out = compile_pipeline(tmp_path / "pipeline.yaml")
    assert out.read_text() == COMPILED.read_text()
    text = out.read_text()
    assert "secretAsEnv" not in text and "AWS_" not in text
