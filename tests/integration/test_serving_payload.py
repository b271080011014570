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
        sink.wait_for(2)
    finally:
        logger.stop(timeout=10)
        sink.stop()
    sent = _value(reg, "ctloop_serving_payload_events_sent_total")
    assert sent >= 2 and sent + dropped == 100
    ids = {h["ce-id"] for h, _ in sink.snapshot()}
    assert all(i.startswith("id-") for i in ids)


def test_emit_after_sink_recovers_delivers_in_order_pairs() -> None:
    sink = EventSink()
    reg = CollectorRegistry()
    logger = PayloadLogger(PayloadLoggerConfig(url=sink.url, flush_seconds=0.05), EventContext("churn", "ml"),
                           ServingMetrics.create(reg)).start()
    try:
        for i in range(10):
            logger.emit(f"e{i}", b'{"instances": []}', b'{"predictions": []}')
        events = sink.wait_for(20)
    finally:
        logger.stop()
        sink.stop()
    types = [(h["ce-id"], h["ce-type"].rsplit(".", 1)[-1]) for h, _ in events]
    assert types[:2] == [("e0", "request"), ("e0", "response")]
    assert _value(reg, "ctloop_serving_payload_events_sent_total") == 20
