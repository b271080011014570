"""(b) An alert through ``/alerts`` starts a run on a REAL orchestrator that completes the real pipeline and
registers a model whose lineage names the alert. Slow (the orchestrators' schedulers, workers and a
training run): ``make test-orchestrators`` runs these."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.registry import Registry
from ctloop.triggers.api import build_trigger_app
from ctloop.triggers.service import TriggerService
from tests.conftest import free_port, make_project
from tests.helpers_orchestrators import (
    Server,
    airflow_server,
    dagster_server,
    prefect_serve,
    prefect_server,
)
from tests.helpers_triggers import TOKEN, serve_in_thread, wait_for, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.orchestrators]
RUN_TIMEOUT = float(os.environ.get("CTLOOP_ORCH_RUN_TIMEOUT", "400"))


def project(root: Path, port: int) -> Path:
    """An example project (generated data) whose triggers go to the orchestrator (set later)."""
    cfg_path = make_project(root, days=8, rows_per_day=200)
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / "trigger-token").write_text(TOKEN + "\n")
    doc = yaml.safe_load(cfg_path.read_text())
    doc.setdefault("triggers", {}).update(
        {"endpoint": f"http://127.0.0.1:{port}", "token_file": "secrets/trigger-token"})
    cfg_path.write_text(yaml.safe_dump(doc))
    return cfg_path


def with_orchestrator(cfg_path: Path, server: Server) -> None:
    doc = yaml.safe_load(cfg_path.read_text())
    doc["triggers"].update({"submitter": server.name, server.name: server.settings})
    cfg_path.write_text(yaml.safe_dump(doc))


@contextlib.contextmanager
def watcher(cfg_path: Path, port: int) -> Iterator[tuple[str, TriggerService]]:
    svc = TriggerService.create(load_config(cfg_path), CollectorRegistry())
    svc.tick_seconds = 1.0
    with serve_in_thread(build_trigger_app(svc), port) as base:
        yield base, svc


def alert_to_model(cfg_path: Path, port: int, timeout: float) -> dict[str, Any]:
    """POST the drift alert; wait for the run to finish on the orchestrator; return the ledger row and
    the registered version's metadata."""
    with watcher(cfg_path, port) as (base, svc):
        r = httpx.post(f"{base}/alerts", json=webhook(), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        (d,) = r.json()["decisions"]
        assert d["decision"] == "fired", d
        wait_for(lambda: svc.ledger.get(d["trigger_id"]).run_status in ("succeeded", "failed", "canceled"),
                 timeout, f"run {d['run_id']} to finish", interval=1)
        row = svc.ledger.get(d["trigger_id"])
    assert row.run_status == "succeeded", row
    cfg = load_config(cfg_path)
    reg = Registry(cfg.registry.uri, cfg.name)
    (version,) = reg.versions()
    return {"decision": d, "row": row, "meta": reg.get(version).metadata}


def check_lineage(out: dict[str, Any]) -> None:
    d, meta = out["decision"], out["meta"]
    assert meta["run_id"] == d["run_id"]
    assert meta["trigger"]["cause"] == "drift" and meta["trigger"]["idempotency_key"] == d["idempotency_key"]
    assert "CtloopDriftShareHigh" in meta["trigger"]["reason"]
    assert out["row"].external_id


def test_prefect_runs_the_pipeline(tmp_path: Path) -> None:
    port = free_port()
    cfg_path = project(tmp_path / "proj", port)
    with prefect_server(tmp_path / "prefect") as server, prefect_serve(server, cfg_path, sys.executable):
        with_orchestrator(cfg_path, server)
        check_lineage(alert_to_model(cfg_path, port, timeout=RUN_TIMEOUT))


def test_dagster_runs_the_pipeline(tmp_path: Path) -> None:
    port = free_port()
    cfg_path = project(tmp_path / "proj", port)
    with dagster_server(tmp_path / "dagster", cfg_path, python=sys.executable, daemon=True) as server:
        with_orchestrator(cfg_path, server)
        check_lineage(alert_to_model(cfg_path, port, timeout=RUN_TIMEOUT))


def test_airflow_runs_the_pipeline(tmp_path: Path) -> None:
    port = free_port()
    cfg_path = project(tmp_path / "proj", port)
    with airflow_server(tmp_path / "airflow", cfg_path, python=sys.executable, scheduler=True) as server:
        with_orchestrator(cfg_path, server)
        check_lineage(alert_to_model(cfg_path, port, timeout=RUN_TIMEOUT))
