"""The ``ctloop`` command line (typer + rich).

Exit codes: 0 ran (promoted or rejected by the gate), 1 unexpected failure, 2 usage or config error,
3 data rejected.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ctloop.errors import ConfigError, CtloopError

app = typer.Typer(help="ctloop: continuous training for Kubeflow Pipelines.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
registry_app = typer.Typer(help="Inspect the model registry.", no_args_is_help=True)
schema_app = typer.Typer(help="Work with the data schema.", no_args_is_help=True)
manifests_app = typer.Typer(help="Config-derived cluster files.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(schema_app, name="schema")
app.add_typer(manifests_app, name="manifests")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]


def _console(json_mode: bool = False) -> Console:
    return Console(file=sys.stderr if json_mode else sys.stdout)


def _load(config: Path):  # type: ignore[no-untyped-def]
    from ctloop.config import load_config

    return load_config(config)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the example project.")],
    name: Annotated[str, typer.Option(help="Model name (a DNS label).")] = "churn",
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write a working example project (ctloop.yaml + schema.yaml)."""
    from ctloop.project import init_project

    for p in init_project(directory, name=name, force=force):
        _console().print(f"wrote [bold]{p}[/]")
    _console().print(f"next: ctloop datagen --out {directory}/data --days 30 && "
                     f"ctloop run --config {directory}/ctloop.yaml")


@app.command()
def datagen(
    out: Annotated[Path, typer.Option(help="Output folder (date=YYYY-MM-DD partitions).")],
    days: Annotated[int, typer.Option(min=1, help="Number of daily partitions.")] = 30,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="Stream seed.")] = 0,
    drift_from: Annotated[str | None, typer.Option(help="First drifted day, YYYY-MM-DD.")] = None,
    rows_per_day: Annotated[int, typer.Option(min=1, help="Rows per day.")] = 500,
    covariate: Annotated[float, typer.Option(help="Covariate shift strength.")] = 1.0,
    concept: Annotated[float, typer.Option(help="Concept drift strength.")] = 1.0,
) -> None:
    """Generate a deterministic synthetic labelled stream."""
    from ctloop.datagen import DriftSpec, write_stream

    def day(value: str, opt: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"--{opt} {value!r}: expected YYYY-MM-DD") from exc

    drift = DriftSpec(day(drift_from, "drift-from") if drift_from else None, covariate, concept)
    files = write_stream(out, day(start, "start"), days, seed, rows_per_day, drift)
    _console().print(f"wrote {len(files)} partitions ({len(files) * rows_per_day} rows) to [bold]{out}[/]")


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


@app.command()
def run(
    config: ConfigOpt,
    trigger: Annotated[str, typer.Option(help="Trigger cause: manual, schedule, volume, drift.")] = "manual",
    reason: Annotated[str, typer.Option(help="Free-text reason recorded in the lineage.")] = "",
    cutoff: Annotated[str, typer.Option(help="Last day of the training window (default: newest).")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Run the training pipeline under KFP's local runner."""
    from ctloop.runner import run_local

    cfg = _load(config)
    console = _console(json_out)
    states: dict[str, str] = {}
    cause: dict[str, Any] = {"cause": trigger}
    if reason:
        cause["reason"] = reason
    with Live(_steps_table(states), console=console, refresh_per_second=8, transient=json_out) as live:

        def on_event(task: str, state: str) -> None:
            states[task] = state
            live.update(_steps_table(states))

        result = run_local(cfg, trigger=cause, cutoff_date=cutoff, on_event=on_event)
    console.print()
    if json_out:
        typer.echo(json.dumps({"run_id": result.run_id, "status": result.status, "promoted": result.promoted,
                               "version": result.version, "metrics": result.metrics,
                               "error": result.error}, default=float))
    else:
        _print_result(console, result)
    raise typer.Exit(result.exit_code)


def _print_result(console: Console, result: Any) -> None:
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
    console.print(t)
    if result.decision:
        for c in result.decision.get("checks", []):
            mark = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
            console.print(f"  gate {mark} {c['name']}: {c['reason']}")
    if result.error:
        console.print(f"[red]error in step {result.error.get('step')}[/]: {escape(str(result.error.get('message')))}")


@app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("pipelines/training"),
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Take images from this config.")] = None,
) -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from components import DEFAULT_IMAGE
    from pipelines.training import compile_pipeline

    cfg = _load(config) if config else None
    image = cfg.kfp.images.runtime if cfg else DEFAULT_IMAGE
    path = compile_pipeline(out / "pipeline.yaml", image=image, training=cfg.training if cfg else None,
                            train_image=cfg.kfp.images.trainer_gpu if cfg else None)
    _console().print(f"compiled [bold]{path}[/]")


def _registry(config: Path):  # type: ignore[no-untyped-def]
    from ctloop.registry import Registry

    cfg = _load(config)
    return Registry(cfg.registry.uri, cfg.name)


@registry_app.command("list")
def registry_list(config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """List registered versions."""
    reg = _registry(config)
    champion, previous = reg.alias("champion"), reg.alias("previous")
    rows = []
    for v in reg.versions():
        m = reg.get(v).metadata
        aliases = [a for a, x in (("champion", champion), ("previous", previous)) if x == v]
        rows.append({"version": v, "aliases": aliases, "registered_at": m.get("registered_at"),
                     "run_id": m.get("run_id"), "trigger": m.get("trigger", {}).get("cause"),
                     "metrics": m.get("metrics", {})})
    if json_out:
        typer.echo(json.dumps(rows, default=float))
        return
    t = Table(title=f"registry {reg.uri} / {reg.name}")
    for col in ("version", "aliases", "registered", "trigger", "roc_auc", "accuracy", "run"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["version"]), ",".join(r["aliases"]), str(r["registered_at"]), str(r["trigger"]),
                  f"{r['metrics'].get('roc_auc', float('nan')):.4f}",
                  f"{r['metrics'].get('accuracy', float('nan')):.4f}", str(r["run_id"]))
    _console().print(t)


@registry_app.command("show")
def registry_show(
    ref: Annotated[str, typer.Argument(help="Version number or alias (champion, previous).")],
    config: ConfigOpt,
    json_out: JsonOpt = False,
) -> None:
    """Show one version's metadata."""
    reg = _registry(config)
    mv = reg.get(ref)
    doc = {"version": mv.version, "model_uri": mv.model_uri, **mv.metadata}
    if json_out:
        typer.echo(json.dumps(doc, default=float))
        return
    _console().print_json(json.dumps(doc, default=float))


@registry_app.command("champion")
def registry_champion(config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """Show the champion version."""
    registry_show("champion", config, json_out)


@schema_app.command("infer")
def schema_infer(
    data: Annotated[str, typer.Option(help="Data source URI (partitioned parquet).")],
    out: Annotated[Path, typer.Option(help="Where to write schema.yaml.")],
    target: Annotated[str, typer.Option(help="Label column.")] = "label",
    window_days: Annotated[int, typer.Option(min=1)] = 3660,
) -> None:
    """Infer a schema from data for a person to review and commit."""
    from ctloop.data import read_window
    from ctloop.schema import dump_schema, infer_schema

    snap = read_window(data, window_days, allow_missing_days=True, target=target)
    out.write_text(dump_schema(infer_schema(snap.frame, target)))
    _console().print(f"wrote [bold]{out}[/] from {len(snap.frame)} rows; review it before committing")


@manifests_app.command("render")
def manifests_render(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("manifests"),
) -> None:
    """Render every config-derived file (InferenceService, PrometheusRule, ...) under OUT."""
    from ctloop.render import render_all

    for p in render_all(_load(config), out):
        _console().print(f"wrote [bold]{p}[/]")


from ctloop.cli_triggers import register as _register_triggers  # noqa: E402

_register_triggers(app)


def main() -> None:
    """Entry point: run the app and map typed errors to exit codes (usage errors exit 2)."""
    try:
        app()
    except CtloopError as exc:
        Console(file=sys.stderr).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
