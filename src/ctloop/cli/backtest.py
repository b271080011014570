"""``ctloop backtest``: replay a labelled stream under each retraining policy and compare them."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ctloop.errors import BacktestError


def _day(value: str, opt: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise BacktestError(f"--{opt} {value!r}: expected YYYY-MM-DD") from exc


def _table(doc: dict[str, Any]) -> Table:
    from ctloop.backtest.report import COLUMNS, _fmt

    rec = (doc.get("recommendation") or {}).get("policy")
    t = Table(title=f"backtest {doc['start']} → {doc['end']} (label delay {doc['label_delay_days']} d)")
    for _, title in COLUMNS:
        t.add_column(title, justify="left" if title == "policy" else "right")
    for s in doc["summary"]:
        cells = [_fmt(s[k]) for k, _ in COLUMNS]
        if s["policy"] == rec:
            cells[0] = f"[bold green]{cells[0]} ★[/]"
        t.add_row(*cells)
    return t


def backtest(
    config: Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")],
    stream: Annotated[str, typer.Option(help="Labelled stream (date=YYYY-MM-DD partitions), path or fsspec URI.")],
    start: Annotated[str, typer.Option(help="First replayed day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last replayed day, YYYY-MM-DD.")],
    policy: Annotated[list[str], typer.Option(
        help="Policy SPEC (repeatable): never | schedule:Nd | volume:N | drift | performance | estimated, "
             "optionally :key=value[,key=value] config overrides, e.g. drift:drift.psi_threshold=0.1.")],
    out: Annotated[Path | None, typer.Option(help="Write backtest.json and backtest.html here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print backtest.json to stdout only.")] = False,
    jobs: Annotated[int, typer.Option(min=1, max=64, help="Policies replayed in parallel (processes).")] = 1,
    label_delay_days: Annotated[int, typer.Option(min=0, max=365, help="Days until a row's label is known.")] = 0,
    gpu_hour_cost: Annotated[float, typer.Option(min=0.0, help="Price of one GPU-hour.")] = 0.0,
    champion: Annotated[int | None, typer.Option(
        help="Start from this registry version (default: train on the days before --start).")] = None,
    tolerance: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Accuracy tolerance of the recommendation (absolute).")] = 0.005,
) -> None:
    """Replay the stream day by day under each policy; print quality and cost, recommend a policy."""
    from ctloop.backtest.report import render_html
    from ctloop.backtest.results import build_results
    from ctloop.backtest.run import BacktestRequest, check_request, run_backtest
    from ctloop.config import load_config

    cfg = load_config(config)
    req = BacktestRequest(stream, _day(start, "start"), _day(end, "end"), tuple(policy), label_delay_days,
                          gpu_hour_cost, champion, jobs, tolerance)
    check_request(cfg, req)  # a bad spec, range or stream exits 2 before any work
    console = Console(file=sys.stderr if json_out else sys.stdout)
    n_days = (req.end - req.start).days + 1
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task("simulated days (all policies)", total=n_days * max(len(req.policies), 1))

        def tick(name: str, i: int) -> None:
            prog.update(task, advance=1, description=f"{name}: day {i}/{n_days}")

        raw = run_backtest(cfg, req, tick)
    meta = {"model": cfg.name, "stream": stream, "start": req.start.isoformat(), "end": req.end.isoformat(),
            "label_delay_days": label_delay_days, "policies": list(req.policies)}
    doc = build_results(cfg, raw, meta, gpu_hour_cost, tolerance)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "backtest.json").write_text(json.dumps(doc, indent=2))
        (out / "backtest.html").write_text(render_html(doc))
    if json_out:
        typer.echo(json.dumps(doc))
        return
    console.print(_table(doc))
    rec = doc["recommendation"]
    if rec:
        console.print(f"recommended: [bold]{rec['policy']}[/] ({rec['why']})")
    if out is not None:
        console.print(f"wrote [bold]{out / 'backtest.json'}[/] and [bold]{out / 'backtest.html'}[/]")


def register(app: typer.Typer) -> None:
    """Add ``backtest`` to the ``ctloop`` app."""
    app.command("backtest")(backtest)
