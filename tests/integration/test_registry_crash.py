"""Crash and concurrency trials against the registry with real processes and SIGKILL.

A child loops over register → promote (→ rollback every second round) and prints one line after each
completed operation; the parent kills it with SIGKILL at a random moment, then checks that no version
was lost, no half-written version is visible, and the aliases are exactly the state after the last
completed operation or after the one in flight (never a mix, never dangling).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctloop.registry import PENDING, Registry, tree_digest
from tests.helpers_registry import tiny_model

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 32


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.helpers_registry", *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _next_state(kind: str, version: int, state: tuple[int | None, int | None], round_in_cycle: int,
                next_version: int | None) -> list[tuple[int | None, int | None]]:
    """States the in-flight operation after a printed line may have produced."""
    champion, previous = state
    if kind == "R":  # next: promote(version)
        return [(version, champion) if champion != version else state]
    if kind == "P" and round_in_cycle == 1:  # next: rollback
        return [(previous, champion)]
    return [state]  # next: register (aliases untouched)


def test_kill_9_during_register_and_promote_never_corrupts(tmp_path: Path) -> None:
    uri = str(tmp_path / "registry")
    model = tiny_model(tmp_path / "model", blob_kb=128, files=4)
    digest = tree_digest(model)
    rng = random.Random(1234)
    registered: set[int] = set()
    hits = {"R": 0, "P": 0, "B": 0, "READY": 0}
    prev_state: tuple[int | None, int | None] = (None, None)
    for _trial in range(TRIALS):
        proc = _spawn(uri, str(model))
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # only whole lines: SIGKILL can cut the child's last print short (no newline yet)
        lines = [ln.split(" ", 2) for ln in out.split("\n")[:-1] if ln.strip()]
        lines = [parts for parts in lines if len(parts) == 3]
        # what the child completed before it died
        reg = Registry(uri, "crash")
        state = (reg.alias("champion"), reg.alias("previous"))  # reading rolls a pending record forward
        assert not (Path(reg.root) / "aliases" / PENDING).exists()
        visible = reg.versions()
        for kind, v, _aliases in lines:
            if kind == "R":
                registered.add(int(v))
        assert registered <= set(visible), f"lost versions: {sorted(registered - set(visible))}"
        for v in visible:  # nothing half-written is visible
            mv = reg.get(v)
            assert tree_digest(mv.model_uri) == digest == mv.metadata["artifact"]["sha256"]
        for alias_v in state:
            assert alias_v is None or alias_v in visible, f"dangling alias -> {alias_v}"
        if state[0] is not None and state[1] is not None:
            assert state[0] != state[1]
        if lines:
            kind, v, aliases = lines[-1]
            hits[kind] += 1
            done = tuple(json.loads(aliases))
            promotes = sum(1 for k, _, _ in lines if k == "P")
            allowed = [done, *_next_state(kind, int(v), done, (promotes - 1) % 2, None)]
            assert state in allowed, f"after {lines[-1]}: aliases {state} not in {allowed}"
        else:  # killed inside its first register: aliases untouched
            hits["READY"] += 1
            assert state == prev_state
        prev_state = state
    # the random kills landed in several different phases
    print("kill points:", hits)
    assert sum(1 for k in ("R", "P", "B", "READY") if hits[k]) >= 3, hits
    assert len(registered) >= TRIALS // 2


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    uri = str(tmp_path / "registry")
    model = tiny_model(tmp_path / "model", blob_kb=8, files=2)
    procs = [_spawn("register-many", uri, str(model), "4") for _ in range(6)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    for p in procs:  # release them together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    got: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        got += [int(x) for x in out.split()]
    assert len(got) == 24 and len(set(got)) == 24
    assert Registry(uri, "crash").versions() == sorted(got)
