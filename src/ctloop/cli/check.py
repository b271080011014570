"""``ctloop check``: the checks a pull request to a ctloop project should pass (exit 1 naming each failure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ctloop.cli.options import ConfigOpt, JsonOpt
from ctloop.console import make_console


def check(
    config: ConfigOpt,
    pipeline: Annotated[Path | None, typer.Option(help="Committed compiled pipeline (default: pipeline.yaml "
                                                  "beside the config, checked when present).")] = None,
    manifests: Annotated[Path | None, typer.Option(help="Committed manifests (default: manifests/ beside the "
                                                   "config, checked when present).")] = None,
    sample_rows: Annotated[int, typer.Option(min=50, help="Rows of the smoke run's sample.")] = 2000,
    smoke: Annotated[bool, typer.Option(help="Run the pipeline on a sample into a throwaway registry.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Check a project for CI: config and schema, compiled pipeline, manifests, newest data, smoke run."""
    from ctloop.check import run_checks

    rep = run_checks(config, pipeline, manifests, sample_rows, smoke)
    if json_out:
        typer.echo(json.dumps(rep.to_dict(), sort_keys=True))
    else:
        out = make_console(highlight=False)
        marks = {"passed": "[green]pass[/]", "failed": "[red]FAIL[/]", "skipped": "[dim]skip[/]"}
        for c in rep.checks:
            out.print(f"check {marks[c.status]} {c.name}: {escape(c.detail)}")
        failed = [c.name for c in rep.checks if c.status == "failed"]
        out.print(f"check: {'passed' if rep.passed else 'FAILED (' + ', '.join(failed) + ')'}")
    raise typer.Exit(0 if rep.passed else 1)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``ctloop`` app."""
    app.command("check")(check)
