"""Torch trainer: params/config validation, checkpoint store, corrupt-checkpoint fallback, loading."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ctloop.config import parse_config
from ctloop.errors import ConfigError, ModelError, TrainingInterrupted
from ctloop.model import load_model
from ctloop.project import example_schema
from ctloop.torch_trainer import parse_torch_params
from ctloop.torch_trainer.checkpoint import CheckpointStore
from ctloop.torch_trainer.trainer import train_torch
from ctloop.train import train_model
from tests.helpers_torch import TINY_PARAMS, state_of, tiny_frame

pytestmark = pytest.mark.unit


def test_params_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"model\.params\.hidden\.0"):
        parse_torch_params({"hidden": [0]})
    with pytest.raises(ConfigError, match=r"model\.params\.estimator: unknown key"):
        parse_torch_params({"estimator": "hist_gradient_boosting"})
    with pytest.raises(ConfigError, match=r"model\.params\.dropout"):
        parse_torch_params({"dropout": 1.5})
    assert parse_torch_params({}).batch_size == 256


def test_training_config_validates_and_names_fields() -> None:
    raw = {"name": "x", "data": {"source": "d"}}
    cfg = parse_config(raw)
    assert cfg.training.accelerator_type == "nvidia.com/gpu" and cfg.training.accelerator_limit == 1
    assert cfg.training.tolerations[0].key == "ctloop.io/spot"
    for bad, where in (({"accelerator_limit": -1}, "training.accelerator_limit"),
                       ({"checkpoint_mount_path": "rel"}, "training.checkpoint_mount_path"),
                       ({"tolerations": [{"key": "k", "effect": "Some"}]}, "training.tolerations.0.effect"),
                       ({"gpu": 1}, "training.gpu: unknown key")):
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
            parse_config({**raw, "training": bad})


def test_checkpoint_roundtrip_on_object_store_uri() -> None:
    store = CheckpointStore("memory://ckpt-test/run", keep=2)
    for step in (5, 10, 15):
        store.save(step, {"w": torch.arange(3.0), "step": step})
    assert store.steps() == [15, 10], "older checkpoints are pruned to `keep`"
    loaded = store.load_latest()
    assert loaded is not None and loaded.step == 15 and torch.equal(loaded.state["w"], torch.arange(3.0))


def test_unsupported_checkpoint_uri_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="training.checkpoint_uri"):
        CheckpointStore("nosuchproto://x")


def test_corrupt_newest_checkpoint_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frame, schema = tiny_frame(), example_schema()
    ref = train_torch(frame, schema, TINY_PARAMS, 7, tmp_path / "ref")
    ck = tmp_path / "ckpt"
    with pytest.raises(TrainingInterrupted, match="step 22"):
        train_torch(frame, schema, TINY_PARAMS, 7, tmp_path / "m", checkpoint_uri=str(ck),
                    checkpoint_every=5, on_step=lambda s: s == 22)
    (run_dir,) = list(ck.iterdir())
    store = CheckpointStore(str(run_dir))
    assert store.steps() == [22, 20, 15]
    newest = run_dir / "ckpt-0000000022.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a partial write
    (run_dir / ".ckpt-0000000025.1.tmp").write_bytes(b"half")  # a crashed temp file is ignored
    with caplog.at_level(logging.WARNING):
        man = train_torch(frame, schema, TINY_PARAMS, 7, tmp_path / "m", checkpoint_uri=str(ck),
                          checkpoint_every=5)
    assert "skipping corrupt checkpoint" in caplog.text and "ckpt-0000000022.pt" in caplog.text
    assert man["checkpoint"]["resumed_from_step"] == 20
    got, want = state_of(tmp_path / "m"), state_of(tmp_path / "ref")
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert man["history"] == ref["history"]


def test_all_checkpoints_corrupt_starts_fresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frame, schema = tiny_frame(240), example_schema()
    params = {**TINY_PARAMS, "max_epochs": 2}
    ref = train_torch(frame, schema, params, 1, tmp_path / "ref", checkpoint_uri=str(tmp_path / "ck"))
    run_dir = Path(ref["checkpoint"]["uri"])
    for f in run_dir.glob("ckpt-*.pt"):
        f.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        man = train_torch(frame, schema, params, 1, tmp_path / "m", checkpoint_uri=str(tmp_path / "ck"))
    assert man["checkpoint"]["resumed_from_step"] is None and "skipping corrupt" in caplog.text
    assert man["weights_sha256"] == ref["weights_sha256"]


def test_model_folder_loads_through_load_model(tmp_path: Path) -> None:
    frame, schema = tiny_frame(600, seed=5), example_schema()
    man = train_model("torch", frame, schema, TINY_PARAMS, 0, tmp_path / "m")
    assert (tmp_path / "m" / "profile.json").is_file() and man["trainer"] == "torch"
    model = load_model(tmp_path / "m")
    assert model.manifest["trainer"] == "torch"
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame),) and np.all((proba >= 0) & (proba <= 1))
    assert proba.std() > 0.01, "the model must not predict a constant"
    odd = frame.head(3).copy()
    odd["plan"] = "never-seen"  # unknown category -> the unknown embedding, not an error
    assert model.predict_proba(odd).shape == (3,)
    with pytest.raises(ModelError, match="missing feature"):
        model.predict_proba(frame.drop(columns=["age"]))
    (tmp_path / "m" / "model.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match="does not match the digest recorded"):
        load_model(tmp_path / "m")


def test_single_class_is_a_data_error(tmp_path: Path) -> None:
    frame = tiny_frame(100)
    frame["label"] = 0
    with pytest.raises(ValueError, match="single class"):
        train_torch(frame, example_schema(), TINY_PARAMS, 0, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_torch_is_not_imported_with_ctloop() -> None:
    code = ("import sys, ctloop, ctloop.cli, ctloop.steps, ctloop.model, ctloop.train, ctloop.torch_trainer;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
