"""The watcher's ASGI app (Starlette): ``POST /events``, ``GET /metrics``, ``GET /healthz``, ``GET /status``,
and ``POST /labels`` when a :class:`~ctloop.quality.monitor.QualityMonitor` is given.

Other features mount their routes on the same service through ``build_app(extra_routes=...)`` and read
the shared :class:`~ctloop.watcher.state.WatcherState` from ``request.app.state.watcher`` (champion
version, drifted features, drift share). ``status_extras`` adds sections to ``GET /status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ctloop.config import ProjectConfig
from ctloop.errors import EventError, StoreError
from ctloop.quality.monitor import QualityMonitor
from ctloop.watcher.events import parse_events
from ctloop.watcher.metrics import WatcherMetrics
from ctloop.watcher.state import WatcherState

log = logging.getLogger("ctloop.watcher")


class _TooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (``_TooLarge``) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    cfg: ProjectConfig,
    metrics_registry: CollectorRegistry,
    extra_routes: Sequence[BaseRoute] | None = None,
    state: WatcherState | None = None,
    status_extras: dict[str, Callable[[], Any]] | None = None,
    follow_champion: bool = True,
    quality: QualityMonitor | None = None,
) -> Starlette:
    """Build the watcher app.

    Args:
        cfg: The project config (``drift`` section used).
        metrics_registry: Where the metrics go (``GET /metrics`` serves this registry).
        extra_routes: More routes on the same service (e.g. the trigger controller's ``/alerts``).
        state: A prepared state (tests); built from ``cfg`` when omitted.
        status_extras: Named callables whose results are added to ``GET /status``.
        follow_champion: Poll the champion alias every ``drift.poll_seconds`` while running.
        quality: The prediction store and performance side; with it, responses' predictions are
            stored and ``POST /labels`` is served.
    """
    st = state or WatcherState(cfg, WatcherMetrics(metrics_registry, cfg.name), quality=quality)
    quality = st.quality
    id_column = cfg.data.id_column
    extras = dict(status_extras or {})
    limit = cfg.drift.max_body_bytes

    async def events(request: Request) -> Response:
        try:
            body = await read_limited(request, limit)
        except _TooLarge:
            st.count("oversize")
            return JSONResponse({"error": f"event body larger than drift.max_body_bytes ({limit} bytes)"},
                                status_code=413)
        mon = st.monitor
        if mon is None:
            st.count("no_reference")
            return JSONResponse({"accepted": 0, "dropped": 1, "reason": "no champion reference yet"},
                                status_code=202)
        ref = mon.reference
        try:
            extra = quality.slice_columns if quality is not None else ()
            parsed = parse_events(request.headers, body, st.derived.inputs(list(ref.numeric)), ref.categorical,
                                  extra, id_column)
            summary = st.ingest(parsed)
        except EventError as exc:
            st.count("malformed")
            return JSONResponse({"error": str(exc)}, status_code=400)
        except StoreError as exc:  # not acknowledged: the sender may retry
            log.error("prediction store write failed: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(summary, status_code=202)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "model": st.model, "version": st.version})

    async def status(_: Request) -> Response:
        doc = st.status()
        for name, fn in extras.items():
            doc[name] = fn()
        return JSONResponse(doc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(st.refresh)
        task = asyncio.create_task(_poll(st)) if follow_champion else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes: list[BaseRoute] = [
        Route("/events", events, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        *(extra_routes or []),
    ]
    if quality is not None:
        from ctloop.watcher.labels import label_routes

        routes += label_routes(quality, cfg.triggers.token_file, cfg.monitoring.labels.max_body_bytes)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.watcher = st
    app.state.metrics_registry = metrics_registry
    return app


async def _poll(st: WatcherState) -> None:
    while True:
        await asyncio.sleep(st.cfg.drift.poll_seconds)
        try:
            await asyncio.to_thread(st.refresh)
        except Exception:  # keep following; the failure is logged with its traceback
            log.exception("champion poll failed")
