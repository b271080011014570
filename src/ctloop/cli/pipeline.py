"""``ctloop run`` (the training pipeline under KFP's local runner) and ``ctloop compile`` (KFP IR YAML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctloop.cli.live import live_display
from ctloop.cli.options import ConfigOpt, JsonOpt, console, load
from ctloop.run_summary import gate_line, run_result_json


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``compile`` to the ``ctloop`` app."""
    app.command("run")(run)
    app.command("compile")(compile_cmd)


def _steps_table(states: dict[str, str]) -> Table:
    from ctloop.runner import STEPS

    icons = {"pending": "[dim]·[/] pending", "running": "[yellow]▶[/] running",
             "succeeded": "[green]✔[/] done", "failed": "[red]✘[/] failed", "skipped": "[dim]↷ skipped[/]"}
    t = Table(title="ctloop training pipeline (KFP local runner)", show_header=True)
    t.add_column("step")
    t.add_column("state")
    for s in STEPS:
        t.add_row(s, icons.get(states.get(s, "pending"), states.get(s, "")))
    return t


def run(
    config: ConfigOpt,
    trigger: Annotated[str, typer.Option(help="Trigger cause: manual, schedule, volume, drift.")] = "manual",
    reason: Annotated[str, typer.Option(help="Free-text reason recorded in the lineage.")] = "",
    cutoff: Annotated[str, typer.Option(help="Last day of the training window (default: newest).")] = "",
    force: Annotated[bool, typer.Option(help="Retrain even when data, config and code equal the champion's.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run the training pipeline under KFP's local runner."""
    from ctloop.runner import run_local

    cfg = load(config)
    out = console(json_out)
    states: dict[str, str] = {}
    cause: dict[str, Any] = {"cause": trigger}
    if reason:
        cause["reason"] = reason
    with live_display(_steps_table(states), out, refresh_per_second=8, transient=json_out) as live:

        def on_event(task: str, state: str) -> None:
            states[task] = state
            live.update(_steps_table(states))

        result = run_local(cfg, trigger=cause, cutoff_date=cutoff, on_event=on_event, force=force)
    out.print()
    if json_out:
        typer.echo(json.dumps(run_result_json(result), default=float))
    else:
        _print_result(out, result)
    raise typer.Exit(result.exit_code)


def _print_result(out: Console, result: Any) -> None:
    t = Table(title=f"run {result.run_id}")
    t.add_column("field")
    t.add_column("value")
    t.add_row("status", result.status)
    t.add_row("promoted", str(result.promoted))
    t.add_row("version", str(result.version) if result.version is not None else "-")
    for k, v in result.metrics.items():
        t.add_row(k, f"{v:.4f}")
    t.add_row("wall time", f"{result.wall_seconds:.1f} s")
    t.add_row("log", result.log_path)
    out.print(t)
    if result.reason:
        out.print(result.reason, markup=False, highlight=False)
    if result.decision:
        for c in result.decision.get("checks", []):
            mark = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
            out.print(f"  gate {mark} {c['name']}: {escape(str(c['reason']))}", highlight=False)
        out.print(gate_line(result.decision), markup=False, highlight=False)
    if result.champion is not None:
        out.print(f"champion: v{result.champion}", markup=False, highlight=False)
    if result.error:
        out.print(f"[red]error in step {result.error.get('step')}[/]: "
                  f"{escape(str(result.error.get('message')))}", highlight=False)
    found = result.reports.get(str((result.error or {}).get("step")), {})
    report = found.get("html") or found.get("json")
    if report and report not in str(result.error.get("message")):
        out.print(f"report: {report}", markup=False, highlight=False)


def compile_cmd(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("pipelines/training"),
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Take images, train-step scheduling and storage env from this config.")] = None,
) -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from pipelines.training import compile_for_config, compile_pipeline

    path = compile_for_config(load(config), out / "pipeline.yaml") if config \
        else compile_pipeline(out / "pipeline.yaml")
    console().print(f"compiled [bold]{path}[/]")
