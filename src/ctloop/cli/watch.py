"""``ctloop watch``: run the drift watcher service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def watch(
    config: Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")],
    port: Annotated[int | None, typer.Option(help="Port (default: drift.port).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: drift.host).")] = None,
    triggers: Annotated[bool | None, typer.Option(
        "--triggers/--no-triggers",
        help="Serve POST /alerts and POST /trigger (default: when triggers.token_file exists).")] = None,
) -> None:
    """Watch live drift: POST /events (KServe payload logger), GET /metrics, /status, /healthz."""
    import logging

    from ctloop.config import load_config
    from ctloop.watcher.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(load_config(config), host=host, port=port, triggers=triggers)


def register(app: typer.Typer) -> None:
    """Add ``watch`` to the ``ctloop`` app."""
    app.command("watch")(watch)
