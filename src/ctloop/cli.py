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

import rich.markup
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ctloop import cli_serve
from ctloop.cli_live import live_display
from ctloop.cli_registry import registry_app
from ctloop.console import make_console
from ctloop.errors import ConfigError, CtloopError
from ctloop.run_summary import gate_line, run_result_json

app = typer.Typer(help="ctloop: continuous training for Kubeflow Pipelines.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
schema_app = typer.Typer(help="Work with the data schema.", no_args_is_help=True)
manifests_app = typer.Typer(help="Config-derived cluster files.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(schema_app, name="schema")
app.add_typer(manifests_app, name="manifests")
app.command("serve")(cli_serve.serve)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]


def _console(json_mode: bool = False) -> Console:
    return make_console(stderr=json_mode)


def _load(config: Path):  # type: ignore[no-untyped-def]
    from ctloop.config import load_config

    return load_config(config)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the example project.")],
    name: Annotated[str, typer.Option(help="Model name (a DNS label).")] = "churn",
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
    ci: Annotated[str | None, typer.Option(help="Also write a CI workflow running `ctloop check` (github).")] = None,
) -> None:
    """Write a working example project (ctloop.yaml + schema.yaml)."""
    from ctloop.project import init_project, write_ci

    written = init_project(directory, name=name, force=force)
    if ci:
        written.append(write_ci(directory, ci, force=force))
    for p in written:
        _console().print(f"wrote [bold]{p}[/]")
    _console().print(f"next: ctloop datagen --out {directory}/data --days 30 && "
                     f"ctloop run --config {directory}/ctloop.yaml")


@app.command()
def datagen(
    out: Annotated[str, typer.Option(
        help="Output folder or fsspec URI, e.g. s3://bucket/data (date=YYYY-MM-DD partitions).")],
    days: Annotated[int, typer.Option(min=1, help="Number of daily partitions.")] = 30,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="Stream seed.")] = 0,
    drift_from: Annotated[str | None, typer.Option(help="First drifted day, YYYY-MM-DD.")] = None,
    rows_per_day: Annotated[int, typer.Option(min=1, help="Rows per day.")] = 500,
    covariate: Annotated[float, typer.Option(help="Covariate shift strength.")] = 1.0,
    concept: Annotated[float, typer.Option(help="Concept drift strength.")] = 1.0,
    id_column: Annotated[str, typer.Option(help="Row id column (data.id_column).")] = "id",
    concept_drift_from: Annotated[str | None, typer.Option(
        help="First day of pure concept drift (P(label | inputs) changes, inputs do not), YYYY-MM-DD.")] = None,
    concept_shift: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="How far pure concept drift moves the label rule (1 = fully new rule).")] = 1.0,
    schema_out: Annotated[str | None, typer.Option(
        help="Also write the stream's schema here (path or fsspec URI), as `ctloop init` writes it.")] = None,
) -> None:
    """Generate a deterministic synthetic labelled stream (a unique id per row)."""
    from ctloop.datagen import DriftSpec, is_remote, write_schema, write_stream, write_stream_uri

    def day(value: str, opt: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"--{opt} {value!r}: expected YYYY-MM-DD") from exc

    drift = DriftSpec(
        day(drift_from, "drift-from") if drift_from else None, covariate, concept,
        concept_start=day(concept_drift_from, "concept-drift-from") if concept_drift_from else None,
        concept_shift=concept_shift,
    )
    args = (day(start, "start"), days, seed, rows_per_day, drift, id_column)
    files = write_stream_uri(out, *args) if is_remote(out) \
        else write_stream(Path(out.removeprefix("file://")), *args)
    _console().print(f"wrote {len(files)} partitions ({len(files) * rows_per_day} rows) to [bold]{out}[/]")
    if schema_out:
        _console().print(f"wrote the schema to [bold]{write_schema(schema_out, id_column)}[/]")


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
    force: Annotated[bool, typer.Option(help="Retrain even when data, config and code equal the champion's.")] = False,
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
    with live_display(_steps_table(states), console, refresh_per_second=8, transient=json_out) as live:

        def on_event(task: str, state: str) -> None:
            states[task] = state
            live.update(_steps_table(states))

        result = run_local(cfg, trigger=cause, cutoff_date=cutoff, on_event=on_event, force=force)
    console.print()
    if json_out:
        typer.echo(json.dumps(run_result_json(result), default=float))
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
    if result.reason:
        console.print(result.reason, markup=False, highlight=False)
    if result.decision:
        for c in result.decision.get("checks", []):
            mark = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
            console.print(f"  gate {mark} {c['name']}: {escape(str(c['reason']))}", highlight=False)
        console.print(gate_line(result.decision), markup=False, highlight=False)
    if result.champion is not None:
        console.print(f"champion: v{result.champion}", markup=False, highlight=False)
    if result.error:
        console.print(f"[red]error in step {result.error.get('step')}[/]: "
                      f"{rich.markup.escape(str(result.error.get('message')))}", highlight=False)
    found = result.reports.get(str((result.error or {}).get("step")), {})
    report = found.get("html") or found.get("json")
    if report and report not in str(result.error.get("message")):
        console.print(f"report: {report}", markup=False, highlight=False)


@app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("pipelines/training"),
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Take images, train-step scheduling and storage env from this config.")] = None,
) -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from pipelines.training import compile_for_config, compile_pipeline

    path = compile_for_config(_load(config), out / "pipeline.yaml") if config \
        else compile_pipeline(out / "pipeline.yaml")
    _console().print(f"compiled [bold]{path}[/]")


@schema_app.command("infer")
def schema_infer(
    data: Annotated[str, typer.Option(help="Data: partitioned parquet source URI, or one parquet file.")],
    out: Annotated[Path, typer.Option(help="Where to write schema.yaml.")],
    target: Annotated[str, typer.Option(help="Label column.")] = "label",
    window_days: Annotated[int, typer.Option(min=1, help="Newest N days of a partitioned source.")] = 3660,
    max_categories: Annotated[int, typer.Option(min=1, help="Largest categorical domain to list.")] = 50,
    force: Annotated[bool, typer.Option(help="Overwrite OUT if it exists.")] = False,
    id_column: Annotated[str, typer.Option(help="Row id column, marked dtype id (never a feature).")] = "id",
) -> None:
    """Infer a schema (dtypes, nullability, ranges, categorical domains) for a person to review and commit."""
    from ctloop.schema import dump_schema, infer_schema, read_sample

    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists (use --force to overwrite)")
    frame = read_sample(data, target, window_days)
    schema = infer_schema(frame, target, max_categories=max_categories, id_column=id_column)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump_schema(schema))
    t = Table(title=f"inferred schema ({len(frame)} rows)")
    for col in ("column", "dtype", "nullable", "range / domain"):
        t.add_column(col)
    for name, spec in schema.columns.items():
        dom = (", ".join(spec.categories) if spec.categories is not None
               else f"[{spec.min}, {spec.max}]" if spec.min is not None else "any")
        t.add_row(Text(name), spec.dtype, str(spec.nullable), Text(dom))
    _console().print(t)
    _console().print(f"wrote [bold]{out}[/]; review it (ranges, domains, nullability) before committing")


@manifests_app.command("render")
def manifests_render(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("manifests"),
) -> None:
    """Render every config-derived file (InferenceService, PrometheusRule, ...) under OUT."""
    from ctloop.render import render_all

    for p in render_all(_load(config), out):
        _console().print(f"wrote [bold]{p}[/]")


@app.command("config-reference")
def config_reference_cmd(
    out: Annotated[Path | None, typer.Option(help="Write here (e.g. docs/config.md); default: stdout.")] = None,
) -> None:
    """Print (or write) the configuration reference generated from the config models."""
    from ctloop.config_docs import config_reference

    text = config_reference()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    _console().print(f"wrote [bold]{out}[/]")


from ctloop.cli_triggers import register as _register_triggers  # noqa: E402
from ctloop.cli_watch import watch  # noqa: E402

app.command("watch")(watch)
from ctloop.cli_demo import demo  # noqa: E402

app.command("demo")(demo)
from ctloop.cli_check import check  # noqa: E402
from ctloop.cli_status import status  # noqa: E402

app.command("check")(check)

app.command("status")(status)
from ctloop.cli_labels import labels_app  # noqa: E402

app.add_typer(labels_app, name="labels")
from ctloop.cli_backtest import backtest as _backtest  # noqa: E402

app.command("backtest")(_backtest)

_register_triggers(app)


def main() -> None:
    """Entry point: run the app and map typed errors to exit codes (usage errors exit 2)."""
    try:
        app()
    except CtloopError as exc:
        sys.stdout.flush()  # whatever the command printed goes out before the error
        message = escape(str(exc).rstrip("\n"))
        make_console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {message}", highlight=False)  # ends in \n
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
