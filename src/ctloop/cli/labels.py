"""``ctloop labels push``: post delayed labels from a CSV/Parquet file to the watcher's ``POST /labels``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

labels_app = typer.Typer(help="Delayed labels: join ground truth to served predictions.", no_args_is_help=True)


@labels_app.command("push")
def push(
    config: Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")],
    file: Annotated[str, typer.Option("--file", help="Labels: .csv or .parquet (path or fsspec URI) with id and "
                                                    "label columns.")],
    id_column: Annotated[str | None, typer.Option(help="Id column (default: data.id_column).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column (default: data.target).")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Watcher base URL (default: triggers.endpoint).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Labels per POST.")] = 1000,
    json_out: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Post labels in batches; print how many were matched, unknown, duplicate, expired and invalid."""
    from ctloop.config import load_config
    from ctloop.quality.labels import push_labels, read_label_file
    from ctloop.triggers.service import read_token

    cfg = load_config(config)
    rows = read_label_file(file, id_column or cfg.data.id_column, label_column or cfg.data.target)
    token = read_token(cfg.triggers.token_file)
    counts = push_labels(rows, cfg.name, endpoint or cfg.triggers.endpoint, token, batch_size)
    if json_out:
        typer.echo(json.dumps({"model": cfg.name, "rows": len(rows), **counts}))
        return
    t = Table(title=f"labels for {cfg.name} ({len(rows)} rows from {file})")
    t.add_column("outcome")
    t.add_column("labels", justify="right")
    for k, v in counts.items():
        t.add_row(k, str(v))
    Console().print(t)


def register(app: typer.Typer) -> None:
    """Add the ``labels`` group to the ``ctloop`` app."""
    app.add_typer(labels_app, name="labels")
