"""``ctloop init``, ``ctloop datagen`` and ``ctloop config-reference``: start and describe a project."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.options import console
from ctloop.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the project commands to the ``ctloop`` app."""
    app.command("init")(init)
    app.command("datagen")(datagen)
    app.command("config-reference")(config_reference_cmd)


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
        console().print(f"wrote [bold]{p}[/]")
    console().print(f"next: ctloop datagen --out {directory}/data --days 30 && "
                     f"ctloop run --config {directory}/ctloop.yaml")


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
    console().print(f"wrote {len(files)} partitions ({len(files) * rows_per_day} rows) to [bold]{out}[/]")
    if schema_out:
        console().print(f"wrote the schema to [bold]{write_schema(schema_out, id_column)}[/]")


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
    console().print(f"wrote [bold]{out}[/]")
