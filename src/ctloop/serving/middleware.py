"""A pure ASGI middleware for the model server: body limit (413) and body timeout (408) on every route,
a request counter by status, and capture of inference request/response bodies for the payload logger.

It is pure ASGI (no ``BaseHTTPMiddleware``) so it costs little per request.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ctloop.serving.metrics import ServingMetrics
from ctloop.serving.payload import EventEmitter, sanitize_event_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def endpoint_of(path: str) -> str:
    """A low-cardinality name for the path (the ``endpoint`` label)."""
    if path.startswith("/v1/models/"):
        return "v1_predict" if path.endswith(":predict") else "v1_other"
    if path.startswith("/v2/models/"):
        return "v2_infer" if path.endswith("/infer") else "v2_other"
    if path == "/metrics":
        return "metrics"
    return "other"


class _TooLarge(Exception):
    pass


class _Abort(Exception):
    """The body could not be read (too large, too slow, client gone); the response is already sent."""


class ServingMiddleware:
    """Wraps the KServe FastAPI app."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ServingMetrics,
                 payload_logger: EventEmitter | None = None, body_timeout_seconds: float = 30.0) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout_seconds
        self.metrics = metrics
        self.payload_logger = payload_logger
        self._counters: dict[tuple[str, int], Any] = {}

    def _count(self, endpoint: str, code: int) -> None:
        key = (endpoint, code)
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = self.metrics.requests.labels(endpoint=endpoint, code=str(code))
        c.inc()

    async def _reject(self, send: Send, endpoint: str, size: int | str) -> None:
        body = json.dumps({"error": f"body: request body of {size} bytes is over the limit of "
                                    f"{self.max_body} bytes (serving.max_body_bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        self._count(endpoint, 413)

    async def _send_error(self, send: Send, endpoint: str, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
        self._count(endpoint, status)

    async def _read_body(self, receive: Receive, send: Send, endpoint: str) -> bytes:
        """The whole body, under the size limit and within ``body_timeout`` seconds (else :class:`_Abort`)."""
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.body_timeout
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                await self._send_error(send, endpoint, 408, f"body: request body not received within "
                                       f"{self.body_timeout} s (serving.body_timeout_seconds)")
                raise _Abort from None
            if message["type"] == "http.disconnect":
                raise _Abort
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._reject(send, endpoint, f"more than {self.max_body}")
                raise _Abort
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        inference = endpoint in ("v1_predict", "v2_infer") and scope["method"] == "POST"
        status = 500
        # every route: refuse a declared oversize body unread, then read the body under the size and time
        # limits (FastAPI would buffer it anyway) and replay it to the app
        ce_id = x_id = ""
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > self.max_body:
                await self._reject(send, endpoint, int(v))
                return
            if k == b"x-request-id":
                x_id = v.decode("latin-1")
            elif k == b"ce-id":
                ce_id = v.decode("latin-1")
        request_id = ce_id or x_id
        original_id: str | None = None
        if inference:  # one safe id for the prediction ids (the model reads it) and the payload events
            safe, original_id = sanitize_event_id(request_id) if request_id else (uuid.uuid4().hex, None)
            if safe != request_id:
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in (b"ce-id", b"x-request-id")]
                scope["headers"].append((b"x-request-id", safe.encode()))
                request_id = safe
        try:
            body = await self._read_body(receive, send, endpoint)
        except _Abort:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        logger = self.payload_logger if inference else None
        out_chunks: list[bytes] = []

        async def send_captured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif logger is not None and message["type"] == "http.response.body":
                out_chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay, send_captured)
        finally:
            self._count(endpoint, status)
        if logger is not None and 200 <= status < 300:
            logger.emit(request_id, body, b"".join(out_chunks), original_id or "")
