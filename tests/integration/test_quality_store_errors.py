"""A failing prediction store is never acknowledged: /events and /labels answer 503, nothing half-applied."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from ctloop.quality.monitor import QualityMonitor, open_store
from ctloop.watcher import build_app
from tests.conftest import free_port
from tests.helpers_quality import event_pair, post_labels, quality_project

pytestmark = [pytest.mark.integration]


def test_store_failure_is_503_and_labels_without_token_file_503(tmp_path: Path) -> None:
    _, cfg, version = quality_project(tmp_path)
    reg = CollectorRegistry()
    mon = QualityMonitor(cfg, open_store(cfg), reg)
    app = build_app(cfg, reg, quality=mon, follow_champion=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        for h, b in event_pair(cfg, ["ok-0", "ok-1"], version):
            assert httpx.post(f"{url}/events", content=b, headers=h, timeout=10).status_code == 202
        assert mon.store.get("ok-0") is not None
        Path(cfg.triggers.token_file).unlink()
        r = post_labels(url, {"model": cfg.name, "labels": [{"id": "ok-0", "label": 1}]})
        assert r.status_code == 503 and "token" in r.text
        mon.store.close()  # the database goes away under the watcher
        h, b = event_pair(cfg, ["lost-0"], version)[1]
        r = httpx.post(f"{url}/events", content=b, headers=h, timeout=10)
        assert r.status_code == 503 and "prediction store" in r.text
    finally:
        server.should_exit = True
        th.join(10)
