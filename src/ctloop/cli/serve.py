"""``ctloop serve``: the model server (KServe ModelServer on loopback by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")],
    port: Annotated[int | None, typer.Option(min=1, max=65535,
                                             help="HTTP port (default serving.port).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default serving.host).")] = None,
    model_dir: Annotated[str | None, typer.Option(
        "--model-dir",
        help="Serve this model folder or storage URI instead of following the champion.")] = None,
) -> None:
    """Serve the champion over KServe V1/V2, hot-swapping it when the registry's champion moves."""
    from ctloop.config import load_config
    from ctloop.serving.server import serve as run_server

    cfg = load_config(config)
    if host:
        cfg = cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"host": host})})
    run_server(cfg, port=port, model_dir=model_dir)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``ctloop`` app."""
    app.command("serve")(serve)
