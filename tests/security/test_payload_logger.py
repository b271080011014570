"""Security regressions of the model server's payload logger and V2 decoding: a hostile ``X-Request-ID``
no longer kills the sender, every sender failure is caught and counted, ragged V2 input is a 400."""

from __future__ import annotations

import base64
import threading
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

import ctloop.serving.payload as payload
from ctloop.config import PayloadLoggerConfig, load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from ctloop.serving.metrics import ServingMetrics
from ctloop.serving.payload import ORIGINAL_ID_ATTRIBUTE, EventContext, PayloadLogger, sanitize_event_id
from tests.conftest import make_project
from tests.helpers_serving import EventSink, ServerProcess, add_version, records, training_frame, write_config

pytestmark = [pytest.mark.security]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("logger")
    project = make_project(root / "proj", days=2, rows_per_day=50)
    sink = EventSink()
    write_config(project, {"logger": {"url": sink.url, "flush_seconds": 0.05}})
    cfg = load_config(project)
    add_version(cfg, root, seed=0)
    model = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir("champion"))
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        yield {"server": server, "cfg": cfg, "sink": sink, "model": model}
    finally:
        server.stop()
        sink.stop()


def test_sanitize_event_id() -> None:
    assert sanitize_event_id("req-1.a:b") == ("req-1.a:b", None)
    new, original = sanitize_event_id("réq")
    assert new != "réq" and new.isascii() and len(new) == 32
    assert original is not None and base64.urlsafe_b64decode(original) == "réq".encode("latin-1")
    new, original = sanitize_event_id("x" * 1000)
    assert len(new) == 32 and original is not None and len(base64.urlsafe_b64decode(original)) == 512
    assert sanitize_event_id("a\r\nb")[0] != "a\r\nb"


@pytest.mark.integration
@pytest.mark.slow
def test_non_ascii_request_id_does_not_kill_the_logger(served: Any) -> None:
    server, cfg, sink, model = served["server"], served["cfg"], served["sink"], served["model"]
    url = f"{server.base}/v1/models/{cfg.name}:predict"
    body = {"instances": records(training_frame(seed=1, rows=2), model.features)}
    before = len(sink.snapshot())
    hostile = "ünïcode-ïd".encode()
    r = httpx.post(url, json=body, headers=[(b"x-request-id", hostile)], timeout=10)
    assert r.status_code == 200
    r = httpx.post(url, json=body, headers={"x-request-id": "y" * 5000}, timeout=10)
    assert r.status_code == 200
    r = httpx.post(url, json=body, headers={"x-request-id": "plain-id-1"}, timeout=10)
    assert r.status_code == 200
    events = sink.wait_for(before + 6)[before:]
    ids = [h["ce-id"] for h, _ in events]
    assert ids.count("plain-id-1") == 2
    originals = {h.get(f"ce-{ORIGINAL_ID_ATTRIBUTE}") for h, _ in events} - {None}
    decoded = {base64.urlsafe_b64decode(o) for o in originals}
    assert hostile in decoded  # the original travels, safely encoded (latin-1 bytes as read off the wire)
    assert all(i.isascii() and len(i) <= 128 for i in ids)
    assert server.metric('ctloop_serving_payload_events_dropped_total') == 0


@pytest.mark.integration
@pytest.mark.slow
def test_ragged_v2_input_is_400(served: Any) -> None:
    server, cfg, model = served["server"], served["cfg"], served["model"]
    n = 2
    frame = training_frame(seed=2, rows=n)
    inputs = [{"name": f, "datatype": "FP64", "shape": [n], "data": frame[f].astype(float).tolist()}
              for f in model.numeric_features]
    inputs += [{"name": f, "datatype": "BYTES", "shape": [n], "data": frame[f].astype(str).tolist()}
               for f in model.categorical_features]
    url = f"{server.base}/v2/models/{cfg.name}/infer"
    assert httpx.post(url, json={"inputs": inputs}, timeout=10).status_code == 200
    first = inputs[0]
    for data, shape in (([[1.0, 2.0], [3.0]], [3]), ([[1.0], [2.0, 3.0]], [2, 1]), ([[1.0], 2.0], [2, 1]),
                        ([[1.0, 2.0]], [2])):
        bad = [{**first, "data": data, "shape": shape}, *inputs[1:]]
        r = httpx.post(url, json={"inputs": bad}, timeout=10)
        assert r.status_code == 400, (data, r.status_code, r.text)
        assert first["name"] in r.json()["error"]


def test_sender_survives_injected_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = EventSink()
    metrics = ServingMetrics.create(CollectorRegistry())
    calls: list[str] = []
    real = payload.build_events

    def flaky(event_id: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(event_id)
        if event_id.startswith("boom"):
            raise RuntimeError("injected failure")
        return real(event_id, *args, **kwargs)

    monkeypatch.setattr(payload, "build_events", flaky)
    cfg = PayloadLoggerConfig(url=sink.url, flush_seconds=0.02, batch_size=2)
    logger = PayloadLogger(cfg, EventContext("churn", "ns"), metrics).start()
    try:
        for i in ("ok-1", "boom-1", "ok-2", "boom-2", "ok-3"):
            logger.emit(i, b'{"instances": []}', b'{"predictions": []}')
        events = sink.wait_for(6)
        assert sorted({h["ce-id"] for h, _ in events}) == ["ok-1", "ok-2", "ok-3"]
        assert calls == ["ok-1", "boom-1", "ok-2", "boom-2", "ok-3"]
        assert metrics.events_dropped.labels(reason="error")._value.get() == 4
        assert logger._thread is not None and logger._thread.is_alive()
        # a failure outside event building (the queue itself) is caught too, and the sender goes on
        monkeypatch.setattr(logger, "_take_batch", _fail_once(logger._take_batch))
        logger.emit("ok-4", b"{}", b"{}")
        sink.wait_for(8)
        assert logger._thread.is_alive()
    finally:
        logger.stop()
        sink.stop()


def _fail_once(real: Any) -> Any:
    state = {"failed": threading.Event()}

    def take() -> Any:
        if not state["failed"].is_set():
            state["failed"].set()
            raise OSError("injected queue failure")
        return real()

    return take

