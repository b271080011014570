"""Finding 7: ``/status`` and ``/triggers/status`` were open and showed the ledger path and the rows'
idempotency keys. Now ``/triggers/status`` needs the bearer token, and the public ``/status`` shows policy
state only."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ctloop.config import load_config
from ctloop.triggers.api import build_trigger_app
from tests.conftest import free_port
from tests.helpers_triggers import TOKEN, build_service, serve_in_thread, trigger_project, webhook

pytestmark = [pytest.mark.security, pytest.mark.integration]


def test_ledger_details_need_the_token(tmp_path: Path) -> None:
    port = free_port()
    cfg = load_config(trigger_project(tmp_path / "p", port=port))
    svc = build_service(cfg, tmp_path / "subs.sqlite")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve_in_thread(build_trigger_app(svc), port) as base, httpx.Client(base_url=base, timeout=10) as c:
        assert c.post("/alerts", content=json.dumps(webhook()), headers=auth).status_code in (200, 202)
        public = c.get("/status")
        assert public.status_code == 200
        text = public.text
        assert str(cfg.triggers.ledger) not in text and "idempotency_key" not in text and "ledger" not in text
        assert c.get("/triggers/status").status_code == 401
        assert c.get("/triggers/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        full = c.get("/triggers/status", headers=auth).json()
        assert full["ledger"] == str(cfg.triggers.ledger) and full["triggers"][0]["idempotency_key"]
