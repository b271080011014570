"""Security regression: deeply nested JSON posted to ``/alerts`` (and ``/trigger``, ``/triggers/{id}/cancel``) is
a 400, not a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.watcher.server import build_service
from tests.conftest import free_port
from tests.helpers_triggers import TOKEN, serve_in_thread, trigger_project

pytestmark = [pytest.mark.security, pytest.mark.integration]


def test_deep_json_to_alerts_and_trigger_is_400(tmp_path: Path) -> None:
    port = free_port()
    cfg = load_config(trigger_project(tmp_path / "p", port=port))
    app, svc = build_service(cfg, CollectorRegistry(), triggers=True)
    assert svc is not None
    svc.start()
    auth = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    try:
        with serve_in_thread(app, port) as base:
            deep = b"[" * 100_000 + b"]" * 100_000
            inner = (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}, '
                     b'"annotations": {"summary": ' + b"[" * 900 + b"]" * 900 + b"}}]}")
            for path, body in (("/alerts", deep), ("/trigger", deep), ("/alerts", inner), ("/triggers/1/cancel", deep)):
                r = httpx.post(base + path, content=body, headers=auth, timeout=30)
                assert r.status_code == 400, (path, r.status_code, r.text[:300])
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            assert svc.ledger.rows() == []
    finally:
        svc.stop()
