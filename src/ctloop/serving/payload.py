"""Payload logging: KServe-logger-format CloudEvents sent to a sink, asynchronously and in batches.

Each inference produces two binary-mode CloudEvents that share ``ce-id``: the request
(``org.kubeflow.serving.inference.request``) and the response (``...inference.response``), each with
the raw JSON body and KServe's extension attributes (``inferenceservicename``, ``namespace``,
``component``, ``endpoint``). :meth:`PayloadLogger.emit` only enqueues; a worker thread sends. A full
queue or a failing sink drops events (counted), never slows or fails a request.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from dataclasses import dataclass

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from ctloop.config import PayloadLoggerConfig
from ctloop.serving.metrics import ServingMetrics

log = logging.getLogger("ctloop.serving.payload")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


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

    def _take_batch(self) -> list[_Pair]:
        batch: list[_Pair] = []
        try:
            item = self._queue.get(timeout=self.cfg.flush_seconds)
        except queue.Empty:
            return batch
        while item is not None:
            batch.append(item)
            if len(batch) >= self.cfg.batch_size:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        with httpx.Client(timeout=self.cfg.timeout_seconds) as client:
            while True:
                batch = self._take_batch()
                if batch:
                    self._send(client, batch)
                elif self._stop.is_set() and self._queue.empty():
                    return

    def _send(self, client: httpx.Client, batch: list[_Pair]) -> None:
        assert self.cfg.url is not None
        for i, pair in enumerate(batch):
            events = build_events(pair.id, pair.request, pair.response, self.cfg.source, self.ctx)
            sent = 0
            try:
                for headers, body in events:
                    r = client.post(self.cfg.url, content=body, headers=headers)
                    if r.status_code >= 300:
                        raise httpx.HTTPStatusError(f"sink answered {r.status_code}", request=r.request,
                                                    response=r)
                    self.metrics.events_sent.inc()
                    sent += 1
            except httpx.HTTPError as exc:
                # a failing sink: drop the rest of this batch rather than retrying it into the ground
                lost = 2 * (len(batch) - i) - sent
                self.metrics.events_dropped.labels(reason="send_failed").inc(lost)
                log.warning("payload sink %s failed (%s); dropped %d events", self.cfg.url, exc, lost)
                return
