"""The drift watcher over real HTTP (uvicorn): events in, drift metrics out, champion reload, bad input.

The model-server test starts the real ``ctloop serve`` (the KServe model server) on a trained ctloop model,
with its payload logger posting batched CloudEvents to the watcher: the real server -> watcher path.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ctloop.config import ProjectConfig, parse_config
from ctloop.datagen import DriftSpec
from ctloop.registry import Registry
from ctloop.watcher import build_app
from tests.conftest import free_port
from tests.helpers_drift import START, binary_event, records, stream, train_model
from tests.helpers_serving import ServerProcess

pytestmark = pytest.mark.integration
NAME = "churn"
DRIFTED_DAY = START + dt.timedelta(days=30)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"clean": train_model(root / "clean"),
            "drifted": train_model(root / "drifted", drift=DriftSpec(start=START), day=DRIFTED_DAY)}


def make_cfg(root: Path, **drift: object) -> ProjectConfig:
    d = {"window_rows": 500, "min_rows": 500, "consecutive_windows": 2, "poll_seconds": 0.1,
         "max_body_bytes": 256 * 1024, **drift}
    return parse_config({"name": NAME, "data": {"source": str(root / "data")},
                         "registry": {"uri": str(root / "registry")}, "drift": d})


class Watcher:
    """A watcher served by uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, cfg: ProjectConfig, **app_kwargs: object) -> None:
        self.registry = CollectorRegistry()
        self.app = build_app(cfg, self.registry, **app_kwargs)  # type: ignore[arg-type]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Watcher:
        self.thread.start()
        wait_until(lambda: self.server.started, "watcher to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def metric(self, name: str, **labels: str) -> float | None:
        text = httpx.get(f"{self.url}/metrics").text
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return None

    def status(self) -> dict:  # type: ignore[type-arg]
        return httpx.get(f"{self.url}/status").json()

    def post(self, headers: dict[str, str], body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/events", headers=headers, content=body)


def wait_until(cond, what: str, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``cond`` (a readiness wait, not a timing assertion)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def publish(cfg: ProjectConfig, model_dir: Path) -> int:
    reg = Registry(cfg.registry.uri, cfg.name)
    v = reg.register(model_dir, {"run_id": uuid.uuid4().hex})
    reg.promote(v, "test")
    return v


@pytest.fixture
def watcher(tmp_path: Path, models: dict[str, Path]) -> Iterator[Watcher]:
    cfg = make_cfg(tmp_path)
    publish(cfg, models["clean"])
    with Watcher(cfg) as w:
        wait_until(lambda: w.status()["version"] == 1, "champion to load")
        yield w


def test_model_server_events_show_drifted_features_in_metrics(watcher: Watcher, models: dict[str, Path],
                                                              tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "name": NAME, "data": {"source": str(tmp_path / "data")}, "registry": {"uri": str(tmp_path / "registry")},
        "serving": {"logger": {"url": f"{watcher.url}/events", "batch_size": 64, "flush_seconds": 0.2}}}))
    server = ServerProcess(config, model_dir=models["clean"])
    try:
        server.wait_ready(NAME, timeout=120)
        frame = stream(1500, seed=21, day=DRIFTED_DAY, drift=DriftSpec(start=START))
        for a in range(0, len(frame), 250):
            r = httpx.post(f"{server.base}/v1/models/{NAME}:predict",
                           json={"instances": records(frame.iloc[a : a + 250])}, timeout=60)
            assert r.status_code == 200, r.text
            assert len(r.json()["predictions"]) == 250
        wait_until(lambda: watcher.metric("ctloop_watcher_events_total", outcome="joined") == 6,
                   "the server's batched events to reach the watcher")
        posts = server.metric("ctloop_serving_payload_posts_total")
    finally:
        server.stop()
    assert 1 <= posts <= 6  # batched: one POST carries a request/response pair or more, never one event
    assert watcher.metric("ctloop_watcher_events_total", outcome="joined") == 6
    assert watcher.metric("ctloop_window_rows", model=NAME) == 500
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="age") == 1
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="region") == 1
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="tenure_months") == 0
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="plan") == 0
    assert watcher.metric("ctloop_drift_share", model=NAME) == pytest.approx(9 / 12)
    assert watcher.metric("ctloop_drift_score", model=NAME, feature="age", method="psi") > 0.1
    assert watcher.metric("ctloop_prediction_drift_score", model=NAME, method="psi") is not None
    st = watcher.status()
    assert "age" in st["drifted_features"] and st["windows"]["evaluated"] == 3


def test_malformed_oversize_and_unknown_model_events(watcher: Watcher) -> None:
    ok_body = {"instances": records(stream(3, seed=1))}
    h, b = binary_event("request", ok_body, NAME)
    assert watcher.post(h, b).status_code == 202

    r = watcher.post({"content-type": "application/json"}, json.dumps(ok_body).encode())
    assert r.status_code == 400 and "ce-id" in r.json()["error"]
    h, _ = binary_event("request", ok_body, NAME)
    r = watcher.post(h, b"{not json")
    assert r.status_code == 400
    h, b = binary_event("request", ok_body, NAME)
    r = watcher.post({**h, "ce-type": "com.example.other"}, b)
    assert r.status_code == 400 and "unsupported ce-type" in r.json()["error"]
    bad = {"instances": [{**ok_body["instances"][0], "age": "old"}]}
    r = watcher.post(*binary_event("request", bad, NAME))
    assert r.status_code == 400 and "'age'" in r.json()["error"]
    r = watcher.post(*binary_event("request", {"rows": []}, NAME))
    assert r.status_code == 400 and "instances" in r.json()["error"]
    r = watcher.post(*binary_event("request", {"instances": [[1, 2]]}, NAME))
    assert r.status_code == 400 and "12 values" in r.json()["error"]
    r = watcher.post(*binary_event("response", {"predictions": ["yes"]}, NAME))
    assert r.status_code == 400 and "numbers" in r.json()["error"]

    good = {"specversion": "1.0", "id": "g1", "type": "org.kubeflow.serving.inference.request", "source": "x",
            "inferenceservicename": NAME, "datacontenttype": "application/json", "data": ok_body}
    batch = [good, {**good, "id": "g2", "data": bad}]  # one bad event rejects the whole delivery
    r = watcher.post({"content-type": "application/cloudevents-batch+json"}, json.dumps(batch).encode())
    assert r.status_code == 400 and "'age'" in r.json()["error"]

    big = {"instances": records(stream(2000, seed=2))}
    r = watcher.post(*binary_event("request", big, NAME))
    assert r.status_code == 413

    r = watcher.post(*binary_event("request", ok_body, "some-other-model"))
    assert r.status_code == 202 and r.json()["dropped"] == 1

    assert watcher.metric("ctloop_watcher_events_total", outcome="malformed") == 8
    assert watcher.metric("ctloop_watcher_events_total", outcome="oversize") == 1
    assert watcher.metric("ctloop_watcher_events_total", outcome="unknown_model") == 1
    assert watcher.metric("ctloop_watcher_events_total", outcome="accepted") == 1
    assert watcher.status()["windows"]["rows_seen"] == 3  # rejected events left nothing behind


def test_structured_batched_and_v2_events(watcher: Watcher) -> None:
    frame = stream(4, seed=3)
    rec = records(frame)
    structured = {"specversion": "1.0", "id": "s1", "type": "org.kubeflow.serving.inference.request",
                  "source": "x", "inferenceservicename": NAME, "datacontenttype": "application/json",
                  "data": {"instances": rec}}
    r = watcher.post({"content-type": "application/cloudevents+json"}, json.dumps(structured).encode())
    assert r.status_code == 202 and r.json()["rows"] == 4
    v2 = {"inputs": [{"name": c, "shape": [4], "datatype": "BYTES" if isinstance(rec[0][c], str) else "FP64",
                      "data": [x[c] for x in rec]} for c in rec[0]]}
    resp = {"model_name": NAME, "outputs": [{"name": "probability", "shape": [4, 2], "datatype": "FP64",
                                             "data": [0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.5, 0.5]}]}
    batch = [
        {**structured, "id": "b1", "data": v2},
        {**structured, "id": "b1", "type": "org.kubeflow.serving.inference.response", "data": resp},
    ]
    r = watcher.post({"content-type": "application/cloudevents-batch+json"}, json.dumps(batch).encode())
    assert r.status_code == 202 and r.json() == {"accepted": 2, "dropped": 0, "windows": 0, "rows": 8}
    st = watcher.status()
    assert st["windows"]["rows_seen"] == 8 and st["windows"]["predictions_seen"] == 4
    assert st["events"]["joined"] == 1


def test_champion_change_reloads_the_reference(watcher: Watcher, models: dict[str, Path]) -> None:
    drifted = stream(1000, seed=31, day=DRIFTED_DAY, drift=DriftSpec(start=START))
    for a in (0, 500):
        assert watcher.post(*binary_event("request", {"instances": records(drifted.iloc[a : a + 500])},
                                          NAME)).status_code == 202
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="age") == 1
    cfg = watcher.app.state.watcher.cfg
    assert publish(cfg, models["drifted"]) == 2
    wait_until(lambda: watcher.status()["version"] == 2, "the watcher to follow the new champion")
    st = watcher.status()
    assert st["windows"]["evaluated"] == 0 and st["drifted_features"] == []
    assert watcher.metric("ctloop_drift_reference_version", model=NAME) == 2
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="age") == 0
    assert watcher.metric("ctloop_watcher_reloads_total", outcome="loaded") == 2
    for a in (0, 500):  # the drifted stream is the new normal
        watcher.post(*binary_event("request", {"instances": records(drifted.iloc[a : a + 500])}, NAME))
    assert watcher.status()["windows"]["evaluated"] == 2
    assert watcher.metric("ctloop_drift_detected", model=NAME, feature="age") == 0


def test_corrupt_new_champion_keeps_the_old_reference(watcher: Watcher, models: dict[str, Path],
                                                      tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["drifted"], broken)
    (broken / "profile.json").write_text("{corrupt")
    cfg = watcher.app.state.watcher.cfg
    publish(cfg, broken)
    wait_until(lambda: (watcher.metric("ctloop_watcher_reloads_total", outcome="failed") or 0) >= 1,
               "the failed reload to be counted")
    st = watcher.status()
    assert st["version"] == 1 and "profile" in st["reference_error"]


def test_extra_routes_share_the_watcher_state(tmp_path: Path, models: dict[str, Path]) -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def peek(request: Request) -> JSONResponse:
        st = request.app.state.watcher
        return JSONResponse({"version": st.version, "share": st.drift_share})

    cfg = make_cfg(tmp_path)
    publish(cfg, models["clean"])
    with Watcher(cfg, extra_routes=[Route("/peek", peek)],
                 status_extras={"triggers": lambda: {"ledger": "empty"}}) as w:
        wait_until(lambda: w.status()["version"] == 1, "champion to load")
        assert httpx.get(f"{w.url}/peek").json() == {"version": 1, "share": 0.0}
        assert w.status()["triggers"] == {"ledger": "empty"}


def test_cli_watch_serves_health_and_metrics(tmp_path: Path, models: dict[str, Path]) -> None:
    cfg = make_cfg(tmp_path)
    publish(cfg, models["clean"])
    path = tmp_path / "ctloop.yaml"
    path.write_text(json.dumps({"name": NAME, "data": {"source": "data"}, "registry": {"uri": "registry"}}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ctloop.cli", "watch", "--config", str(path), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").json()["version"] == 1
            except httpx.HTTPError:
                return False

        wait_until(healthy, "ctloop watch to serve")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'ctloop_drift_reference_version{model="churn"} 1.0' in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode is not None
