"""A pure ASGI middleware for the model server: body limit (413), a request counter by status, and
capture of inference request/response bodies for the payload logger.

It is pure ASGI (no ``BaseHTTPMiddleware``) so it costs little per request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ctloop.serving.metrics import ServingMetrics
from ctloop.serving.payload import PayloadLogger

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


class ServingMiddleware:
    """Wraps the KServe FastAPI app."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ServingMetrics,
                 payload_logger: PayloadLogger | None = None) -> None:
        self.app = app
        self.max_body = max_body_bytes
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        inference = endpoint in ("v1_predict", "v2_infer") and scope["method"] == "POST"
        status = 500
        if not inference:
            async def send_counted(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_counted)
            finally:
                self._count(endpoint, status)
            return

        # inference: read the whole body under the limit (FastAPI would buffer it anyway), then replay it
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
        if not request_id:  # one id for the prediction ids (the model reads it) and the payload events
            request_id = uuid.uuid4().hex
            scope["headers"] = [*scope["headers"], (b"x-request-id", request_id.encode())]
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._reject(send, endpoint, f"more than {self.max_body}")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        logger = self.payload_logger
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
            logger.emit(request_id, body, b"".join(out_chunks))
