"""The registry on a real S3 API server (moto in server mode): conditional writes hold with 8 concurrent
writer processes (one version per number, one winner per alias move, no torn documents), and a kill -9
loop never corrupts it."""

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

from ctloop.errors import RegistryError
from ctloop.registry import PENDING, Registry, tree_digest
from tests.helpers_registry import tiny_model

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 8
TRIALS = 8


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.helpers_registry", *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _release(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY", p.stderr.read() if p.stderr else ""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def test_s3_store_honours_conditional_writes(s3_server) -> None:  # type: ignore[no-untyped-def]
    """The server under test refuses a second create and a stale replace (else the tests prove nothing)."""
    reg = Registry(f"s3://{s3_server.new_bucket()}/registry", "m")
    assert reg.cas.kind == "s3"
    path = f"{reg.root}/probe.json"
    assert reg.cas.create(path, b"1") and not reg.cas.create(path, b"2")
    got = reg.cas.read(path)
    assert got is not None and got[0] == b"1"
    assert reg.cas.replace(path, b"3", got[1]) and not reg.cas.replace(path, b"4", got[1])
    assert not reg.cas.delete(path, got[1])
    now = reg.cas.read(path)
    assert now is not None and now[0] == b"3" and reg.cas.delete(path, now[1]) and reg.cas.read(path) is None


@pytest.mark.slow
def test_8_concurrent_writers_on_s3(s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = f"s3://{s3_server.new_bucket()}/registry"
    model = tiny_model(tmp_path / "model", blob_kb=4, files=1)
    per = 2
    procs = [_spawn("race", uri, str(model), str(per)) for _ in range(WRITERS)]
    _release(procs)
    got: list[int] = []
    for p in procs:  # every writer registers concurrently
        assert p.stdout is not None
        line = p.stdout.readline()
        assert p.stdout.readline().strip() == "REGISTERED", (line, p.stderr.read() if p.stderr else "")
        got += [int(x) for x in line.split()]
    # exactly one version per number
    assert len(got) == WRITERS * per and len(set(got)) == len(got)
    reg = Registry(uri, "crash")
    assert reg.versions() == sorted(got)
    for v in got:
        assert reg.get(v).metadata["version"] == v

    # every writer tries to move the champion from the same base at once: exactly one wins
    base = min(got)
    reg.promote(base, reason="base")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{base}\n")
        p.stdin.flush()
    wins = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.split()[0] in ("won", "lost"), out
        wins += [int(x) for x in out.split() if x.isdigit()]
    assert len(wins) == 1, f"expected one winner, got {wins}"
    champion = Registry(uri, "crash")
    assert champion.alias("champion") == wins[0] and champion.alias("previous") == base
    promotes = [e for e in champion.events() if e["action"] == "promote"]
    assert [e["version"] for e in promotes] == [base, wins[0]]
    for name in ("champion", "previous"):  # no torn documents
        doc = champion.alias_doc(name)
        assert doc is not None and doc["alias"] == name and isinstance(doc["version"], int)
    assert champion.cas.read(f"{champion.root}/aliases/{PENDING}") is None


def test_unsupported_store_refused_unless_single_writer(tmp_path: Path) -> None:
    import yaml

    from ctloop.errors import ConfigError
    from tests.conftest import run_cli
    from tests.helpers_triggers import trigger_project

    with pytest.raises(RegistryError, match=r"registry\.uri 'memory://x/r'.*single_writer") as info:
        Registry("memory://x/r", "m")
    assert isinstance(info.value, ConfigError)
    assert Registry("memory://x/r", "m", single_writer=True).cas.kind == "single_writer"
    cfg = trigger_project(tmp_path / "p")
    doc = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**doc, "registry": {"uri": "memory://x/r"}}))
    proc = run_cli("registry", "list", "--config", str(cfg))
    assert proc.returncode == 2 and "registry.single_writer: true" in " ".join(proc.stderr.split())
    cfg.write_text(yaml.safe_dump({**doc, "registry": {"uri": "memory://x/r", "single_writer": True}}))
    proc = run_cli("registry", "list", "--config", str(cfg), "--json")
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


@pytest.mark.slow
def test_kill_9_loop_on_s3(s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = f"s3://{s3_server.new_bucket()}/registry"
    model = tiny_model(tmp_path / "model", blob_kb=16, files=2)
    digest = tree_digest(model)
    rng = random.Random(77)
    registered: set[int] = set()
    kinds: set[str] = set()
    for _trial in range(TRIALS):
        proc = _spawn(uri, str(model))
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
        # let it complete 0-3 operations (whatever the machine's speed), then kill it mid-way
        early = [proc.stdout.readline() for _ in range(rng.randint(0, 3))]
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines = [ln.split(" ", 2) for ln in [*early, *out.splitlines()] if ln.strip()]
        registered |= {int(v) for k, v, _ in lines if k == "R"}
        kinds |= {k for k, _, _ in lines[-1:]}
        reg = Registry(uri, "crash")
        state = (reg.alias("champion"), reg.alias("previous"))  # reading rolls a pending record forward
        assert reg.cas.read(f"{reg.root}/aliases/{PENDING}") is None
        visible = reg.versions()
        assert registered <= set(visible), f"lost versions: {sorted(registered - set(visible))}"
        for v in visible:  # nothing half-written is visible
            mv = reg.get(v)
            assert mv.metadata["artifact"]["sha256"] == digest
            local = reg.local_model_dir(v, cache_dir=tmp_path / f"cache-{_trial}")
            assert tree_digest(local) == digest
        for alias_v in state:
            assert alias_v is None or alias_v in visible, f"dangling alias -> {alias_v}"
        if lines:
            done = tuple(json.loads(lines[-1][2]))
            kind, v = lines[-1][0], int(lines[-1][1])
            allowed = [done]
            if kind == "R" and done[0] != v:
                allowed.append((v, done[0]))
            if kind == "P":
                allowed.append((done[1], done[0]))
            assert state in allowed, f"after {lines[-1]}: aliases {state} not in {allowed}"
    assert registered, "no registration completed in any trial"
