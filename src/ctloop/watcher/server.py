"""Run the watcher under uvicorn."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig
from ctloop.watcher.app import build_app


def serve(cfg: ProjectConfig, host: str | None = None, port: int | None = None) -> None:
    """Serve the watcher until interrupted (host/port default to the ``drift`` section)."""
    import uvicorn

    app = build_app(cfg, CollectorRegistry())
    uvicorn.run(app, host=host or cfg.drift.host, port=port or cfg.drift.port, log_level="info",
                access_log=False)
