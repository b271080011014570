"""Storm: 1,000 webhook posts (duplicates, concurrent, resolved, regrouped, malformed, unauthenticated)
against the trigger app under a real uvicorn server → exactly one run submitted; and again with the
server killed (-9) and restarted mid-storm. The submitter records submissions (the policy is under test).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers_triggers import (
    TOKEN,
    RecordingSubmitter,
    http_ok,
    managed,
    server_cmd,
    trigger_project,
    wait_for,
    webhook,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def storm_requests(seed: int = 1) -> list[dict[str, Any]]:
    """1,000 requests: kind, body bytes, headers, expected status."""
    firing = json.dumps(webhook()).encode()
    reqs: list[dict[str, Any]] = []
    reqs += [{"kind": "duplicate", "body": firing, "headers": AUTH, "expect": 200} for _ in range(600)]
    reqs += [
        {
            "kind": "regrouped",
            "headers": AUTH,
            "expect": 200,
            "body": json.dumps(webhook(group_key=f'{{}}:{{alertname="X",shard="{i % 7}"}}')).encode(),
        }
        for i in range(100)
    ]
    reqs += [
        {"kind": "resolved", "body": json.dumps(webhook("resolved")).encode(), "headers": AUTH, "expect": 200}
        for _ in range(100)
    ]
    bad = [
        b"{not json",
        b'{"version":"4"}',
        b'{"version":"3","groupKey":"g","status":"firing","alerts":[{}]}',
        b"[]",
        json.dumps({**webhook(), "alerts": []}).encode(),
    ]
    reqs += [
        {"kind": "malformed", "body": bad[i % len(bad)], "headers": AUTH, "expect": 400} for i in range(100)
    ]
    unauth = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
    reqs += [
        {"kind": "unauthenticated", "body": firing, "headers": unauth[i % 3], "expect": 401}
        for i in range(100)
    ]
    random.Random(seed).shuffle(reqs)
    return reqs


async def _post_all(
    base: str, reqs: list[dict[str, Any]], concurrency: int = 32, on_progress: Any = None
) -> list[tuple[dict[str, Any], int | None, Any]]:
    sem = asyncio.Semaphore(concurrency)
    done = 0
    results: list[tuple[dict[str, Any], int | None, Any]] = []

    async with httpx.AsyncClient(timeout=30) as client:

        async def one(r: dict[str, Any]) -> None:
            nonlocal done
            async with sem:
                try:
                    resp = await client.post(
                        f"{base}/alerts",
                        content=r["body"],
                        headers={**r["headers"], "Content-Type": "application/json"},
                    )
                    results.append((r, resp.status_code, resp.json()))
                except httpx.TransportError as exc:
                    results.append((r, None, repr(exc)))
                done += 1
                if on_progress:
                    on_progress(done)

        await asyncio.gather(*(one(r) for r in reqs))
    return results


def _ledger(path: Path) -> list[sqlite3.Row]:
    c = sqlite3.connect(path)
    c.row_factory = sqlite3.Row
    try:
        return c.execute("SELECT * FROM triggers ORDER BY id").fetchall()
    finally:
        c.close()


def _check_exactly_one(
    cfg_path: Path, subs: Path, results: list[tuple[dict[str, Any], int | None, Any]]
) -> None:
    from ctloop.config import load_config

    ledger = _ledger(Path(load_config(cfg_path).triggers.ledger))
    fired = [r for r in ledger if r["decision"] == "fired"]
    assert len(fired) == 1, f"expected exactly one fired trigger, got {len(fired)}"
    submitted = RecordingSubmitter(subs).submissions()
    assert [s["run_id"] for s in submitted] == [fired[0]["run_id"]]
    assert fired[0]["run_status"] == "submitted"
    # every answered, authenticated, well-formed post has its row: nothing lost
    ids = {r["id"] for r in ledger}
    for req, status, doc in results:
        if status == 200:
            for d in doc["decisions"]:
                assert d["trigger_id"] in ids
        elif status is not None:
            assert status == req["expect"], (req["kind"], status, doc)
            assert "error" in doc and doc["error"]
    reasons = {r["reason_code"] for r in ledger}
    assert reasons <= {"fired", "duplicate", "active_run", "resolved"}
    assert all(r["reason"] for r in ledger)


def test_storm_of_1000_posts_submits_exactly_one_run(tmp_path: Path) -> None:
    port = free_port()
    cfg = trigger_project(tmp_path / "p", port=port)
    subs = tmp_path / "subs.sqlite"
    reqs = storm_requests()
    with managed(server_cmd(cfg, port, subs), tmp_path / "server.log"):
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base}/status"), 60, "the trigger server")
        results = asyncio.run(_post_all(base, reqs))
    assert len(results) == 1000
    by_kind: dict[str, set[int | None]] = {}
    for req, status, _ in results:
        by_kind.setdefault(req["kind"], set()).add(status)
    assert by_kind == {
        "duplicate": {200},
        "regrouped": {200},
        "resolved": {200},
        "malformed": {400},
        "unauthenticated": {401},
    }
    _check_exactly_one(cfg, subs, results)
    from ctloop.config import load_config

    ledger = _ledger(Path(load_config(cfg).triggers.ledger))
    assert len(ledger) == 800  # every authenticated, well-formed post is recorded


def test_storm_with_kill_9_and_restart_mid_storm(tmp_path: Path) -> None:
    port = free_port()
    cfg = trigger_project(tmp_path / "p", port=port)
    subs = tmp_path / "subs.sqlite"
    reqs = storm_requests(seed=2)
    base = f"http://127.0.0.1:{port}"
    results: list[tuple[dict[str, Any], int | None, Any]] = []
    with managed(server_cmd(cfg, port, subs), tmp_path / "server1.log") as proc:
        wait_for(lambda: http_ok(f"{base}/status"), 60, "the trigger server")
        killed = {"done": False}

        def kill_at_300(n: int) -> None:
            if n >= 300 and not killed["done"]:
                killed["done"] = True
                os.killpg(proc.pid, signal.SIGKILL)

        results += asyncio.run(_post_all(base, reqs, on_progress=kill_at_300))
        proc.wait(timeout=10)
    assert killed["done"] and proc.returncode == -signal.SIGKILL
    failed = [r for r, status, _ in results if status is None]
    assert failed, "the kill should have interrupted some requests"
    with managed(server_cmd(cfg, port, subs), tmp_path / "server2.log"):
        wait_for(lambda: http_ok(f"{base}/status"), 60, "the restarted trigger server")
        # what failed is re-sent (as Alertmanager does), then the rest of the storm once more
        results = [x for x in results if x[1] is not None] + asyncio.run(_post_all(base, failed))
        results += asyncio.run(_post_all(base, storm_requests(seed=3)[:200]))
    assert all(status is not None for _, status, _ in results)
    _check_exactly_one(cfg, subs, results)


def test_kill_9_during_submission_submits_exactly_once(tmp_path: Path) -> None:
    """The server is killed while the submit call is in flight (recorded, not yet answered, the ledger
    row still ``pending``); after the restart recovery looks the run up and does not submit it again."""
    import threading

    from ctloop.config import load_config

    port = free_port()
    cfg = trigger_project(tmp_path / "p", port=port)
    ledger_path = Path(load_config(cfg).triggers.ledger)
    subs = tmp_path / "subs.sqlite"
    base = f"http://127.0.0.1:{port}"
    firing = json.dumps(webhook()).encode()
    with managed(server_cmd(cfg, port, subs, submit_delay=60), tmp_path / "server1.log") as proc:
        wait_for(lambda: http_ok(f"{base}/status"), 60, "the trigger server")
        post = threading.Thread(
            target=lambda: asyncio.run(_post_all(base, [{"body": firing, "headers": AUTH, "expect": 200}])),
            daemon=True,
        )
        post.start()
        wait_for(lambda: RecordingSubmitter(subs).submissions(), 30, "the submit call to be in flight")
        (row,) = [r for r in _ledger(ledger_path) if r["decision"] == "fired"]
        assert row["run_status"] == "pending"  # the submission never returned
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        post.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with managed(server_cmd(cfg, port, subs), tmp_path / "server2.log"):
        wait_for(lambda: http_ok(f"{base}/status"), 60, "the restarted trigger server")
        wait_for(
            lambda: [r for r in _ledger(ledger_path) if r["run_status"] == "submitted"], 30, "recovery"
        )
        results = asyncio.run(_post_all(base, storm_requests(seed=4)[:300]))
    _check_exactly_one(cfg, subs, results)
    calls = RecordingSubmitter(subs).submissions()
    assert len(calls) == 1, f"submit was called {len(calls)} times: {calls}"
