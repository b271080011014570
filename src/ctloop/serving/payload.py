"""Payload logging: KServe-logger-format CloudEvents sent to a sink, asynchronously and in batches.

Each inference produces two CloudEvents that share an id: the request
(``org.kubeflow.serving.inference.request``) and the response (``...inference.response``), each with
the JSON body and KServe's extension attributes (``inferenceservicename``, ``namespace``,
``component``, ``endpoint``). :meth:`PayloadLogger.emit` only enqueues; a worker thread collects up to
``serving.logger.batch_size`` rows or ``flush_seconds`` (whichever comes first) and sends them in one
POST in CloudEvents batched content mode (``application/cloudevents-batch+json``, a JSON array of
structured events). A full queue or a failing sink drops events (counted), never slows or fails a
request. :func:`build_events` gives the binary-mode form of one pair (KServe's own logger's form).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from ctloop.config import PayloadLoggerConfig
from ctloop.serving.metrics import ServingMetrics

log = logging.getLogger("ctloop.serving.payload")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
POLL_SECONDS = 0.005  # how often an open batch looks for more queued inferences


@dataclass(frozen=True)
class EventContext:
    """KServe's extension attributes identifying who produced an event."""

    inferenceservicename: str
    namespace: str
    component: str = "predictor"
    endpoint: str = "default"


@dataclass(frozen=True)
class _Pair:
    id: str
    request: bytes
    response: bytes
    request_type: str
    response_type: str
    time: str


def build_events(event_id: str, request: bytes, response: bytes, source: str, ctx: EventContext,
                 request_content_type: str = "application/json",
                 response_content_type: str = "application/json") -> list[tuple[dict[str, str], bytes]]:
    """The (headers, body) of the request and response events for one inference (binary mode)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    out = []
    for ce_type, body, ctype in ((REQUEST_TYPE, request, request_content_type),
                                 (RESPONSE_TYPE, response, response_content_type)):
        event = CloudEvent({
            "id": event_id, "type": ce_type, "source": source, "time": now, "datacontenttype": ctype,
            "inferenceservicename": ctx.inferenceservicename, "namespace": ctx.namespace,
            "component": ctx.component, "endpoint": ctx.endpoint,
        }, body)
        headers, data = to_binary(event, data_marshaller=lambda b: b)
        out.append((headers, data if isinstance(data, bytes) else str(data).encode()))
    return out


class PayloadLogger:
    """Queues inference pairs and sends them as CloudEvents from a background thread."""

    def __init__(self, cfg: PayloadLoggerConfig, ctx: EventContext, metrics: ServingMetrics) -> None:
        if not cfg.url:
            raise ValueError("serving.logger.url is not set; payload logging needs a sink URL")
        self.cfg = cfg
        self.ctx = ctx
        self.metrics = metrics
        self._queue: queue.Queue[_Pair | None] = queue.Queue(maxsize=cfg.queue_size)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def emit(self, event_id: str, request: bytes, response: bytes) -> None:
        """Enqueue one request/response pair; never blocks (a full queue drops and counts)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        try:
            self._queue.put_nowait(_Pair(event_id, request, response, REQUEST_TYPE, RESPONSE_TYPE, now))
        except queue.Full:
            self.metrics.events_dropped.labels(reason="queue_full").inc(2)

    def start(self) -> PayloadLogger:
        """Start the sender thread."""
        self._thread = threading.Thread(target=self._run, name="ctloop-payload-logger", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what is queued (best effort within ``timeout``) and stop the thread."""
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _take_batch(self) -> list[tuple[_Pair, int]]:
        """Pairs (with their row counts) up to ``batch_size`` rows or ``flush_seconds`` after the first.

        The queue is drained without waiting per item (a wake-up per request would cost the serving
        thread the GIL on every request); while it is empty the thread sleeps in short steps.
        """
        batch: list[tuple[_Pair, int]] = []
        try:
            item = self._queue.get(timeout=self.cfg.flush_seconds)
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.cfg.flush_seconds
        rows = 0
        while item is not None:
            n = request_rows(item.request)
            batch.append((item, n))
            rows += n
            if rows >= self.cfg.batch_size:
                break
            item = None
            while item is None:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stop.is_set():
                        return batch
                    time.sleep(min(POLL_SECONDS, left))
            if item is None:
                break
        return batch

    def _run(self) -> None:
        with httpx.Client(timeout=self.cfg.timeout_seconds) as client:
            while True:
                batch = self._take_batch()
                if batch:
                    self._send(client, [p for p, _ in batch])
                elif self._stop.is_set() and self._queue.empty():
                    return

    def _send(self, client: httpx.Client, batch: list[_Pair]) -> None:
        """POST the batch as one CloudEvents batch; a failure drops it (counted), never retries."""
        assert self.cfg.url is not None
        body, count = batch_body(batch, self.cfg.source, self.ctx)
        if count < 2 * len(batch):
            self.metrics.events_dropped.labels(reason="not_json").inc(2 * len(batch) - count)
        if not count:
            return
        try:
            self.metrics.payload_posts.inc()
            r = client.post(self.cfg.url, content=body, headers={"content-type": BATCH_CONTENT_TYPE})
            if r.status_code >= 300:
                raise httpx.HTTPStatusError(f"sink answered {r.status_code}", request=r.request, response=r)
        except httpx.HTTPError as exc:
            self.metrics.events_dropped.labels(reason="send_failed").inc(count)
            log.warning("payload sink %s failed (%s); dropped %d events", self.cfg.url, exc, count)
            return
        self.metrics.events_sent.inc(count)


def request_rows(body: bytes) -> int:
    """Rows in a V1 (``instances``) or V2 (``inputs[0].shape[0]``) request body; 1 when unknown."""
    try:
        doc: Any = orjson.loads(body)
        if "instances" in doc:
            return max(1, len(doc["instances"]))
        return max(1, int(doc["inputs"][0]["shape"][0]))
    except (orjson.JSONDecodeError, TypeError, KeyError, IndexError, ValueError):
        return 1


def _is_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return bool(body.strip())


def batch_body(batch: list[_Pair], source: str, ctx: EventContext) -> tuple[bytes, int]:
    """The JSON array of structured events (request, response per pair) and how many it holds.

    Bodies are embedded as JSON ``data`` without re-encoding; a pair whose body is not JSON is left out.
    """
    parts: list[bytes] = []
    for pair in batch:
        if not (_is_json(pair.request) and _is_json(pair.response)):
            continue
        for ce_type, data in ((pair.request_type, pair.request), (pair.response_type, pair.response)):
            attrs = orjson.dumps({
                "specversion": "1.0", "id": pair.id, "type": ce_type, "source": source, "time": pair.time,
                "datacontenttype": "application/json", "inferenceservicename": ctx.inferenceservicename,
                "namespace": ctx.namespace, "component": ctx.component, "endpoint": ctx.endpoint})
            parts.append(attrs[:-1] + b',"data":' + data + b"}")
    return b"[" + b",".join(parts) + b"]", len(parts)
