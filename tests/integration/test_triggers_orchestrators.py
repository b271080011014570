"""The airflow, prefect and dagster submitters against REAL servers (each in its own venv, started on
127.0.0.1): an alert through ``/alerts`` creates exactly one run on the orchestrator, carrying the
trigger; a duplicate and a resolved alert create nothing; a re-submit (recovery) finds the run; an
unreachable server or refused credentials leave a ``submit_failed`` row that a later tick retries."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.errors import ConfigError, SubmitError
from ctloop.triggers.api import build_trigger_app
from ctloop.triggers.orchestrators.common import RUN_ID_TAG
from ctloop.triggers.service import TriggerService
from ctloop.triggers.submitters import RunRequest
from tests.conftest import free_port, run_cli
from tests.helpers_orchestrators import (
    TIMINGS,
    Server,
    airflow2_server,
    airflow_server,
    dagster_server,
    prefect_deployment,
    prefect_server,
)
from tests.helpers_triggers import TOKEN, serve_in_thread, trigger_project, wait_for, webhook

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("airflow")
    with airflow_server(home, trigger_project(home / "dag-project")) as s:
        yield s


@pytest.fixture(scope="module")
def airflow2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("airflow2")
    with airflow2_server(home, trigger_project(home / "dag-project")) as s:
        yield s


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect")
    with prefect_server(home) as s:
        prefect_deployment(s, trigger_project(home / "flow-project"))
        yield s


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("dagster")
    with dagster_server(home, trigger_project(home / "job-project")) as s:
        yield s


def orchestrator_runs(server: Server) -> list[dict[str, Any]]:
    """Every run on the server, read with the orchestrator's own API (not the submitter's code):
    ``{"id", "name", "params"}``."""
    if server.name == "airflow" and server.settings["api_version"] == "v1":
        with httpx.Client(base_url=server.url, timeout=30, auth=("ctloop", "airflow2-test-pw")) as c:
            r = c.get("/api/v1/dags/ctloop_training/dagRuns")
            r.raise_for_status()
            return [{"id": d["dag_run_id"], "name": d["dag_run_id"], "params": d["conf"]} for d in r.json()["dag_runs"]]
    if server.name == "airflow":
        with httpx.Client(base_url=server.url, timeout=30) as c:
            tok = c.post("/auth/token", json={"username": "ctloop", "password": "airflow-test-pw"})
            r = c.get("/api/v2/dags/ctloop_training/dagRuns",
                      headers={"Authorization": f"Bearer {tok.json()['access_token']}"})
            r.raise_for_status()
            return [{"id": d["dag_run_id"], "name": d["dag_run_id"], "params": d["conf"]} for d in r.json()["dag_runs"]]
    if server.name == "prefect":
        with httpx.Client(base_url=server.url, timeout=30, auth=("ctloop", "prefect-test-pw")) as c:
            r = c.post("/flow_runs/filter", json={})
            r.raise_for_status()
            return [{"id": d["id"], "name": d["name"], "params": d["parameters"],
                     "idempotency_key": d["idempotency_key"]} for d in r.json()]
    q = "{ runsOrError { ... on Runs { results { runId runConfigYaml tags { key value } } } } }"
    r = httpx.post(f"{server.url}/graphql", json={"query": q}, timeout=30)
    r.raise_for_status()
    out = []
    for d in r.json()["data"]["runsOrError"]["results"]:
        tags = {t["key"]: t["value"] for t in d["tags"]}
        import yaml

        conf = yaml.safe_load(d["runConfigYaml"])["ops"]["ingest"]["config"]
        out.append({"id": d["runId"], "name": tags.get(RUN_ID_TAG), "params": conf})
    return out


@contextlib.contextmanager
def watcher(tmp: Path, server: Server, **settings: Any) -> Iterator[tuple[str, TriggerService]]:
    """The trigger app with the orchestrator's submitter (from the config), served on a free port."""
    port = free_port()
    cfg = load_config(trigger_project(tmp, port=port, submitter=server.name,
                                      **{server.name: {**server.settings, **settings}}))
    svc = TriggerService.create(cfg, CollectorRegistry())
    with serve_in_thread(build_trigger_app(svc), port) as base:
        yield base, svc


def _check_loop(tmp: Path, server: Server) -> None:
    before = {r["id"] for r in orchestrator_runs(server)}
    key = f'{{}}:{{alertname="CtloopDriftShareHigh", test="{tmp.name}"}}'
    with watcher(tmp / "p", server) as (base, svc), httpx.Client(base_url=base, timeout=60) as c:
        assert svc.submitter.name == server.name
        r = c.post("/alerts", json=webhook(group_key=key), headers=AUTH)
        assert r.status_code == 200, r.text
        (d,) = r.json()["decisions"]
        assert d["decision"] == "fired", d
        row = svc.ledger.get(d["trigger_id"])
        assert row.run_status == "submitted", row
        new = [x for x in orchestrator_runs(server) if x["id"] not in before]
        assert len(new) == 1, new  # (a) exactly one run on the orchestrator
        run = new[0]
        assert row.external_id == run["id"]  # the ledger shows the orchestrator's run id
        assert run["name"] == d["run_id"]
        trigger = json.loads(run["params"]["trigger_json"])
        assert trigger["cause"] == "drift" and trigger["idempotency_key"] == d["idempotency_key"]
        assert trigger["run_id"] == d["run_id"] and "CtloopDriftShareHigh" in trigger["reason"]
        assert run["params"]["run_id"] == d["run_id"]
        if server.name == "prefect":
            assert run["idempotency_key"] == d["idempotency_key"]
        # (c) the same alert again (Alertmanager's repeat) and its resolution: nothing new
        dup = c.post("/alerts", json=webhook(group_key=key), headers=AUTH).json()["decisions"][0]
        assert dup["decision"] == "suppressed" and dup["reason_code"] == "duplicate", dup
        res = c.post("/alerts", json=webhook(status="resolved", group_key=key), headers=AUTH).json()
        assert all(x["decision"] == "suppressed" for x in res["decisions"]), res
        # recovery after a crash re-submits: found on the orchestrator, not created again
        req = RunRequest(row.id, d["run_id"], trigger)
        assert svc.submitter.lookup(req) is not None
        again = svc.submitter.submit(req)
        assert again.external_id == run["id"] and again.run_status == "submitted"
        assert svc.submitter.lookup(RunRequest(0, "churn-alert-000000000000", {"cause": "x"})) is None
        svc.tick()  # polling maps the orchestrator's state (queued: still submitted)
        assert svc.ledger.get(row.id).run_status == "submitted"
    after = [x for x in orchestrator_runs(server) if x["id"] not in before]
    assert len(after) == 1, after
    # `ctloop triggers` shows the orchestrator's run id for the fired trigger
    proc = run_cli("triggers", "--config", str(tmp / "p" / "ctloop.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)["triggers"]}
    assert rows[d["trigger_id"]]["external_id"] == run["id"]
    table = subprocess.run([sys.executable, "-m", "ctloop.cli", "triggers", "--config", str(tmp / "p" / "ctloop.yaml")],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert table.returncode == 0 and "orchestrator run" in table.stdout and run["id"] in table.stdout, table.stdout


def test_airflow_alert_creates_exactly_one_dag_run(tmp_path: Path, airflow: Server) -> None:
    _check_loop(tmp_path, airflow)


def test_airflow2_rest_v1_alert_creates_exactly_one_dag_run(tmp_path: Path, airflow2: Server) -> None:
    _check_loop(tmp_path, airflow2)


def test_prefect_alert_creates_exactly_one_flow_run(tmp_path: Path, prefect: Server) -> None:
    _check_loop(tmp_path, prefect)


def test_dagster_alert_creates_exactly_one_run(tmp_path: Path, dagster: Server) -> None:
    _check_loop(tmp_path, dagster)


@pytest.mark.parametrize("name", ["airflow", "airflow2", "prefect", "dagster"])
def test_refused_credentials_are_retried_until_they_work(
    tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    server: Server = request.getfixturevalue(name)
    before = {r["id"] for r in orchestrator_runs(server)}
    secret = tmp_path / "secret"
    good = Path(str(server.settings.get("password_file") or "")).read_text() if name != "dagster" else ""
    if name == "dagster":  # OSS Dagster has no auth: an unreachable endpoint instead, then the real one
        dead = f"http://127.0.0.1:{free_port()}"
        cm = watcher(tmp_path / "p", server, endpoint=dead)
    else:
        secret.write_text("wrong-password\n")
        cm = watcher(tmp_path / "p", server, password_file=str(secret))
    with cm as (base, svc):
        svc.cfg = svc.cfg.model_copy(update={"triggers": svc.cfg.triggers.model_copy(
            update={"submit_retry_seconds": 0.01})})
        r = httpx.post(f"{base}/alerts", json=webhook(group_key=f"retry-{name}"), headers=AUTH, timeout=60)
        (d,) = r.json()["decisions"]
        row = svc.ledger.get(d["trigger_id"])
        assert d["decision"] == "fired" and row.run_status == "submit_failed", row
        want = "unreachable" if name == "dagster" else "authentication failed"
        assert want in row.detail["error"] and server.name in row.detail["error"], row.detail
        assert [x for x in orchestrator_runs(server) if x["id"] not in before] == []
        if name == "dagster":
            from ctloop.triggers.orchestrators.dagster import DagsterSubmitter

            fixed = svc.cfg.triggers.dagster.model_copy(update={"endpoint": server.url})
            svc.submitter = DagsterSubmitter(svc.cfg.model_copy(update={"triggers": svc.cfg.triggers.model_copy(
                update={"dagster": fixed})}))
        else:
            secret.write_text(good)  # the Secret is fixed (rotated): the next retry reads it
        svc.tick()
        row = svc.ledger.get(d["trigger_id"])
        assert row.run_status == "submitted", row
    new = [x for x in orchestrator_runs(server) if x["id"] not in before]
    assert len(new) == 1 and new[0]["id"] == row.external_id


def test_config_errors_fail_fast(tmp_path: Path) -> None:
    cfg = load_config(trigger_project(tmp_path / "p", submitter="airflow"))
    with pytest.raises(ConfigError, match=r"triggers.airflow.endpoint is not set"):
        TriggerService.create(cfg, CollectorRegistry())
    cfg = load_config(trigger_project(tmp_path / "q", submitter="prefect", prefect={
        "endpoint": "http://127.0.0.1:9", "token_env": "CTLOOP_TEST_UNSET_TOKEN"}))
    with pytest.raises(ConfigError, match="CTLOOP_TEST_UNSET_TOKEN"):
        TriggerService.create(cfg, CollectorRegistry())
    with pytest.raises(Exception, match="deployment"):
        load_config(trigger_project(tmp_path / "r", submitter="prefect", prefect={"deployment": "no-slash"}))
    with pytest.raises(Exception, match="password"):
        load_config(trigger_project(tmp_path / "s", submitter="dagster", dagster={"password": "inline"}))


def test_orchestrator_timings_are_reported(airflow: Server, prefect: Server, dagster: Server) -> None:
    """Install and start times of the real servers (printed for the README/RESULTS; no timed assert)."""
    print("orchestrator timings:", json.dumps(TIMINGS))
    assert {"airflow_start_s", "prefect_start_s", "dagster_start_s"} <= set(TIMINGS)


def test_unreachable_is_a_submit_error(tmp_path: Path) -> None:
    from ctloop.triggers.orchestrators.airflow import AirflowSubmitter

    cfg = load_config(trigger_project(tmp_path / "p", submitter="airflow",
                                      airflow={"endpoint": f"http://127.0.0.1:{free_port()}", "api_version": "v1"}))
    sub = AirflowSubmitter(cfg)
    with pytest.raises(SubmitError, match="unreachable"):
        sub.submit(RunRequest(1, "churn-alert-x", {"cause": "drift"}))
    assert sub.poll(RunRequest(1, "churn-alert-x", {"cause": "drift"}), None) is None


@pytest.mark.parametrize("name", ["airflow", "airflow2", "prefect", "dagster"])
def test_cancel_and_the_final_status_reach_the_ledger(
    tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    server: Server = request.getfixturevalue(name)
    with watcher(tmp_path / "p", server) as (base, svc):
        r = httpx.post(f"{base}/trigger", json={"reason": f"cancel me ({name})", "key": f"cancel-{name}"},
                       headers=AUTH, timeout=60)
        d = r.json()
        assert r.status_code == 202 and d["decision"] == "fired", d
        row = svc.ledger.get(d["trigger_id"])
        req = RunRequest(row.id, d["run_id"], {**row.detail["lineage"], "run_id": d["run_id"]})
        cancel = svc.submitter.cancel(req)  # type: ignore[attr-defined]
        assert cancel is not None and cancel.external_id == row.external_id
        want = {"airflow": "failed", "airflow2": "failed", "prefect": "canceled", "dagster": "canceled"}[name]
        wait_for(lambda: (svc.tick(), svc.ledger.get(row.id).run_status)[1] == want, 30,
                 f"{name} run {d['run_id']} to reach {want} in the ledger", interval=0.5)
        row = svc.ledger.get(row.id)
        assert row.external_id == cancel.external_id
        if name.startswith("airflow"):
            assert "ended failed" in row.detail["error"]


def _dagster_status(server: Server, run_id: str) -> str:
    """A run's status read with Dagster's own GraphQL API (not the submitter's code)."""
    q = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    r = httpx.post(f"{server.url}/graphql", json={"query": q, "variables": {"id": run_id}}, timeout=30)
    r.raise_for_status()
    return str(r.json()["data"]["runOrError"]["status"])


def test_dagster_run_is_canceled_through_the_service(tmp_path: Path, dagster: Server) -> None:
    """``TriggerService.cancel`` (what ``POST /triggers/{id}/cancel`` and ``ctloop cancel`` call) stops
    the run on the real Dagster server and records who/why; the row is final and no longer active."""
    from ctloop.errors import CancelConflictError

    with watcher(tmp_path / "p", dagster) as (base, svc):
        r = httpx.post(f"{base}/trigger", json={"reason": "cancel through the service", "key": "svc-cancel"},
                       headers=AUTH, timeout=60)
        d = r.json()
        assert r.status_code == 202, d
        ext = svc.ledger.get(d["trigger_id"]).external_id
        assert ext and _dagster_status(dagster, ext) in ("QUEUED", "NOT_STARTED")
        r = httpx.post(f"{base}/triggers/{d['trigger_id']}/cancel", json={"reason": "by ops: wrong window"},
                       headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        row = r.json()
        assert (row["run_status"], row["external_id"], row["submitter"]) == ("canceled", ext, "dagster")
        assert row["detail"]["cancel"]["reason"] == "by ops: wrong window"
        wait_for(lambda: _dagster_status(dagster, ext) == "CANCELED", 30, f"dagster run {ext} to be CANCELED",
                 interval=0.5)
        svc.tick()
        assert svc.ledger.get(d["trigger_id"]).run_status == "canceled"
        assert svc.policy.status(svc.cfg.name)["active_run"] is None
        with pytest.raises(CancelConflictError, match="already canceled"):
            svc.cancel(d["trigger_id"], "again")
