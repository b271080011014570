"""Hot-swap of the champion under concurrent load, and refusal of a corrupt artifact (real server)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ctloop.config import load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from tests.conftest import make_project
from tests.helpers_serving import (
    ServerProcess,
    add_corrupt_version,
    add_version,
    records,
    training_frame,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait_version(server: ServerProcess, version: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.metric("ctloop_serving_model_version") == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"version {version} not served after {timeout}s:\n{server.log()[-3000:]}")


def test_hot_swap_under_load_loses_no_request_and_corrupt_artifact_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    write_config(project, {"poll_seconds": 0.2})
    cfg = load_config(project)
    reg = Registry(cfg.registry.uri, cfg.name)
    v1 = add_version(cfg, tmp_path, seed=0)
    features = load_model(reg.local_model_dir(v1)).features
    frame = training_frame(seed=3, rows=4)
    body = {"instances": records(frame, features)}
    server = ServerProcess(project)
    codes: Counter[int] = Counter()
    versions_seen: set[str] = set()
    stop = threading.Event()
    url = f"{server.base}/v1/models/{cfg.name}:predict"

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(url, json=body)
                codes[r.status_code] += 1
                if r.status_code == 200:
                    versions_seen.add(r.json()["model_version"])

    try:
        server.wait_ready(cfg.name)
        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            swapped = [v1]
            for seed in (1, 2, 3):
                v = add_version(cfg, tmp_path, seed=seed)
                _wait_version(server, v)
                swapped.append(v)
                time.sleep(0.3)  # let traffic hit the new version
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        assert sum(codes.values()) > 20, codes
        assert set(codes) == {200}, f"non-2xx during hot-swap: {codes}"
        assert {str(v) for v in swapped[1:]} <= versions_seen, versions_seen
        assert server.metric("ctloop_serving_swaps_total") == 4  # initial load + 3 swaps

        # the served predictions are the new champion's own predict_proba
        last = swapped[-1]
        expected = load_model(reg.local_model_dir(last)).predict_proba(frame)
        got = httpx.post(url, json=body, timeout=10).json()
        assert got["model_version"] == str(last)
        assert got["predictions"] == pytest.approx(list(expected), rel=1e-12)

        # a corrupt artifact becomes champion: refused, counted, the old version keeps serving
        bad = add_corrupt_version(cfg, tmp_path, Path(reg.local_model_dir(last)))
        deadline = time.monotonic() + 30
        while server.metric("ctloop_serving_swap_failures_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.metric("ctloop_serving_swap_failures_total") == 1
        time.sleep(0.6)  # several more polls: the refused version is not retried
        assert server.metric("ctloop_serving_swap_failures_total") == 1
        r = httpx.post(url, json=body, timeout=10)
        assert r.status_code == 200 and r.json()["model_version"] == str(last)
        assert server.metric("ctloop_serving_model_version") == last
        assert f"refused model version {bad}" in server.log()

        # the alias moves on to a good version: swapped in again
        good = add_version(cfg, tmp_path, seed=4)
        _wait_version(server, good)
    finally:
        stop.set()
        server.stop()


def test_serve_without_champion_fails_clearly(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    r = run_cli("serve", "--config", str(project), "--port", "1", timeout=120)
    assert r.returncode != 0
    assert "no champion" in " ".join((r.stderr + r.stdout).split())


def test_serve_model_dir_refuses_corrupt_artifact(tmp_path: Path) -> None:
    from tests.conftest import run_cli
    from tests.helpers_serving import train_model_dir

    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    cfg = load_config(project)
    bad = train_model_dir(cfg, tmp_path / "m")
    (bad / "model.joblib").write_bytes(b"garbage")
    r = run_cli("serve", "--config", str(project), "--port", "1", "--model-dir", str(bad), timeout=120)
    assert r.returncode != 0
    assert "nothing is served" in " ".join((r.stderr + r.stdout).split())
