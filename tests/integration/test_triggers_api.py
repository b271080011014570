"""The trigger endpoints under a real uvicorn server, and the `ctloop trigger` / `cancel` / `triggers` CLI."""

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


def test_cancel_route_statuses(server) -> None:  # type: ignore[no-untyped-def]
    base, _cfg, rec = server
    with httpx.Client(base_url=base, timeout=30) as c:
        d = c.post("/trigger", json={"reason": "to cancel", "key": "k1"}, headers=AUTH).json()
        dup = c.post("/trigger", json={"reason": "to cancel", "key": "k1"}, headers=AUTH).json()
        tid = d["trigger_id"]
        r = c.post(f"/triggers/{tid}/cancel", json={"reason": "x"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert c.post(f"/triggers/{tid}/cancel", headers={"Authorization": "Bearer nope"}).status_code == 401
        for bad in ("abc", "0", "-3", "9" * 19):
            r = c.post(f"/triggers/{bad}/cancel", headers=AUTH)
            assert r.status_code == 400 and "is not a positive integer" in r.json()["error"], (bad, r.text)
        r = c.post(f"/triggers/{tid}/cancel", content=b"{nope", headers=AUTH)
        assert r.status_code == 400 and "cancel request" in r.json()["error"]
        r = c.post(f"/triggers/{tid}/cancel", json={"reason": "x", "force": True}, headers=AUTH)
        assert r.status_code == 400 and "force" in r.json()["error"]
        r = c.post(f"/triggers/{tid}/cancel", content=b"x" * 5000, headers=AUTH)
        assert r.status_code == 413
        r = c.post("/triggers/424242/cancel", headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "no trigger #424242 in the ledger (see `ctloop triggers`)"
        r = c.post(f"/triggers/{dup['trigger_id']}/cancel", headers=AUTH)
        assert r.status_code == 409 and "was suppressed (duplicate" in r.json()["error"]
        assert rec.cancels() == []  # nothing above reached the submitter
        r = c.post(f"/triggers/{tid}/cancel", headers=AUTH)  # no body: the row says where the cancel came from
        assert r.status_code == 200, r.text
        row = r.json()
        assert (row["id"], row["run_status"], row["submitter"]) == (tid, "canceled", "recording")
        assert row["detail"]["cancel"]["reason"] == f"POST /triggers/{tid}/cancel (no reason given)"
        assert row["external_id"] == f"rec-{d['run_id']}"
        r = c.post(f"/triggers/{tid}/cancel", headers=AUTH)
        assert r.status_code == 409 and "already canceled" in r.json()["error"]
        assert [x["run_id"] for x in rec.cancels()] == [d["run_id"]]
        # no longer the active run; the cooldown since it fired still holds
        assert c.get("/status").json()["active_run"] is None
        d2 = c.post("/trigger", json={"reason": "second", "key": "k2"}, headers=AUTH).json()
        assert d2["reason_code"] == "cooldown", d2


def test_cli_cancel_prints_one_line_and_fails_with_the_watchers_message(server) -> None:  # type: ignore[no-untyped-def]
    base, cfg_path, rec = server
    doc = json.loads(run_cli("trigger", "--config", str(cfg_path), "--reason", "r", "--json").stdout)
    tid = doc["trigger_id"]
    p = run_cli("cancel", "--config", str(cfg_path), str(tid), "--reason", "wrong window")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"canceled trigger #{tid} → run {doc['run_id']} (recording run rec-{doc['run_id']})"
    p = run_cli("cancel", "--config", str(cfg_path), str(tid))
    assert p.returncode == 1 and "answered 409: " in p.stderr and "already canceled" in p.stderr
    p = run_cli("cancel", "--config", str(cfg_path), "777", "--json")
    assert p.returncode == 1 and "answered 404: no trigger #777 in the ledger" in p.stderr and p.stdout == ""
    p = run_cli("triggers", "--config", str(cfg_path), "--json")
    row = next(r for r in json.loads(p.stdout)["triggers"] if r["id"] == tid)
    assert row["run_status"] == "canceled"
    assert row["detail"]["cancel"]["reason"].startswith("wrong window (ctloop cancel by ")
    table = run_cli("triggers", "--config", str(cfg_path))
    assert "canceled: wrong window (ctloop cancel by" in " ".join(table.stdout.split())
    assert len(rec.cancels()) == 1


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
