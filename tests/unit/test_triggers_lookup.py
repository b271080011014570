"""``LocalSubmitter.lookup``: what recovery asks before re-submitting a pending trigger's run; and how a
canceled local run's outcome is settled from what is on record when the cancel races its end."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import load_config
from ctloop.registry import Registry
from ctloop.triggers.submitters import LocalSubmitter, RunRequest, RunUpdate, stopped_run_outcome
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


def _work(result: dict[str, Any] | None = None) -> Future[dict[str, Any]]:
    """The executor's future of a worker call: answered with ``result``, or broken (worker killed)."""
    fut: Future[dict[str, Any]] = Future()
    fut.set_running_or_notify_cancel()
    if result is None:
        fut.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
    else:
        fut.set_result(result)
    return fut


def test_a_stopped_run_keeps_its_true_outcome(tmp_path: Path) -> None:
    """The three ways a cancel can meet a run's end: the worker answered just before it was stopped (its
    answer stands); it was stopped after register wrote a version (``succeeded`` with that version:
    never a version behind a ``canceled`` row); it was stopped before that (``canceled``)."""
    cfg = load_config(trigger_project(tmp_path / "p"))
    sub = LocalSubmitter(cfg, lambda req, up: None)
    answered = stopped_run_outcome("run-a", _work({"status": "rejected", "version": None, "error": "gate"}),
                                   sub._finished, timeout=0.1)
    assert answered == RunUpdate("rejected", external_id="run-a", error="gate")
    reg = Registry(cfg.registry.uri, cfg.name)
    v = reg.register(tiny_model(tmp_path / "m", blob_kb=1, files=1), meta(run_id="run-b"))
    registered = stopped_run_outcome("run-b", _work(), sub._finished, timeout=0.1)
    assert registered == RunUpdate("succeeded", external_id="run-b", version=v)
    stopped = stopped_run_outcome("run-c", _work(), sub._finished, timeout=0.1)
    assert (stopped.run_status, stopped.version) == ("canceled", None) and "stopped" in (stopped.error or "")
    assert reg.versions() == [v]
