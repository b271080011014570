"""The watcher service with the trigger controller mounted: one ASGI app, one metrics registry.

This is how the two features run together (in the demo, and as the watcher Deployment on a cluster):
``POST /events`` feeds the drift monitor, ``GET /metrics`` exposes drift and trigger metrics for
Prometheus, ``POST /alerts`` / ``POST /trigger`` go through the trigger policy, and — without
Prometheus — the embedded evaluator reads ``ctloop_drift_share`` from the same registry. The trigger
service's background loop runs for the app's lifetime.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool

from ctloop.config import ProjectConfig


def watcher_with_triggers(cfg: ProjectConfig, metrics: CollectorRegistry,
                          tick_seconds: float = 1.0) -> tuple[Starlette, Any]:
    """Build the watcher app with the trigger routes; return ``(app, trigger_service)``.

    Args:
        cfg: The project config.
        metrics: The registry behind ``GET /metrics`` (drift and trigger metrics alike).
        tick_seconds: How often the trigger loop runs (schedule, volume, embedded evaluator, outcomes).

    Raises:
        ConfigError: The trigger token file is missing or empty.
    """
    from ctloop.triggers.api import routes
    from ctloop.triggers.service import TriggerService
    from ctloop.watcher.app import build_app

    svc = TriggerService.create(cfg, registry=metrics, drift_registry=metrics)
    svc.tick_seconds = tick_seconds
    app = build_app(cfg, metrics, extra_routes=routes(svc), status_extras={"triggers": lambda: svc.status(20)})
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(svc.start)
        try:
            async with inner(a):
                yield
        finally:
            await run_in_threadpool(svc.stop)

    app.router.lifespan_context = lifespan
    return app, svc
