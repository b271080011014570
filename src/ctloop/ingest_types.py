"""Type-safe ingest: each partition file's column types are checked against the schema on read.

A numeric column written as text in some days (``age = "n/a"``) is among the most common upstream
feed breakages. Found here, per file and before the window is combined, it becomes a data rejection
that names the partition, the column, the expected and found types and a sample value, instead of a
conversion crash further down.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ctloop.errors import PartitionTypeError
from ctloop.schema import Schema

INGEST_REPORT_FORMAT = "ctloop-ingest-report/v1"
MAX_LISTED = 20  # mismatches listed in the error message (the report holds them all)
EXPECTED = {"numeric": "numbers", "integer": "numbers", "binary": "0/1 numbers", "categorical": "strings"}


@dataclass(frozen=True)
class TypeMismatch:
    """One column of one partition file whose type differs from the schema."""

    partition: str
    file: str
    column: str
    expected: str
    found: str
    sample: str

    def message(self) -> str:
        """One line naming the partition file, the column, both types and a sample value."""
        return (f"{self.partition}/{self.file}: column {self.column!r}: expected {self.expected}, "
                f"found {self.found} (e.g. {self.sample})")


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def accepts(dtype: str, t: pa.DataType) -> bool | None:
    """Whether a column of arrow type ``t`` can hold the schema kind ``dtype``; ``None`` for a kind
    this check does not know (left to the validate step)."""
    if pa.types.is_null(t):  # an all-null column: nullability is the validate step's business
        return True
    if dtype in ("numeric", "integer"):
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if dtype == "binary":
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    if dtype == "categorical":
        return _is_text(t) or pa.types.is_boolean(t)
    return None


def _not_a_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return True
    return False


def sample_value(column: pa.ChunkedArray, dtype: str, scan: int = 1000) -> str:
    """A value of ``column`` that shows the problem: for a numeric kind, the first non-null value that
    is not a number; else the first non-null value (``repr``)."""
    values = column.drop_null().slice(0, scan).to_pylist()
    if not values:
        return "no non-null value"
    if dtype in ("numeric", "integer", "binary"):
        bad = next((v for v in values if _not_a_number(v)), values[0])
        return repr(bad)
    return repr(values[0])


def table_mismatches(table: pa.Table, schema: Schema, partition: str, file: str) -> list[TypeMismatch]:
    """The columns of one partition file whose arrow type differs from the schema's kind.

    Columns missing from the file are left to the validate step (it reports them for the whole batch).
    """
    out: list[TypeMismatch] = []
    for name, spec in schema.columns.items():
        if name not in table.column_names:
            continue
        col = table.column(name)
        if accepts(spec.dtype, col.type) is not False:
            continue
        out.append(TypeMismatch(partition, file, name, f"{spec.dtype} ({EXPECTED.get(spec.dtype, spec.dtype)})",
                                str(col.type), sample_value(col, spec.dtype)))
    return out


def raise_mismatches(source: str, mismatches: list[TypeMismatch]) -> None:
    """Raise one :class:`PartitionTypeError` listing the mismatches (no-op when there are none)."""
    if not mismatches:
        return
    files = {(m.partition, m.file) for m in mismatches}
    lines = [f"data.source {source!r}: {len(mismatches)} column type mismatch(es) in {len(files)} "
             "partition file(s) against the schema (schema.path):"]
    lines += [f"  - {m.message()}" for m in mismatches[:MAX_LISTED]]
    if len(mismatches) > MAX_LISTED:
        lines.append(f"  - … and {len(mismatches) - MAX_LISTED} more (see the ingest report)")
    lines.append("  fix the feed (or the schema, after review) and rerun")
    raise PartitionTypeError("\n".join(lines), [asdict(m) for m in mismatches])


def write_ingest_report(path: str | Path, source: str, exc: PartitionTypeError) -> Path:
    """Write the ingest report (format ``ctloop-ingest-report/v1``) of a rejected window."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": INGEST_REPORT_FORMAT, "passed": False, "source": source, "errors": str(exc).splitlines()[1:],
           "mismatches": exc.mismatches}
    p.write_text(json.dumps(doc, indent=1))
    return p
