"""``serving.logger.sender: process``: frames over a pipe to a child sender, against real sinks and a real
``ctloop serve`` over HTTP."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import PayloadLoggerConfig, load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from ctloop.serving.metrics import ServingMetrics
from ctloop.serving.payload import EventContext
from ctloop.serving.payload_process import ProcessPayloadLogger, decode_frames, encode_frame
from tests.conftest import make_project
from tests.helpers_serving import EventSink, ServerProcess, add_version, records, training_frame, write_config

pytestmark = pytest.mark.integration

DROPPED = "ctloop_serving_payload_events_dropped_total"


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels or None) or 0.0


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc): the sender and multiprocessing's resource tracker."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_frames_round_trip_with_and_without_original_id_and_split_reads() -> None:
    frames = [("a", "t1", None, b'{"instances": [[1]]}', b'{"predictions": [1]}'),
              ("b", "t2", "", b"{}", b"{}"),
              ("c", "t3", "b3JpZw==", b"x" * 70_000, b"")]
    wire = b"".join(encode_frame(*f) for f in frames)
    buf = bytearray(wire[:10])
    assert decode_frames(buf) == [] and len(buf) == 10  # a partial header stays
    buf += wire[10:-1]
    assert decode_frames(buf) == frames[:2]  # the last frame lacks a byte
    buf += wire[-1:]
    assert decode_frames(buf) == frames[2:] and buf == bytearray()


def test_process_sender_delivers_counts_and_stops_its_child() -> None:
    sink = EventSink()
    reg = CollectorRegistry()
    logger = ProcessPayloadLogger(PayloadLoggerConfig(url=sink.url, flush_seconds=0.05, batch_size=8),
                                  EventContext("churn", "ml"), ServingMetrics.create(reg), token="s3cret").start()
    pid = logger.pid
    assert pid is not None and _alive(pid)
    try:
        for i in range(40):
            logger.emit(f"e{i}", json.dumps({"instances": [[i]]}).encode(), b'{"predictions": [0.5]}')
        events = sink.wait_for_events(80)
    finally:
        logger.stop()
        sink.stop()
    assert not _alive(pid)
    assert [(ev["id"], ev["data"]["instances"][0][0]) for ev in events[::2]] == [(f"e{i}", i) for i in range(40)]
    assert all(h["authorization"] == "Bearer s3cret" for h, _ in sink.snapshot())
    assert len(sink.snapshot()) >= 5  # batches of at most 8 rows
    assert _value(reg, "ctloop_serving_payload_events_sent_total") == 80
    assert _value(reg, "ctloop_serving_payload_posts_total") == len(sink.snapshot())


def test_dead_child_drops_as_sender_down_without_raising() -> None:
    sink = EventSink()
    reg = CollectorRegistry()
    logger = ProcessPayloadLogger(PayloadLoggerConfig(url=sink.url), EventContext("churn", "ml"),
                                  ServingMetrics.create(reg)).start()
    try:
        assert logger.pid is not None
        os.kill(logger.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(logger.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(5):
            logger.emit(f"e{i}", b"{}", b"{}")
    finally:
        logger.stop()
        sink.stop()
    assert _value(reg, DROPPED, reason="sender_down") == 10


@pytest.fixture
def project_with_model(tmp_path: Path) -> tuple[Path, Any]:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    cfg = load_config(project)
    add_version(cfg, tmp_path, seed=0)
    return project, cfg


def _predict(server: ServerProcess, cfg: Any, n: int) -> list[tuple[str, Any, Any]]:
    model = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir("champion"))
    rows = records(training_frame(seed=3, rows=n), model.features)
    sent = []
    for i, row in enumerate(rows):
        body = {"instances": [row]}
        r = httpx.post(f"{server.base}/v1/models/{cfg.name}:predict", json=body,
                       headers={"x-request-id": f"req-{i}"}, timeout=10)
        assert r.status_code == 200
        sent.append((f"req-{i}", body, r.json()))
    return sent


@pytest.mark.slow
def test_served_events_arrive_in_batches_and_sigterm_flushes_and_reaps_the_child(
        project_with_model: tuple[Path, Any]) -> None:
    project, cfg = project_with_model
    sink = EventSink()
    # a long flush interval: the last events are still queued in the child when SIGTERM arrives
    write_config(project, {"logger": {"url": sink.url, "sender": "process", "batch_size": 10,
                                      "flush_seconds": 30}})
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        children = _children(server.proc.pid)
        senders = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(senders) == 1
        sent = _predict(server, cfg, 25)
        sink.wait_for_events(40)  # two full batches of 10 rows went at once
        deadline = time.monotonic() + 10
        while server.metric("ctloop_serving_payload_events_sent_total") < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.metric("ctloop_serving_payload_events_sent_total") == 40  # the child's count, on /metrics
        assert len(sink.cloudevents()) == 40
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)  # raises if the server lingers
    finally:
        server.stop()
        sink.stop()
    assert children and not any(_alive(c) for c in children)  # the sender (and resource tracker) exited
    events = sink.cloudevents()
    assert len(events) == 50
    by_id: dict[str, dict[str, Any]] = {}
    for ev in events:
        by_id.setdefault(ev["id"], {})[ev["type"].rsplit(".", 1)[-1]] = ev["data"]
    assert by_id == {i: {"request": body, "response": resp} for i, body, resp in sent}
    deliveries = sink.snapshot()
    assert len(deliveries) == 3  # 10 + 10 rows, then the 5 flushed on SIGTERM
    assert all(h["content-type"] == "application/cloudevents-batch+json" for h, _ in deliveries)


@pytest.mark.slow
def test_refusing_sink_counts_send_failed_on_server_metrics(project_with_model: tuple[Path, Any]) -> None:
    project, cfg = project_with_model
    sink = EventSink(status=500)
    write_config(project, {"logger": {"url": sink.url, "sender": "process", "flush_seconds": 0.05}})
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        _predict(server, cfg, 6)
        deadline = time.monotonic() + 20
        failed = f'{DROPPED}{{reason="send_failed"}}'
        while server.metric(failed) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.metric(failed) == 12
        assert server.metric("ctloop_serving_payload_events_sent_total") == 0
        assert server.metric("ctloop_serving_payload_posts_total") == sink.posts >= 1
    finally:
        server.stop()
        sink.stop()


@pytest.mark.slow
def test_each_worker_has_its_own_sender_and_metrics_are_not_double_counted(
        project_with_model: tuple[Path, Any]) -> None:
    project, cfg = project_with_model
    sink = EventSink()
    write_config(project, {"workers": 2, "logger": {"url": sink.url, "sender": "process", "flush_seconds": 0.05}})
    server = ServerProcess(project)
    senders: list[int] = []
    try:
        server.wait_ready(cfg.name)
        sent = _predict(server, cfg, 12)
        sink.wait_for_events(24)
        deadline = time.monotonic() + 10
        while server.metric("ctloop_serving_payload_events_sent_total") < 24 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a double count would show up within a report interval
        assert server.metric("ctloop_serving_payload_events_sent_total") == 24
        workers = _children(server.proc.pid)
        senders = [c for w in workers for c in _children(w)
                   if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(senders) == 2
    finally:
        server.stop()
        sink.stop()
    assert not any(_alive(c) for c in senders)
    assert sorted({ev["id"] for ev in sink.cloudevents()}) == sorted(i for i, _, _ in sent)
