"""Security regression: SIGTERM to ``ctloop watch`` stops the local submitter's worker and the pipeline
processes it started (they used to be orphaned). Counts the watcher's descendants before and after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port, make_project

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.slow]


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_sigterm_stops_the_trigger_workers(tmp_path: Path) -> None:
    cfg = make_project(tmp_path / "p", days=3, rows_per_day=100)
    token = "shutdown-test-token"
    secrets = cfg.parent / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "trigger-token").write_text(token + "\n")
    port = free_port()
    log = (tmp_path / "watch.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "ctloop.cli", "watch", "--config", str(cfg), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    descendants: list[int] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(f"{base}/trigger", json={"reason": "shutdown test"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code in (200, 201, 202), r.text
        watcher = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60  # a readiness wait: the worker and its pipeline step processes
        while time.monotonic() < deadline and len(descendants) < 2:
            descendants = [c.pid for c in watcher.children(recursive=True)]
            time.sleep(0.1)
        assert len(_alive(descendants)) >= 1, (tmp_path / "watch.log").read_text()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(descendants):
            time.sleep(0.1)
        left = {pid: " ".join(psutil.Process(pid).cmdline())[:200] for pid in _alive(descendants)}
        assert left == {}, (left, (tmp_path / "watch.log").read_text()[-3000:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in _alive(descendants):
            os.kill(pid, signal.SIGKILL)
        log.close()
