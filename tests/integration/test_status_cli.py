"""``ctloop status`` against a live stack: a trained champion, the real model server (``ctloop serve``)
and the real watcher with the trigger routes (``ctloop watch``), all over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from ctloop.config import load_config
from ctloop.demo.stack import model_server
from ctloop.runner import run_local
from tests.conftest import free_port, make_project, run_cli
from tests.helpers_triggers import TOKEN, webhook
from tests.integration.test_watch_triggers import _start, _stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _project(root: Path) -> tuple[Path, int, int]:
    cfg_path = make_project(root, days=5, rows_per_day=250)
    serve_port, watch_port = free_port(), free_port()
    doc = yaml.safe_load(cfg_path.read_text())
    doc.setdefault("serving", {}).update(port=serve_port, poll_seconds=0.5)
    doc.setdefault("drift", {})["port"] = watch_port
    doc.setdefault("triggers", {}).update(endpoint=f"http://127.0.0.1:{watch_port}", daily_budget=0)
    cfg_path.write_text(yaml.safe_dump(doc))
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / "trigger-token").write_text(TOKEN + "\n")
    return cfg_path, serve_port, watch_port


def _status(cfg: Path) -> tuple[int, dict]:
    r = run_cli("status", "--config", str(cfg), "--json")
    return r.returncode, json.loads(r.stdout)


def test_status_of_a_live_stack_then_a_stopped_server(tmp_path: Path) -> None:
    cfg_path, serve_port, watch_port = _project(tmp_path / "p")
    code, doc = _status(cfg_path)
    assert code == 1 and doc["champion"] is None and not doc["healthy"]
    assert any("no champion" in p for p in doc["problems"])
    assert run_local(load_config(cfg_path)).promoted

    watcher = _start(cfg_path, watch_port)
    try:
        with model_server(cfg_path, serve_port, "churn", tmp_path / "serve.log"):
            auth = {"Authorization": f"Bearer {TOKEN}"}
            url = f"http://127.0.0.1:{watch_port}"
            fired = httpx.post(f"{url}/alerts", json=webhook(), headers=auth)
            assert fired.status_code in (200, 202)  # budget 0: recorded, suppressed, still open
            code, doc = _status(cfg_path)
            assert code == 0, doc["problems"]
            assert doc["healthy"] and doc["champion"]["version"] == 1
            assert doc["champion"]["why"].startswith("manual")
            assert doc["server"]["ready"] and doc["server"]["version"] == 1
            assert doc["watcher"]["reachable"] and doc["watcher"]["version"] == 1
            assert doc["drift"]["drift_share"] == 0.0
            assert [a["source"] for a in doc["open_alerts"]] == ["alert"]
            assert doc["triggers"][0]["reason_code"] == "budget" and doc["policy"]["budget_left"] == 0
            text = run_cli("status", "--config", str(cfg_path))
            assert text.returncode == 0 and "champion: v1" in text.stdout and "status: healthy" in text.stdout
            resolved = httpx.post(f"{url}/alerts", json=webhook(status="resolved"), headers=auth)
            assert resolved.status_code == 200
            assert _status(cfg_path)[1]["open_alerts"] == []
        code, doc = _status(cfg_path)  # the model server is gone
        assert code == 1 and doc["server"]["reachable"] is False
        assert doc["problems"] == [f"model server http://127.0.0.1:{serve_port}: not reachable"]
    finally:
        _stop(watcher)
