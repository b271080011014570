"""The full training pipeline under the real KFP local runner with ``model.trainer: torch``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from ctloop.runner import run_local
from tests.conftest import make_project

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

TORCH_MODEL = """trainer: torch
  params:
    hidden: [32, 16]
    embedding_dim: 3
    batch_size: 128
    max_epochs: 12
    patience: 3
    learning_rate: 0.005
"""


def use_torch(text: str) -> str:
    """Swap the example's sklearn model block for a small torch one; checkpoint every 10 steps."""
    text = re.sub(r"trainer: sklearn.*?learning_rate: 0\.1\n", TORCH_MODEL, text, flags=re.S)
    return text + "\ntraining:\n  checkpoint_every_steps: 10\n"


def test_pipeline_runs_locally_with_torch_trainer(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "proj", edit=use_torch))
    assert cfg.model.trainer == "torch" and cfg.training.checkpoint_every_steps == 10
    result = run_local(cfg)
    assert result.status == "succeeded", result.error or result.decision
    assert result.promoted and result.version == 1
    version = Registry(cfg.registry.uri, cfg.name).get("champion")
    model = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir("champion"))
    assert model.manifest["trainer"] == "torch" and model.manifest["device"] == "cpu"
    assert (Path(version.model_uri) / "profile.json").is_file()
    assert result.metrics["roc_auc"] >= 0.7
    # checkpoints went to training.checkpoint_uri (resolved against the project folder)
    ckpts = list(Path(cfg.training.checkpoint_uri).glob("*/ckpt-*.pt"))
    assert ckpts and Path(cfg.training.checkpoint_uri).is_relative_to(tmp_path / "proj")
    # per-epoch metrics reached the train task's KFP Metrics artifact
    (out,) = Path(cfg.kfp.pipeline_root).glob("*/train/executor_output.json")
    (art,) = json.loads(out.read_text())["artifacts"]["metrics"]["artifacts"]
    logged = art["metadata"]
    epochs = len(model.manifest["history"])
    assert logged["epoch_001_val_loss"] == model.manifest["history"][0]["val_loss"]
    assert f"epoch_{epochs:03d}_train_loss" in logged and "best_val_loss" in logged
