"""The ``ctloop`` app: one typer app, one module per command group.

Exit codes: 0 ran (promoted or rejected by the gate), 1 unexpected failure, 2 usage or config error,
3 data rejected.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from ctloop.cli import (
    backtest,
    check,
    demo,
    labels,
    manifests,
    pipeline,
    project,
    registry,
    schema,
    serve,
    status,
    triggers,
    watch,
)
from ctloop.console import make_console
from ctloop.errors import CtloopError

app = typer.Typer(help="ctloop: continuous training for Kubeflow Pipelines.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)

# the order here is the order of `ctloop --help`
for _group in (project, schema, pipeline, registry, serve, watch, triggers, labels, status, check, backtest,
               demo, manifests):
    _group.register(app)


def main() -> None:
    """Entry point: run the app and map typed errors to exit codes (usage errors exit 2)."""
    try:
        app()
    except CtloopError as exc:
        sys.stdout.flush()  # whatever the command printed goes out before the error
        message = escape(str(exc).rstrip("\n"))
        make_console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {message}", highlight=False)  # ends in \n
        sys.exit(exc.exit_code)
