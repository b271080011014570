"""``LocalSubmitter.lookup``: what recovery asks before re-submitting a pending trigger's run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.registry import Registry
from ctloop.triggers.submitters import LocalSubmitter, RunRequest
from tests.helpers_registry import meta, tiny_model
from tests.helpers_triggers import trigger_project

pytestmark = pytest.mark.unit


def test_local_lookup_uses_the_run_log_and_the_registry(tmp_path: Path) -> None:
    cfg = load_config(trigger_project(tmp_path / "p"))
    outcomes: list[object] = []
    sub = LocalSubmitter(cfg, lambda req, up: outcomes.append(up))
    req = RunRequest(1, "churn-alert-000000000001", {"cause": "drift"})
    assert sub.lookup(req) is None  # never started: recovery submits it
    log = Path(cfg.kfp.pipeline_root) / "logs" / f"{req.run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("started\n")
    got = sub.lookup(req)  # started before the restart, died with the old watcher
    assert got is not None and got.run_status == "interrupted" and str(log) in (got.error or "")
    reg = Registry(cfg.registry.uri, cfg.name)
    v = reg.register(tiny_model(tmp_path / "m", blob_kb=1, files=1), meta(run_id=req.run_id))
    got = sub.lookup(req)  # it registered a version: done
    assert got is not None and got.run_status == "succeeded" and got.version == v
    assert outcomes == [] and sub._pool is None  # lookups start nothing
