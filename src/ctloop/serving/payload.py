"""Payload logging: KServe-logger-format CloudEvents sent to a sink, asynchronously and in batches.

Each inference produces two CloudEvents that share an id: the request
(``org.kubeflow.serving.inference.request``) and the response (``...inference.response``), each with
the JSON body and KServe's extension attributes (``inferenceservicename``, ``namespace``,
``component``, ``endpoint``). :meth:`PayloadLogger.emit` only enqueues; a worker thread collects up to
``serving.logger.batch_size`` rows or ``flush_seconds`` (whichever comes first) and sends them in one
POST in CloudEvents batched content mode (``application/cloudevents-batch+json``, a JSON array of
structured events). A full queue or a failing sink drops events (counted), never slows or fails a
request. :func:`build_events` gives the binary-mode form of one pair (KServe's own logger's form).
Request ids are sanitised (:func:`sanitize_event_id`), and every failure in the sender is caught, counted
and logged: the sender thread keeps running whatever an event holds. With ``drift.events_token_file``
set, each POST carries ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

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


class EventEmitter(Protocol):
    """What the middleware needs of a payload logger: :class:`PayloadLogger` or the process sender."""

    def emit(self, event_id: str, request: bytes, response: bytes, original_id: str | None = None) -> None:
        """Hand one request/response pair over; never blocks."""

    def stop(self, timeout: float = 5.0) -> None:
        """Flush and stop."""


def stamp(event_id: str, original_id: str | None) -> tuple[str, str | None, str]:
    """The safe id, the original id and the event time of a pair emitted now (see :meth:`PayloadLogger.emit`)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    if original_id is not None:
        return event_id, original_id, now
    safe_id, original = sanitize_event_id(event_id)
    return safe_id, original, now


def make_pair(event_id: str, time: str, original_id: str | None, request: bytes, response: bytes) -> _Pair:
    """An inference pair as the sender batches it."""
    return _Pair(event_id, request, response, REQUEST_TYPE, RESPONSE_TYPE, time, original_id)


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

    def emit(self, event_id: str, request: bytes, response: bytes, original_id: str | None = None) -> None:
        """Enqueue one request/response pair; never blocks (a full queue drops and counts).

        ``event_id`` is sanitised here unless ``original_id`` says it already was (the middleware does so
        that prediction ids and events share one safe request id)."""
        safe_id, original, now = stamp(event_id, original_id)
        try:
            self._queue.put_nowait(_Pair(safe_id, request, response, REQUEST_TYPE, RESPONSE_TYPE, now, original))
        except queue.Full:
            self.metrics.events_dropped.labels(reason="queue_full").inc(2)

    def put(self, pair: _Pair) -> None:
        """Enqueue a pair, waiting while the queue is full (the process sender's pipe reader: the pipe
        then fills and the server drops, counted, instead)."""
        self._queue.put(pair)

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
                batch: list[tuple[_Pair, int]] = []
                try:
                    batch = self._take_batch()
                    if batch:
                        self._send(client, [p for p, _ in batch])
                    elif self._stop.is_set() and self._queue.empty():
                        return
                except Exception:  # the sender never dies: count, log and go on with the next batch
                    self.metrics.events_dropped.labels(reason="error").inc(2 * len(batch))
                    log.exception("payload logger: unexpected failure; dropped %d events", 2 * len(batch))

    def _send(self, client: httpx.Client, batch: list[_Pair]) -> None:
        """POST the batch as one CloudEvents batch; a failure drops it (counted), never retries."""
        assert self.cfg.url is not None
        parts: list[bytes] = []
        for pair in batch:
            try:
                events = pair_events(pair, self.cfg.source, self.ctx)
            except Exception as exc:  # one bad pair drops only itself
                self.metrics.events_dropped.labels(reason="error").inc(2)
                log.error("payload logger: cannot build events for id %r (%s: %s); dropped 2 events",
                          pair.id, type(exc).__name__, exc)
                continue
            if events is None:
                self.metrics.events_dropped.labels(reason="not_json").inc(2)
                continue
            parts.extend(events)
        count = len(parts)
        if not count:
            return
        body = b"[" + b",".join(parts) + b"]"
        try:
            self.metrics.payload_posts.inc()
            r = client.post(self.cfg.url, content=body, headers={"content-type": BATCH_CONTENT_TYPE, **self._auth})
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
        parts.extend(pair_events(pair, source, ctx) or [])
    return b"[" + b",".join(parts) + b"]", len(parts)


def pair_events(pair: _Pair, source: str, ctx: EventContext) -> list[bytes] | None:
    """The request and response of one pair as structured events (``None`` when a body is not JSON)."""
    if not (_is_json(pair.request) and _is_json(pair.response)):
        return None
    out = []
    for ce_type, data in ((pair.request_type, pair.request), (pair.response_type, pair.response)):
        attrs: dict[str, Any] = {
            "specversion": "1.0", "id": pair.id, "type": ce_type, "source": source, "time": pair.time,
            "datacontenttype": "application/json", "inferenceservicename": ctx.inferenceservicename,
            "namespace": ctx.namespace, "component": ctx.component, "endpoint": ctx.endpoint}
        if pair.original_id is not None:
            attrs[ORIGINAL_ID_ATTRIBUTE] = pair.original_id
        out.append(orjson.dumps(attrs)[:-1] + b',"data":' + data + b"}")
    return out
