"""Cancel a run of the ``local`` submitter: the real training pipeline under the KFP local runner, in the
worker process that a real ``ctloop watch`` starts.

The run is held in flight deterministically, without timing: the newest data partition's parquet file is
replaced by a named pipe (a stalled data mount), so the pipeline's ingest step blocks in ``open()`` until
someone writes to it, which nobody does. The test cancels the run while that step's process is alive in
the worker's process group, then puts the real file back and checks that the next trigger runs the
pipeline to the end on a new worker.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from ctloop.config import load_config
from ctloop.registry import Registry
from ctloop.triggers.submitters import LocalSubmitter, RunRequest, RunUpdate
from tests.conftest import free_port, make_project, run_cli
from tests.helpers_triggers import TOKEN, http_ok, managed, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid, pgrp = text[text.rindex(")") + 2:].split()[:3]
    return state, int(ppid), int(pgrp)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def group_members(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of a process group: pid -> command line."""
    out = {}
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st[0] not in ("Z", "X") and st[2] == pgid:
            try:
                out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return out


def worker_of(parent: int) -> int | None:
    """The submitter's worker: a child of ``parent`` that leads its own process group."""
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st[0] not in ("Z", "X") and st[1] == parent and st[2] == pid:
            return pid
    return None


def stalled_step(pgid: int) -> int | None:
    """The pipeline's ingest step process in the worker's group (blocked on the named pipe)."""
    return next((pid for pid, cmd in group_members(pgid).items() if pid != pgid and "ingest" in cmd), None)


def _edit(text: str) -> str:
    return text.replace("cooldown_minutes: 60", "cooldown_minutes: 0")


def stall_newest_partition(data: Path) -> tuple[Path, Path]:
    """Replace the newest partition's parquet file by a named pipe; return (pipe, the real file's copy)."""
    newest = sorted(data.glob("date=*"))[-1]
    (part,) = newest.glob("*.parquet")
    saved = data.parent / "held-back.parquet"
    part.rename(saved)
    os.mkfifo(part)
    return part, saved


def restore(pipe: Path, saved: Path) -> None:
    pipe.unlink()
    saved.rename(pipe)


@pytest.fixture
def stalled_project(tmp_path: Path) -> tuple[Path, Path, Path]:
    cfg_path = make_project(tmp_path / "proj", days=6, rows_per_day=250, edit=_edit)
    (tmp_path / "proj" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "proj" / "secrets" / "trigger-token").write_text(TOKEN)
    pipe, saved = stall_newest_partition(tmp_path / "proj" / "data")
    return cfg_path, pipe, saved


def test_cancel_a_running_local_run_through_ctloop_watch(stalled_project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg_path, pipe, saved = stalled_project
    cfg = load_config(cfg_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "ctloop.cli", "watch", "--config", str(cfg_path), "--port", str(port)]
    with managed(cmd, tmp_path / "watch.log") as watch, httpx.Client(base_url=url, timeout=120) as c:
        wait_for(lambda: http_ok(f"{url}/healthz") or watch.poll() is not None, 120, "ctloop watch to start")
        assert watch.poll() is None, (tmp_path / "watch.log").read_text()[-3000:]
        r = c.post("/trigger", json={"reason": "stalled data", "key": "first"}, headers=AUTH)
        assert r.status_code == 202, r.text
        first = r.json()
        worker = wait_for(lambda: worker_of(watch.pid), 120, "the local submitter's worker")
        step = wait_for(lambda: stalled_step(worker), 180, "the ingest step, blocked on the named pipe")
        assert c.get("/triggers/status", headers=AUTH).json()["active_run"] == first["run_id"]

        p = run_cli("cancel", "--config", str(cfg_path), str(first["trigger_id"]), "--reason", "stalled mount",
                    "--url", url)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == (f"canceled trigger #{first['trigger_id']} → run {first['run_id']} "
                                    f"(local run {first['run_id']})")
        assert group_members(worker) == {}  # the worker and the step it started are gone
        assert _stat(step) is None or _stat(step)[0] in ("Z", "X")  # type: ignore[index]
        rows = {r["id"]: r for r in c.get("/triggers/status", headers=AUTH).json()["triggers"]}
        row = rows[first["trigger_id"]]
        assert row["run_status"] == "canceled", row
        assert row["detail"]["cancel"]["reason"].startswith("stalled mount (ctloop cancel by ")
        assert Registry(cfg.registry.uri, cfg.name).versions() == []

        # the data is back: the next trigger fires (the canceled run is not active) and runs to the end
        restore(pipe, saved)
        r = c.post("/trigger", json={"reason": "data is back", "key": "second"}, headers=AUTH)
        assert r.status_code == 202, r.text
        second = r.json()
        new_worker = wait_for(lambda: worker_of(watch.pid), 120, "a new worker")
        assert new_worker != worker
        done = wait_for(
            lambda: (x := next(t for t in c.get("/triggers/status", headers=AUTH).json()["triggers"]
                               if t["id"] == second["trigger_id"]))["run_status"] not in ("submitted", "pending")
            and x,
            300, "the second run's outcome", interval=1.0)
        assert (done["run_status"], done["version"]) == ("succeeded", 1), done
        reg = Registry(cfg.registry.uri, cfg.name)
        assert reg.versions() == [1] and reg.get(1).metadata["run_id"] == second["run_id"]

        # a run that already ended: the watcher refuses with its status, the row stays as it is
        p = run_cli("cancel", "--config", str(cfg_path), str(second["trigger_id"]), "--url", url)
        assert p.returncode == 1 and "answered 409" in p.stderr and "already succeeded" in p.stderr
        row2 = next(t for t in c.get("/triggers/status", headers=AUTH).json()["triggers"]
                    if t["id"] == second["trigger_id"])
        assert row2 == done


def test_a_waiting_run_is_canceled_through_its_future(stalled_project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two runs on the one worker: the second waits and is canceled without touching the first; then the
    first is stopped with its process group. Every outcome reaches the callback exactly once."""
    cfg_path, _pipe, _saved = stalled_project
    cfg = load_config(cfg_path)
    outcomes: list[tuple[str, RunUpdate]] = []
    sub = LocalSubmitter(cfg, lambda req, up: outcomes.append((req.run_id, up)))
    a = RunRequest(1, "churn-manual-00000000000a", {"cause": "manual"})
    b = RunRequest(2, "churn-manual-00000000000b", {"cause": "manual"})
    try:
        assert sub.submit(a).run_status == "submitted" and sub.submit(b).run_status == "submitted"
        worker = wait_for(lambda: worker_of(os.getpid()), 120, "the worker")
        step = wait_for(lambda: stalled_step(worker), 180, "run a's ingest step")
        got = sub.cancel(b)
        assert got is not None and (got.run_status, got.error) == ("canceled", "canceled before it started")
        assert outcomes == [(b.run_id, got)]
        assert step in group_members(worker)  # run a is untouched
        got = sub.cancel(a)
        assert got is not None and got.run_status == "canceled", got
        assert group_members(worker) == {}
        assert [r for r, _ in outcomes] == [b.run_id, a.run_id] and outcomes[1][1] == got
        assert sub.cancel(a) == got and len(outcomes) == 2  # a second cancel reports, stops nothing more
        logs = Path(cfg.kfp.pipeline_root) / "logs"
        assert (logs / f"{a.run_id}.log").exists() and not (logs / f"{b.run_id}.log").exists()  # b never ran
        assert sub.lookup(b) == RunUpdate("canceled", external_id=b.run_id)
    finally:
        sub.close()
    assert json.dumps([u.run_status for _, u in outcomes]) == '["canceled", "canceled"]'
