"""Payload logging: KServe-logger-format CloudEvents sent to a sink, asynchronously and in batches.

Each inference produces two binary-mode CloudEvents that share ``ce-id``: the request
(``org.kubeflow.serving.inference.request``) and the response (``...inference.response``), each with
the raw JSON body and KServe's extension attributes (``inferenceservicename``, ``namespace``,
``component``, ``endpoint``). :meth:`PayloadLogger.emit` only enqueues; a worker thread sends. A full
queue or a failing sink drops events (counted), never slows or fails a request. Request ids are
sanitised (:func:`sanitize_event_id`), and every failure in the sender is caught, counted and logged: the
sender thread keeps running whatever an event holds. With ``drift.events_token_file`` set, each POST
carries ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import queue
import re
import threading
import uuid
from dataclasses import dataclass

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from ctloop.config import PayloadLoggerConfig
from ctloop.serving.metrics import ServingMetrics

log = logging.getLogger("ctloop.serving.payload")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
MAX_ID_CHARS = 128
ORIGINAL_ID_ATTRIBUTE = "ctloopreqidb64"  # CloudEvents extension names: a-z0-9, at most 20 characters
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]+$")
_MAX_ORIGINAL_BYTES = 512


def sanitize_event_id(raw: str) -> tuple[str, str | None]:
    """A header-safe event id for ``raw`` (an ``X-Request-ID``) and the original, base64url-encoded.

    An id of at most :data:`MAX_ID_CHARS` printable ASCII characters (letters, digits, ``._:@/+=-``) is
    kept as it is (original ``None``); anything else is replaced by a random id and the original (its
    first 512 bytes, latin-1 as read off the wire) is returned base64url-encoded for an extension attribute.
    """
    if raw and len(raw) <= MAX_ID_CHARS and _SAFE_ID.match(raw):
        return raw, None
    data = raw.encode("latin-1", errors="replace")[:_MAX_ORIGINAL_BYTES] if raw else b""
    return uuid.uuid4().hex, base64.urlsafe_b64encode(data).decode("ascii") if raw else None


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
    original_id: str | None = None


def build_events(event_id: str, request: bytes, response: bytes, source: str, ctx: EventContext,
                 request_content_type: str = "application/json",
                 response_content_type: str = "application/json",
                 original_id: str | None = None) -> list[tuple[dict[str, str], bytes]]:
    """The (headers, body) of the request and response events for one inference (binary mode)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    out = []
    for ce_type, body, ctype in ((REQUEST_TYPE, request, request_content_type),
                                 (RESPONSE_TYPE, response, response_content_type)):
        attrs = {
            "id": event_id, "type": ce_type, "source": source, "time": now, "datacontenttype": ctype,
            "inferenceservicename": ctx.inferenceservicename, "namespace": ctx.namespace,
            "component": ctx.component, "endpoint": ctx.endpoint,
        }
        if original_id is not None:
            attrs[ORIGINAL_ID_ATTRIBUTE] = original_id
        event = CloudEvent(attrs, body)
        headers, data = to_binary(event, data_marshaller=lambda b: b)
        out.append((headers, data if isinstance(data, bytes) else str(data).encode()))
    return out


class PayloadLogger:
    """Queues inference pairs and sends them as CloudEvents from a background thread."""

    def __init__(self, cfg: PayloadLoggerConfig, ctx: EventContext, metrics: ServingMetrics,
                 token: str | None = None) -> None:
        if not cfg.url:
            raise ValueError("serving.logger.url is not set; payload logging needs a sink URL")
        self.cfg = cfg
        self.ctx = ctx
        self.metrics = metrics
        self._auth = {"authorization": f"Bearer {token}"} if token else {}
        self._queue: queue.Queue[_Pair | None] = queue.Queue(maxsize=cfg.queue_size)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def emit(self, event_id: str, request: bytes, response: bytes) -> None:
        """Enqueue one request/response pair; never blocks (a full queue drops and counts)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        safe_id, original = sanitize_event_id(event_id)
        try:
            self._queue.put_nowait(_Pair(safe_id, request, response, REQUEST_TYPE, RESPONSE_TYPE, now, original))
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
                batch: list[_Pair] = []
                try:
                    batch = self._take_batch()
                    if batch:
                        self._send(client, batch)
                    elif self._stop.is_set() and self._queue.empty():
                        return
                except Exception:  # the sender never dies: count, log and go on with the next batch
                    self.metrics.events_dropped.labels(reason="error").inc(2 * len(batch))
                    log.exception("payload logger: unexpected failure; dropped %d events", 2 * len(batch))

    def _send(self, client: httpx.Client, batch: list[_Pair]) -> None:
        assert self.cfg.url is not None
        for i, pair in enumerate(batch):
            try:
                events = build_events(pair.id, pair.request, pair.response, self.cfg.source, self.ctx,
                                      original_id=pair.original_id)
            except Exception as exc:  # one bad pair drops only itself
                self.metrics.events_dropped.labels(reason="error").inc(2)
                log.error("payload logger: cannot build events for id %r (%s: %s); dropped 2 events",
                          pair.id, type(exc).__name__, exc)
                continue
            sent = 0
            try:
                for headers, body in events:
                    r = client.post(self.cfg.url, content=body, headers={**headers, **self._auth})
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
            except Exception as exc:  # e.g. a header the HTTP client cannot encode: drop this pair only
                self.metrics.events_dropped.labels(reason="error").inc(2 - sent)
                log.error("payload logger: sending id %r failed (%s: %s); dropped %d events", pair.id,
                          type(exc).__name__, exc, 2 - sent)
