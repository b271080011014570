"""The payload logger against real loopback sinks: batching, a slow sink fills the queue and drops."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import PayloadLoggerConfig
from ctloop.serving.metrics import ServingMetrics
from ctloop.serving.payload import EventContext, PayloadLogger
from tests.helpers_serving import EventSink

pytestmark = pytest.mark.integration


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels or None) or 0.0


def test_slow_sink_drops_counted_and_emit_never_blocks() -> None:
    sink = EventSink(delay=0.2)
    reg = CollectorRegistry()
    logger = PayloadLogger(PayloadLoggerConfig(url=sink.url, queue_size=4, batch_size=2, flush_seconds=0.05),
                           EventContext("churn", "ml"), ServingMetrics.create(reg)).start()
    try:
        for i in range(50):  # far more than the queue holds while the sink sleeps
            logger.emit(f"id-{i}", json.dumps({"instances": [[i]]}).encode(), b'{"predictions": [0.5]}')
        dropped = _value(reg, "ctloop_serving_payload_events_dropped_total", reason="queue_full")
        assert dropped >= 2 * (50 - 4 - 2)  # at most queue + one batch in flight were accepted
        sink.wait_for_events(2)
    finally:
        logger.stop(timeout=10)
        sink.stop()
    sent = _value(reg, "ctloop_serving_payload_events_sent_total")
    assert sent >= 2 and sent + dropped == 100
    ids = {ev["id"] for ev in sink.cloudevents()}
    assert ids and all(i.startswith("id-") for i in ids)


def test_emit_after_sink_recovers_delivers_in_order_pairs() -> None:
    sink = EventSink()
    reg = CollectorRegistry()
    logger = PayloadLogger(PayloadLoggerConfig(url=sink.url, flush_seconds=0.05), EventContext("churn", "ml"),
                           ServingMetrics.create(reg)).start()
    try:
        for i in range(10):
            logger.emit(f"e{i}", b'{"instances": []}', b'{"predictions": []}')
        events = sink.wait_for_events(20)
    finally:
        logger.stop()
        sink.stop()
    types = [(ev["id"], ev["type"].rsplit(".", 1)[-1]) for ev in events]
    assert types[:2] == [("e0", "request"), ("e0", "response")]
    assert _value(reg, "ctloop_serving_payload_events_sent_total") == 20


def test_one_post_per_batch_size_rows() -> None:
    sink = EventSink()
    reg = CollectorRegistry()
    logger = PayloadLogger(PayloadLoggerConfig(url=sink.url, batch_size=32, flush_seconds=5.0),
                           EventContext("churn", "ml"), ServingMetrics.create(reg)).start()
    try:
        for i in range(320):  # single-row inferences, emitted far faster than flush_seconds
            logger.emit(f"r{i}", json.dumps({"instances": [[i]]}).encode(), b'{"predictions": [0.5]}')
        events = sink.wait_for_events(640)
    finally:
        logger.stop()
        sink.stop()
    deliveries = sink.snapshot()
    assert len(deliveries) == 10  # 320 rows / batch_size 32
    assert all(h["content-type"] == "application/cloudevents-batch+json" for h, _ in deliveries)
    assert all(len(json.loads(b)) == 64 for _, b in deliveries)
    assert [ev["id"] for ev in events[::2]] == [f"r{i}" for i in range(320)]
    assert _value(reg, "ctloop_serving_payload_posts_total") == 10
    assert _value(reg, "ctloop_serving_payload_events_sent_total") == 640


def test_multi_row_requests_count_rows_and_flush_after_flush_seconds() -> None:
    sink = EventSink()
    reg = CollectorRegistry()
    logger = PayloadLogger(PayloadLoggerConfig(url=sink.url, batch_size=64, flush_seconds=0.3),
                           EventContext("churn", "ml"), ServingMetrics.create(reg)).start()
    try:
        logger.emit("big", json.dumps({"instances": [[i] for i in range(100)]}).encode(), b'{"predictions": []}')
        logger.emit("small", b'{"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}]}',
                    b'{"outputs": []}')
        events = sink.wait_for_events(4)
    finally:
        logger.stop()
        sink.stop()
    # 100 rows >= batch_size: the first pair goes alone; the second waits for flush_seconds and goes next
    assert [len(json.loads(b)) for _, b in sink.snapshot()] == [2, 2]
    assert [ev["id"] for ev in events] == ["big", "big", "small", "small"]
