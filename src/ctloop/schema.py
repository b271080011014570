"""Data schema: a reviewed YAML file, checked against each batch with pandera."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctloop.errors import DataValidationError, SchemaError

SCHEMA_VERSION = 1


class ColumnSpec(BaseModel):
    """One column: its kind, nullability and allowed values."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["numeric", "integer", "categorical", "binary"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Schema(BaseModel):
    """The whole schema file."""

    model_config = ConfigDict(extra="forbid")

    version: int = SCHEMA_VERSION
    target: str
    columns: dict[str, ColumnSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _target_listed(self) -> Schema:
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not among the columns")
        return self

    @property
    def numeric_features(self) -> list[str]:
        """Numeric feature columns (target excluded), in file order."""
        return [c for c, s in self.columns.items() if c != self.target and s.dtype in ("numeric", "integer")]

    @property
    def categorical_features(self) -> list[str]:
        """Categorical feature columns (target excluded), in file order."""
        return [c for c, s in self.columns.items() if c != self.target and s.dtype == "categorical"]

    @property
    def features(self) -> list[str]:
        """All feature columns."""
        return self.numeric_features + self.categorical_features


def load_schema(path: str | Path) -> Schema:
    """Read and validate a schema YAML file.

    Raises:
        SchemaError: When the file is missing, not YAML, or not a valid schema.
    """
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: schema file not found (schema.path); infer one with `ctloop schema infer`")
    try:
        raw = yaml.safe_load(p.read_text())
        return Schema.model_validate(raw)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{p}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise SchemaError(f"{p}: invalid schema: {msgs}") from exc


def dump_schema(schema: Schema) -> str:
    """Render a schema as YAML for a person to review."""
    data = schema.model_dump(exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)


def infer_schema(frame: pd.DataFrame, target: str, max_categories: int = 50) -> Schema:
    """Infer a schema (kinds, nullability, ranges, categorical domains) from a frame."""
    cols: dict[str, ColumnSpec] = {}
    for name in frame.columns:
        if name == "date":
            continue
        s = frame[name]
        nullable = bool(s.isna().any())
        if name == target:
            cols[name] = ColumnSpec(dtype="binary", nullable=False)
        elif pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            values = sorted(str(v) for v in s.dropna().unique())[:max_categories]
            cols[name] = ColumnSpec(dtype="categorical", nullable=nullable, categories=values)
        else:
            kind: Literal["integer", "numeric"] = (
                "integer" if pd.api.types.is_integer_dtype(s) else "numeric"
            )
            cols[name] = ColumnSpec(
                dtype=kind, nullable=nullable, min=float(s.min()), max=float(s.max())
            )
    if target not in cols:
        raise SchemaError(f"cannot infer schema: target column {target!r} is not in the data")
    return Schema(target=target, columns=cols)


@dataclass(frozen=True)
class Finding:
    """One failed schema check."""

    column: str
    check: str
    failures: int
    examples: list[str]
    severity: Literal["error", "warning"] = "error"

    def message(self) -> str:
        """A one-line description naming the column and the check."""
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"column {self.column!r}: check {self.check!r} failed for {self.failures} row(s){ex}"


def _pandera_schema(schema: Schema):  # type: ignore[no-untyped-def]
    import pandera.pandas as pa

    columns = {}
    for name, spec in schema.columns.items():
        checks = []
        if spec.dtype in ("numeric", "integer", "binary"):
            checks.append(
                pa.Check(lambda s: pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s),
                         name="dtype_numeric", error="dtype_numeric")
            )
            if spec.dtype == "integer":
                checks.append(pa.Check(lambda s: s.dropna() % 1 == 0, name="dtype_integer", error="dtype_integer"))
            if spec.min is not None:
                checks.append(pa.Check.ge(spec.min, name="min", error="min"))
            if spec.max is not None:
                checks.append(pa.Check.le(spec.max, name="max", error="max"))
            if spec.dtype == "binary":
                checks.append(pa.Check.isin([0, 1], name="binary", error="binary"))
        else:
            checks.append(
                pa.Check(lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)
                         or isinstance(s.dtype, pd.CategoricalDtype),
                         name="dtype_categorical", error="dtype_categorical")
            )
        columns[name] = pa.Column(checks=checks, nullable=spec.nullable, required=True)
    return pa.DataFrameSchema(columns, strict=False)


def check_frame(frame: pd.DataFrame, schema: Schema) -> list[Finding]:
    """Check a frame against the schema; return every failed check (empty when it passes)."""
    import pandera.pandas as pa

    findings: list[Finding] = []
    missing = [c for c in schema.columns if c not in frame.columns]
    for c in missing:
        findings.append(Finding(c, "column_present", len(frame), [], "error"))
    extra = [c for c in frame.columns if c not in schema.columns and c != "date"]
    for c in extra:
        findings.append(Finding(c, "unexpected_column", 0, [], "warning"))
    present = schema.model_copy(update={"columns": {k: v for k, v in schema.columns.items() if k in frame}})
    if not present.columns:
        return findings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _pandera_schema(present).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for (col, check), grp in cases.groupby(["column", "check"], dropna=False, sort=False):
            examples = [repr(v) for v in grp["failure_case"].head(3).tolist()]
            check_name = str(check).split("(")[0]
            findings.append(Finding(str(col), check_name, len(grp), examples))
    # a column of the wrong type fails its range checks too: report only the type
    wrong_type = {f.column for f in findings if f.check.startswith("dtype_")}
    return [f for f in findings if f.column not in wrong_type or f.check.startswith("dtype_")]


def enforce(frame: pd.DataFrame, schema: Schema, where: str) -> list[Finding]:
    """Raise :class:`DataValidationError` on any error finding; return the warnings."""
    findings = check_frame(frame, schema)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        lines = "\n".join(f"  - {f.message()}" for f in errors)
        raise DataValidationError(f"{where}: data failed schema validation:\n{lines}")
    return [f for f in findings if f.severity == "warning"]
