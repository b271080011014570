"""Preemption: a torch training child killed at a random step (SIGTERM, SIGKILL) and restarted ends with
bitwise the same weights and the same per-epoch metrics as an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers_torch import state_of, tiny_frame

ROOT = Path(__file__).resolve().parents[2]
EVERY = 5
pytestmark = pytest.mark.integration


def _child(data: Path, out: Path, ckpt: Path, kill_at: int | None = None,
           sig: int = signal.SIGTERM) -> tuple[int, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers_torch", str(data), str(out), str(ckpt),
                             str(EVERY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if kill_at is not None and line.strip() == f"STEP {kill_at}":
                proc.send_signal(sig)
                kill_at = None
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc not in (0, 143, -signal.SIGKILL):
        raise AssertionError(f"child failed rc={rc}: {proc.stderr.read() if proc.stderr else ''}")
    return rc, lines


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("torch-baseline")
    data = root / "train.parquet"
    tiny_frame().to_parquet(data, index=False)
    rc, lines = _child(data, root / "model", root / "ckpt")
    assert rc == 0 and "RESUMED_FROM None" in lines
    return data, root / "model"


def _assert_same(model: Path, reference: Path) -> None:
    got, want = state_of(model), state_of(reference)
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), f"weights differ in {k}"
    gm, wm = (json.loads((p / "model.json").read_text()) for p in (model, reference))
    assert gm["history"] == wm["history"]
    assert gm["best_val_loss"] == wm["best_val_loss"] and gm["steps"] == wm["steps"]
    assert gm["weights_sha256"] == wm["weights_sha256"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killed_and_restarted_equals_uninterrupted(baseline: tuple[Path, Path], tmp_path: Path,
                                                   sig: int) -> None:
    data, reference = baseline
    total = json.loads((reference / "model.json").read_text())["steps"]
    kill_at = random.Random(f"{sig}-{total}").randint(EVERY + 2, total - 3)
    rc, lines = _child(data, tmp_path / "model", tmp_path / "ckpt", kill_at=kill_at, sig=sig)
    assert not (tmp_path / "model" / "model.pt").exists(), "the killed run must not have finished"
    last_step = max(int(x.split()[1]) for x in lines if x.startswith("STEP "))
    if sig == signal.SIGTERM:
        assert rc == 143 and any(x.startswith("INTERRUPTED") for x in lines)
    else:
        assert rc == -signal.SIGKILL
    rc2, lines2 = _child(data, tmp_path / "model", tmp_path / "ckpt")
    assert rc2 == 0
    resumed = int(next(x for x in lines2 if x.startswith("RESUMED_FROM")).split()[1])
    if sig == signal.SIGTERM:
        assert resumed == last_step, "SIGTERM must checkpoint the exact step it stopped at"
    else:
        assert EVERY <= resumed <= last_step and resumed % EVERY == 0
    first_step = int(next(x for x in lines2 if x.startswith("STEP ")).split()[1])
    assert first_step == resumed + 1, "the restarted run must continue, not start over"
    _assert_same(tmp_path / "model", reference)
