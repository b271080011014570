"""Run the watcher under uvicorn, with the trigger controller's routes on the same service."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig
from ctloop.watcher.app import build_app

log = logging.getLogger("ctloop.watcher")


def build_service(cfg: ProjectConfig, metrics_registry: CollectorRegistry,
                  triggers: bool | None = None) -> tuple[Any, Any]:
    """Build the watcher app (with the prediction store and ``POST /labels``) and, when enabled, the
    trigger service mounted on it.

    Args:
        cfg: The project config.
        metrics_registry: One registry for drift and trigger metrics (the embedded evaluator reads it).
        triggers: Mount ``POST /alerts`` and ``POST /trigger``: ``True`` requires the token file,
            ``None`` mounts them when ``triggers.token_file`` exists, ``False`` leaves them off.

    Returns:
        ``(app, trigger_service_or_None)``; the caller starts and stops the trigger service.
    """
    from ctloop.quality.monitor import QualityMonitor, open_store

    quality = QualityMonitor(cfg, open_store(cfg), metrics_registry)
    svc = None
    if triggers is None:
        triggers = Path(cfg.triggers.token_file).is_file()
        if not triggers:
            log.warning("trigger endpoints off: token file %s not found (triggers.token_file)",
                        cfg.triggers.token_file)
    if triggers:
        from ctloop.triggers.api import routes
        from ctloop.triggers.service import TriggerService

        svc = TriggerService.create(cfg, registry=metrics_registry, drift_registry=metrics_registry,
                                    performance=quality.snapshot)
        app = build_app(cfg, metrics_registry, extra_routes=routes(svc), status_extras={"triggers": svc.public_status},
                        quality=quality)
    else:
        app = build_app(cfg, metrics_registry, quality=quality)
    return app, svc


def serve(cfg: ProjectConfig, host: str | None = None, port: int | None = None,
          triggers: bool | None = None) -> None:
    """Serve the watcher (and trigger routes) until interrupted; host/port default to ``drift``."""
    import uvicorn

    app, svc = build_service(cfg, CollectorRegistry(), triggers)
    if svc is not None:
        svc.start()
    # uvicorn shuts down on SIGTERM and then re-raises it; with the default disposition that would end
    # the process before the trigger service (and its worker processes) is stopped below
    previous = _exit_on_sigterm()
    try:
        uvicorn.run(app, host=host or cfg.drift.host, port=port or cfg.drift.port, log_level="info",
                    access_log=False)
    finally:
        try:
            if svc is not None:
                svc.stop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _exit_on_sigterm() -> Any:
    """Make SIGTERM raise ``SystemExit`` (so ``finally`` blocks run); returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_exit)
