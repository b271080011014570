"""The trigger endpoints under a real uvicorn server, and the `ctloop trigger` / `ctloop triggers` CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest

from ctloop.config import load_config
from ctloop.triggers.api import build_trigger_app
from tests.conftest import free_port, run_cli
from tests.helpers_triggers import (
    TOKEN,
    RecordingSubmitter,
    build_service,
    serve_in_thread,
    trigger_project,
    webhook,
)

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    cfg_path = trigger_project(tmp_path / "p", port=port, max_body_bytes=4096, schedule="0 3 * * *")
    cfg = load_config(cfg_path)
    svc = build_service(cfg, tmp_path / "subs.sqlite")
    with serve_in_thread(build_trigger_app(svc), port) as base:
        yield base, cfg_path, RecordingSubmitter(tmp_path / "subs.sqlite")


def test_auth_body_limit_and_malformed(server) -> None:  # type: ignore[no-untyped-def]
    base, _cfg, rec = server
    body = json.dumps(webhook())
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post("/alerts", content=body)
        assert r.status_code == 401 and "bearer" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/alerts", content=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/trigger", json={"reason": "x"}).status_code == 401
        r = c.post("/alerts", content=b"x" * 5000, headers=AUTH)
        assert r.status_code == 413 and "max_body_bytes=4096" in r.json()["error"]

        def chunks():  # no Content-Length: the limit still holds while streaming
            for _ in range(10):
                yield b"y" * 1000

        r = c.post("/alerts", content=chunks(), headers=AUTH)
        assert r.status_code == 413
        r = c.post("/alerts", content=b'{"version": "4"}', headers=AUTH)
        assert r.status_code == 400 and "groupKey" in r.json()["error"]
        r = c.post("/trigger", json={"source": "nightly"}, headers=AUTH)
        assert r.status_code == 400 and "source" in r.json()["error"]
        r = c.post("/trigger", json={"source": "volume"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["decision"] == "not_triggered"
        assert rec.submissions() == []
        r = c.post("/alerts", content=body, headers=AUTH)
        assert r.status_code == 200
        (d,) = r.json()["decisions"]
        assert d["decision"] == "fired"
        r = c.post("/trigger", json={"source": "schedule"}, headers=AUTH)
        assert r.json()["reason_code"] == "active_run"
        st = c.get("/status").json()  # public: policy state only, no ledger path, rows or keys
        assert st["active_run"] == d["run_id"] and "triggers" not in st and "ledger" not in st
        assert c.get("/triggers/status").status_code == 401
        full = c.get("/triggers/status", headers=AUTH).json()
        assert full["active_run"] == d["run_id"] and full["triggers"][0]["reason_code"] == "active_run"
        assert "ctloop_triggers_total" in c.get("/metrics").text
    assert [s["run_id"] for s in rec.submissions()] == [d["run_id"]]


def test_cli_trigger_posts_and_triggers_shows_ledger(server) -> None:  # type: ignore[no-untyped-def]
    base, cfg_path, rec = server
    p = run_cli("trigger", "--config", str(cfg_path), "--reason", "new labels from the audit", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["decision"] == "fired" and doc["run_id"].startswith("churn-manual-")
    (sub,) = rec.submissions()
    assert sub["trigger"]["cause"] == "manual" and sub["trigger"]["reason"] == "new labels from the audit"
    p = run_cli("trigger", "--config", str(cfg_path), "--reason", "again")
    assert p.returncode == 0 and "suppressed" in p.stdout and "one run per model" in p.stdout
    p = run_cli("triggers", "--config", str(cfg_path), "--json")
    assert p.returncode == 0, p.stderr
    ledger = json.loads(p.stdout)
    assert [t["decision"] for t in ledger["triggers"]] == ["suppressed", "fired"]
    assert "one run per model" in ledger["triggers"][0]["reason"]
    p = run_cli("triggers", "--config", str(cfg_path))
    assert p.returncode == 0 and "fired" in p.stdout
    p = run_cli(
        "trigger", "--config", str(cfg_path), "--reason", "x", "--url", f"http://127.0.0.1:{free_port()}"
    )
    assert p.returncode == 1 and "cannot reach the watcher" in p.stderr


def test_cli_trigger_without_token_file_is_a_config_error(tmp_path: Path) -> None:
    cfg_path = trigger_project(tmp_path / "p")
    Path(load_config(cfg_path).triggers.token_file).unlink()
    p = run_cli("trigger", "--config", str(cfg_path), "--reason", "x")
    assert p.returncode == 2 and "token_file" in p.stderr


def test_schedule_fires_from_the_loop_through_the_policy(tmp_path: Path) -> None:
    cfg = load_config(trigger_project(tmp_path / "p", schedule="*/5 * * * *"))
    clock = {"now": dt.datetime(2026, 11, 29, 8, 3, tzinfo=dt.UTC)}
    svc = build_service(cfg, tmp_path / "subs.sqlite", clock=lambda: clock["now"])
    try:
        assert svc.tick() == []  # arms the next slot (08:05)
        clock["now"] = dt.datetime(2026, 11, 29, 8, 5, 1, tzinfo=dt.UTC)
        (d,) = svc.tick()
        assert d.fired and d.run_id.startswith("churn-schedule-")
        # a CronJob posting for the same slot (what POST /trigger {"source": "schedule"} builds) is a duplicate
        from ctloop.triggers.sources import schedule_trigger

        assert svc.handle(schedule_trigger(cfg, clock["now"])).reason_code == "duplicate"
        clock["now"] = dt.datetime(2026, 11, 29, 8, 10, 2, tzinfo=dt.UTC)
        (d2,) = svc.tick()
        assert d2.reason_code == "active_run"
        row = svc.ledger.get(d.trigger_id)
        assert row.detail["slot"] == "2026-11-29T08:05:00+00:00"
    finally:
        svc.stop()
