"""The pipeline's steps as the Airflow/Prefect/Dagster adapters run them (``ctloop.orchestrators.common``):
in order, in-process and in another interpreter, registering a model whose lineage names the trigger."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.errors import DataError, SubmitError
from ctloop.orchestrators.common import STEPS, StepRun, run_step, workdir
from ctloop.registry import Registry
from tests.conftest import make_project

pytestmark = pytest.mark.pipeline


def test_steps_in_order_register_the_trigger_in_lineage(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "proj", days=8, rows_per_day=200)
    trigger = {"cause": "drift", "source": "alert", "reason": "alert CtloopDriftShareHigh firing",
               "idempotency_key": "abc123", "run_id": "churn-alert-abc123"}
    run = StepRun(str(cfg_path), "churn-alert-abc123", json.dumps(trigger))
    out = {}
    for step in STEPS:
        # one step in another interpreter (what python=... does when the orchestrator's deps clash)
        r = StepRun(**{**run.__dict__, "python": sys.executable}) if step == "split" else run
        out[step] = run_step(step, r)
    assert out["ingest"]["rows"] == 8 * 200
    assert out["split"]["train_rows"] > 0 and out["evaluate"]["passed"] is True
    assert out["register"] == {"registered": True, "version": 1}
    assert out["deploy"]["deployed"] is True
    cfg = load_config(cfg_path)
    reg = Registry(cfg.registry.uri, cfg.name)
    meta = reg.get(1).metadata
    assert meta["run_id"] == "churn-alert-abc123" and meta["trigger"]["cause"] == "drift"
    assert meta["trigger"]["idempotency_key"] == "abc123"
    assert reg.alias("champion") == 1
    assert (workdir(run) / "decision.json").is_file()


def test_bad_data_stops_at_validation_and_registers_nothing(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "proj", days=4, rows_per_day=100)
    run = StepRun(str(cfg_path), "churn-manual-1", cutoff_date="2001-01-01")
    with pytest.raises(DataError):
        run_step("ingest", run)
    with pytest.raises(SubmitError, match="step ingest of run churn-manual-1 failed: DataError"):
        run_step("ingest", StepRun(**{**run.__dict__, "python": sys.executable}))
    cfg = load_config(cfg_path)
    assert Registry(cfg.registry.uri, cfg.name).versions() == []
    with pytest.raises(ValueError, match="unknown step"):
        run_step("nope", run)
