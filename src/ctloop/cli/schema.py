"""``ctloop schema ...``: infer a data schema for a person to review and commit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ctloop.cli.options import console
from ctloop.errors import ConfigError

schema_app = typer.Typer(help="Work with the data schema.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``schema`` group to the ``ctloop`` app."""
    app.add_typer(schema_app, name="schema")


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
    console().print(t)
    console().print(f"wrote [bold]{out}[/]; review it (ranges, domains, nullability) before committing")
