"""Helpers for the trigger tests: a recording submitter, trigger projects, and real servers.

``RecordingSubmitter`` implements the submitter interface and records EVERY submit and cancel call in
its own SQLite file (no dedupe: a second call for the same run id is a second row, so "exactly one run"
means exactly one call); ``lookup`` and ``cancel`` answer from that file, as an orchestrator would: what
is under test in these tests is the policy and the service's recovery, not the pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig, load_config
from ctloop.demo.stack import managed_process, wait_until
from ctloop.errors import DemoError
from ctloop.triggers.submitters import RunRequest, RunUpdate

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests"


class RecordingSubmitter:
    """A submitter that records every submit call instead of starting pipelines.

    ``submit_delay`` seconds pass after the call is recorded and before it returns (a slow orchestrator
    answer), so a test can kill the process while the submission is in flight.
    """

    name = "recording"

    def __init__(self, path: str | Path, submit_delay: float = 0.0) -> None:
        self.path = Path(path)
        self.submit_delay = submit_delay
        self.lookups = 0
        self.cancel_answer = "canceled"  # the run's status after a cancel (e.g. "succeeded": it ended first)
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute(
                "CREATE TABLE IF NOT EXISTS submissions (n INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT,"
                " trigger_id INTEGER, at REAL, trigger TEXT)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS cancels (n INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT,"
                " trigger_id INTEGER, at REAL)"
            )

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        c = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield c
        finally:
            c.close()

    def submit(self, req: RunRequest) -> RunUpdate:
        """Record the call (every call is a row), then answer after ``submit_delay``."""
        with self._conn() as c:
            c.execute(
                "INSERT INTO submissions (run_id, trigger_id, at, trigger) VALUES (?, ?, ?, ?)",
                (req.run_id, req.trigger_id, time.time(), json.dumps(req.trigger)),
            )
        if self.submit_delay:
            time.sleep(self.submit_delay)
        return RunUpdate("submitted", external_id=f"rec-{req.run_id}")

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        return None

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """``submitted`` when a run with this id was recorded, else None (counted in ``lookups``)."""
        self.lookups += 1
        with self._conn() as c:
            row = c.execute("SELECT 1 FROM submissions WHERE run_id = ? LIMIT 1", (req.run_id,)).fetchone()
        return None if row is None else RunUpdate("submitted", external_id=f"rec-{req.run_id}")

    def cancel(self, req: RunRequest) -> RunUpdate | None:
        """Record the call (every call is a row); ``cancel_answer`` for a recorded run, else None."""
        with self._conn() as c:
            c.execute("INSERT INTO cancels (run_id, trigger_id, at) VALUES (?, ?, ?)",
                      (req.run_id, req.trigger_id, time.time()))
            row = c.execute("SELECT 1 FROM submissions WHERE run_id = ? LIMIT 1", (req.run_id,)).fetchone()
        return None if row is None else RunUpdate(self.cancel_answer, external_id=f"rec-{req.run_id}")

    def close(self) -> None:
        pass

    def cancels(self) -> list[dict[str, Any]]:
        """Every recorded cancel call, in order."""
        with self._conn() as c:
            rows = c.execute("SELECT run_id, trigger_id FROM cancels ORDER BY n").fetchall()
        return [{"run_id": r[0], "trigger_id": r[1]} for r in rows]

    def submissions(self) -> list[dict[str, Any]]:
        """Every recorded submit call, in order."""
        with self._conn() as c:
            rows = c.execute("SELECT run_id, trigger_id, at, trigger FROM submissions ORDER BY n").fetchall()
        return [{"run_id": r[0], "trigger_id": r[1], "at": r[2], "trigger": json.loads(r[3])} for r in rows]


def trigger_project(root: Path, port: int = 8090, **triggers: Any) -> Path:
    """A minimal project config (no data needed) with a token file; ``triggers`` overrides settings."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / "trigger-token").write_text(TOKEN + "\n")
    doc = {
        "name": "churn",
        "data": {"source": "data"},
        "drift": {"drift_share_alert": 0.3, "alert_for": "2s"},
        "triggers": {
            "cooldown_minutes": 60,
            "daily_budget": 4,
            "endpoint": f"http://127.0.0.1:{port}",
            **triggers,
        },
    }
    p = root / "ctloop.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def webhook(
    status: str = "firing",
    group_key: str = '{}:{alertname="CtloopDriftShareHigh"}',
    starts_at: str = "2026-11-29T10:00:00Z",
    model: str = "churn",
) -> dict[str, Any]:
    """An Alertmanager webhook v4 body for the drift alert."""
    labels = {"alertname": "CtloopDriftShareHigh", "model": model, "ctloop": "retrain", "severity": "warning"}
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "ctloop-watcher",
        "groupLabels": {"alertname": "CtloopDriftShareHigh", "model": model},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "drift share high"},
        "externalURL": "http://alertmanager",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "drift share of churn is 50%"},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else starts_at,
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "abc123",
            }
        ],
    }


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """:func:`ctloop.demo.stack.wait_until`, failing the test (AssertionError) on timeout."""
    try:
        return wait_until(pred, timeout, what, interval)
    except DemoError as exc:
        raise AssertionError(str(exc)) from None


def http_ok(url: str) -> bool:
    """True when GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int) -> Iterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1:``port`` in a thread; yield its base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, 30, "uvicorn to start")
        yield base
    finally:
        server.should_exit = True
        th.join(timeout=15)


@contextlib.contextmanager
def managed(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process (own process group) and always stop it."""
    with managed_process(cmd, log, env=env, cwd=REPO) as proc:
        yield proc


def server_cmd(config: Path, port: int, submissions: Path, submit_delay: float = 0.0) -> list[str]:
    """The command that runs :func:`main` (the trigger app with a recording submitter)."""
    return [
        sys.executable,
        "-m",
        "tests.helpers_triggers",
        "--config",
        str(config),
        "--port",
        str(port),
        "--submissions",
        str(submissions),
        "--submit-delay",
        str(submit_delay),
    ]


def build_service(
    cfg: ProjectConfig,
    submissions: Path,
    drift_registry: CollectorRegistry | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    submit_delay: float = 0.0,
) -> Any:
    """A trigger service with a recording submitter."""
    from ctloop.triggers.service import TriggerService

    kw = {"clock": clock} if clock else {}
    return TriggerService.create(
        cfg,
        CollectorRegistry(),
        submitter=RecordingSubmitter(submissions, submit_delay=submit_delay),
        drift_registry=drift_registry,
        **kw,
    )


def main() -> None:
    """Serve the trigger app (recording submitter) until killed: the process the storm test kills."""
    import uvicorn

    from ctloop.triggers.api import build_trigger_app

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--submissions", required=True)
    ap.add_argument("--submit-delay", type=float, default=0.0)
    a = ap.parse_args()
    svc = build_service(load_config(a.config), Path(a.submissions), submit_delay=a.submit_delay)
    uvicorn.run(build_trigger_app(svc), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()


class Clock:
    """A settable clock for the trigger service (starts 2026-11-29 08:00 UTC)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        """Move the clock forward (``timedelta`` keywords)."""
        self.now += dt.timedelta(**kw)
