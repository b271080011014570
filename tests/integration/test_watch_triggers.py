"""`ctloop watch` serves the trigger controller's routes on the watcher service (one process)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers_triggers import TOKEN, trigger_project, webhook

pytestmark = pytest.mark.integration


def _start(cfg: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "ctloop.cli", "watch", "--config", str(cfg), "--port",
                             str(port), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"watch exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("watch did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_watch_mounts_trigger_routes(tmp_path: Path) -> None:
    port = free_port()
    cfg = trigger_project(tmp_path / "p", port=port)
    proc = _start(cfg, port)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert httpx.post(f"{url}/alerts", json=webhook()).status_code == 401
        bad = httpx.post(f"{url}/alerts", content=b"{not json", headers=auth)
        assert bad.status_code == 400
        resolved = httpx.post(f"{url}/alerts", json=webhook(status="resolved"), headers=auth)
        assert resolved.status_code == 200
        decisions = resolved.json()["decisions"]
        assert decisions and all(d["decision"] == "suppressed" for d in decisions)
        status = httpx.get(f"{url}/status").json()
        assert status["triggers"]["embedded_evaluator"] is True
        assert "triggers" not in status["triggers"] and "ledger" not in status["triggers"]  # not public
        assert httpx.get(f"{url}/triggers/status").status_code == 401
        rows = httpx.get(f"{url}/triggers/status", headers=auth).json()["triggers"]
        assert any("resolved" in str(r.get("reason", "")) for r in rows), rows
    finally:
        _stop(proc)


def test_watch_without_triggers(tmp_path: Path) -> None:
    port = free_port()
    cfg = trigger_project(tmp_path / "p", port=port)
    proc = _start(cfg, port, "--no-triggers")
    try:
        assert httpx.post(f"http://127.0.0.1:{port}/alerts", json=webhook()).status_code in (404, 405)
    finally:
        _stop(proc)
