"""The compiled fast path behind the real model server over HTTP: served when it agrees, the reference
path when the export failed, and a version whose compiled artifact was altered is refused."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ctloop.config import load_config
from ctloop.fastpath.artifact import FAST_FILE
from ctloop.model import load_model
from ctloop.registry import Registry
from tests.conftest import make_project
from tests.helpers_serving import ServerProcess, add_version, records, training_frame, write_config
from tests.unit.test_fastpath import unsupported_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _fast_metric(server: ServerProcess, version: int) -> float:
    return server.metric(f'ctloop_serving_fast_path{{version="{version}"}}')


def _predict(server: ServerProcess, name: str, body: dict[str, object]) -> dict[str, object]:
    r = httpx.post(f"{server.base}/v1/models/{name}:predict", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_export_failure_is_served_on_the_reference_path(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    cfg = load_config(project)
    model_dir = unsupported_model(tmp_path / "rf")
    assert not (model_dir / FAST_FILE).exists()
    model = load_model(model_dir)
    frame = training_frame(seed=5, rows=20)
    server = ServerProcess(project, model_dir=model_dir)
    try:
        server.wait_ready(cfg.name)
        got = _predict(server, cfg.name, {"instances": records(frame, model.features)})
        assert _fast_metric(server, 0) == 0
        log = server.log()
    finally:
        server.stop()
    assert np.allclose(got["predictions"], model.predict_proba(frame), atol=1e-12)  # type: ignore[arg-type]
    assert "served on the reference path" in log


def test_fast_path_serves_and_altered_artifact_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    write_config(project, {"poll_seconds": 0.2})
    cfg = load_config(project)
    reg = Registry(cfg.registry.uri, cfg.name)
    v1 = add_version(cfg, tmp_path, seed=0)
    model = load_model(reg.local_model_dir(v1))
    frame = training_frame(seed=6, rows=30)
    body = {"instances": records(frame, model.features)}
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        got = _predict(server, cfg.name, body)
        assert _fast_metric(server, v1) == 1
        assert np.max(np.abs(np.asarray(got["predictions"]) - model.predict_proba(frame))) <= 1e-5
        # a new version whose fast.npz no longer matches its digest: refused, v1 keeps serving
        bad = tmp_path / "bad"
        shutil.copytree(reg.local_model_dir(v1), bad)
        (bad / FAST_FILE).chmod(0o644)
        (bad / FAST_FILE).write_bytes((bad / FAST_FILE).read_bytes()[:-8] + b"tampered")
        v2 = reg.register(bad, {"run_id": "tampered"})
        reg.promote(v2, "test tampered")
        deadline = time.monotonic() + 30
        while server.metric("ctloop_serving_swap_failures_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.metric("ctloop_serving_swap_failures_total") == 1
        again = _predict(server, cfg.name, body)
        assert again["model_version"] == str(v1) and again["predictions"] == got["predictions"]
        assert "does not match model.json" in server.log()
    finally:
        server.stop()


def test_micro_batching_answers_each_request_with_its_own_rows(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    write_config(project, {"batching": {"enabled": True, "max_batch_size": 8, "max_wait_us": 20_000}})
    cfg = load_config(project)
    reg = Registry(cfg.registry.uri, cfg.name)
    v1 = add_version(cfg, tmp_path, seed=0)
    model = load_model(reg.local_model_dir(v1))
    frames = [training_frame(seed=20 + i, rows=1 + i % 3) for i in range(24)]
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        with ThreadPoolExecutor(12) as pool:
            outs = list(pool.map(lambda f: _predict(server, cfg.name, {"instances": records(f, model.features)}),
                                 frames))
        batches = server.metric("ctloop_serving_batches_total")
    finally:
        server.stop()
    assert 1 <= batches < len(frames)  # requests shared model calls
    for frame, out in zip(frames, outs, strict=True):
        assert out["model_version"] == str(v1)
        assert len(out["predictions"]) == len(frame)  # type: ignore[arg-type]
        assert np.max(np.abs(np.asarray(out["predictions"]) - model.predict_proba(frame))) <= 1e-5
