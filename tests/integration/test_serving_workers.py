"""``serving.workers``: several server processes on one port, each following the champion, with metrics
summed over all of them (real server, real registry, over HTTP)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from ctloop.config import load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from tests.conftest import make_project
from tests.helpers_serving import ServerProcess, add_version, records, training_frame, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait(cond, what: str, limit: float = 60) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def test_two_workers_share_the_port_follow_the_champion_and_sum_metrics(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    write_config(project, {"workers": 2, "poll_seconds": 0.2})
    cfg = load_config(project)
    reg = Registry(cfg.registry.uri, cfg.name)
    v1 = add_version(cfg, tmp_path, seed=0)
    body = {"instances": records(training_frame(seed=4, rows=2), load_model(reg.local_model_dir(v1)).features)}
    server = ServerProcess(project)
    url = f"{server.base}/v1/models/{cfg.name}:predict"
    try:
        server.wait_ready(cfg.name)
        # both workers load the champion: the summed swap counter says 2
        _wait(lambda: server.metric("ctloop_serving_swaps_total") == 2, "both workers to load v1")
        codes = []
        for _ in range(30):  # a fresh connection per request: the kernel spreads them over the workers
            codes.append(httpx.post(url, json=body, timeout=30, headers={"connection": "close"}).status_code)
        assert codes == [200] * 30
        assert server.metric('ctloop_serving_requests_total{code="200",endpoint="v1_predict"}') == 30
        v2 = add_version(cfg, tmp_path, seed=1)
        _wait(lambda: server.metric("ctloop_serving_swaps_total") == 4, "both workers to follow v2")
        versions = {httpx.post(url, json=body, timeout=30, headers={"connection": "close"}).json()["model_version"]
                    for _ in range(20)}
        assert versions == {str(v2)}
        assert server.metric("ctloop_serving_model_version") == v2
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()[-3000:]
