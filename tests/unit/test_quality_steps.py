"""The pipeline's evaluate/register steps fit the holdout calibration and register it in profile v2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.profile import Profile
from ctloop.registry import Registry
from ctloop.steps import evaluate_step, ingest_step, register_step, split_step, train_step
from tests.conftest import make_project

pytestmark = pytest.mark.unit


def test_registered_profile_carries_the_holdout_calibration(tmp_path: Path) -> None:
    from threadpoolctl import threadpool_limits

    cfg = load_config(make_project(tmp_path / "proj", days=6, rows_per_day=200))
    w = tmp_path / "work"
    with threadpool_limits(1):
        info = ingest_step(cfg, "", str(w / "data.parquet"))
        split = split_step(cfg, str(w / "data.parquet"), str(w / "train.parquet"), str(w / "test.parquet"),
                           str(w / "recent.parquet"))
        train_step(cfg, str(w / "train.parquet"), str(w / "model"))
        record = evaluate_step(cfg, str(w / "model"), str(w / "test.parquet"), str(w / "recent.parquet"),
                               str(w / "decision.json"))
    assert record["passed"]
    cal = record["calibration"]
    assert cal["rows"] == split["test_rows"] and cal["brier_after"] <= cal["brier_before"]
    assert json.loads((w / "decision.json").read_text())["calibration"] == cal
    before = (w / "model" / "profile.json").read_bytes()
    data = {k: info[k] for k in ("source", "first_day", "last_day", "content_hash", "rows")}
    version = register_step(cfg, str(w / "model"), str(w / "decision.json"), data, "run-1", "")["version"]
    reg = Registry(cfg.registry.uri, cfg.name)
    profile = Profile.load(Path(reg.get(version).model_uri))
    assert profile.format == "ctloop-profile/v2"
    assert profile.calibration is not None and profile.calibration.model_dump() == cal
    meta = reg.get(version).metadata
    assert meta["calibration"]["rows"] == cal["rows"] and "calibration" not in meta["decision"]
    assert (w / "model" / "profile.json").read_bytes() == before  # the step's input is not modified
