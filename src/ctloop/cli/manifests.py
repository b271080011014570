"""``ctloop manifests ...``: render the config-derived cluster files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.options import ConfigOpt, console, load

manifests_app = typer.Typer(help="Config-derived cluster files.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``manifests`` group to the ``ctloop`` app."""
    app.add_typer(manifests_app, name="manifests")


@manifests_app.command("render")
def manifests_render(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("manifests"),
) -> None:
    """Render every config-derived file (InferenceService, PrometheusRule, ...) under OUT."""
    from ctloop.render import render_all

    for p in render_all(load(config), out):
        console().print(f"wrote [bold]{p}[/]")
