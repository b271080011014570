"""Security regressions of the model server's HTTP/gRPC surface (issue: open repository routes, readiness,
gRPC bind address, body limit on every route, slow bodies)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ctloop.config import load_config
from tests.conftest import free_port, make_project
from tests.helpers_serving import ServerProcess, add_version, records, training_frame, write_config

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.slow]

TOKEN = "s3cret-repository-token"


def _start(root: Path, serving: dict[str, Any]) -> dict[str, Any]:
    project = make_project(root / "proj", days=2, rows_per_day=50)
    write_config(project, serving)
    cfg = load_config(project)
    add_version(cfg, root, seed=0)
    server = ServerProcess(project)
    server.wait_ready(cfg.name)
    return {"server": server, "cfg": cfg}


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server with the default surface (no repository API), gRPC on, small body limit and timeout."""
    root = tmp_path_factory.mktemp("surface")
    s = _start(root, {"max_body_bytes": 4096, "body_timeout_seconds": 1.0, "enable_grpc": True,
                      "grpc_port": free_port()})
    try:
        yield s
    finally:
        s["server"].stop()


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server with ``serving.repository_api: true`` behind a bearer token."""
    root = tmp_path_factory.mktemp("repo")
    token = root / "serving-token"
    token.write_text(TOKEN + "\n")
    s = _start(root, {"repository_api": True, "token_file": str(token)})
    try:
        yield s
    finally:
        s["server"].stop()


def _predict(s: dict[str, Any]) -> httpx.Response:
    frame = training_frame(seed=3, rows=2)
    from ctloop.model import load_model
    from ctloop.registry import Registry

    model = load_model(Registry(s["cfg"].registry.uri, s["cfg"].name).local_model_dir("champion"))
    return httpx.post(f"{s['server'].base}/v1/models/{s['cfg'].name}:predict",
                      json={"instances": records(frame, model.features)}, timeout=10)


def test_unload_route_is_not_mounted_and_predict_keeps_working(default_server: Any) -> None:
    base, name = default_server["server"].base, default_server["cfg"].name
    for action in ("unload", "load"):
        r = httpx.post(f"{base}/v2/repository/models/{name}/{action}", timeout=10)
        assert r.status_code == 404, (action, r.status_code, r.text)
    assert _predict(default_server).status_code == 200
    assert httpx.get(f"{base}/v2/health/ready", timeout=5).status_code == 200


def test_explain_is_not_mounted(default_server: Any) -> None:
    base, name = default_server["server"].base, default_server["cfg"].name
    r = httpx.post(f"{base}/v1/models/{name}:explain", json={"instances": []}, timeout=10)
    assert r.status_code in (404, 405), r.text


def test_repository_api_needs_the_bearer_token_and_readiness_follows_unload(repo_server: Any) -> None:
    base, name = repo_server["server"].base, repo_server["cfg"].name
    url = f"{base}/v2/repository/models/{name}/unload"
    assert httpx.post(url, timeout=10).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    assert _predict(repo_server).status_code == 200
    assert httpx.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
    r = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert _predict(repo_server).status_code == 404
    ready = httpx.get(f"{base}/v2/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json() == {"ready": False}


def test_grpc_binds_serving_host(default_server: Any) -> None:
    server, cfg = default_server["server"], default_server["cfg"]
    deadline = time.monotonic() + 20
    addrs: list[str] = []
    while time.monotonic() < deadline and not addrs:
        conns = psutil.Process(server.proc.pid).connections(kind="inet")
        addrs = [c.laddr.ip.removeprefix("::ffff:") for c in conns  # an IPv4-mapped socket is the same
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == cfg.serving.grpc_port]
        time.sleep(0.2)
    assert addrs == [cfg.serving.host], addrs


def test_body_limit_applies_to_every_route(default_server: Any) -> None:
    base, name = default_server["server"].base, default_server["cfg"].name
    big = b"{" + b" " * 60_000 + b"}"
    for path in (f"/v1/models/{name}:explain", f"/v2/models/{name}", "/v2/health/ready", "/nowhere"):
        r = httpx.post(base + path, content=big, headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 413, (path, r.status_code, r.text)

    def chunks() -> Any:  # no content-length: counted as it arrives
        for _ in range(20):
            yield b" " * 1000

    r = httpx.post(f"{base}/v1/models/{name}:explain", content=chunks(), timeout=10)
    assert r.status_code == 413, r.text


def test_slow_body_times_out(default_server: Any) -> None:
    server, name = default_server["server"], default_server["cfg"].name
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall((f"POST /v1/models/{name}:predict HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inst").encode())
        started = time.monotonic()
        data = sock.recv(4096)
        waited = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert waited < 14
    assert _predict(default_server).status_code == 200
