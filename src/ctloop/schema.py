"""Data schema: a reviewed YAML file, checked against each batch with pandera."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctloop.errors import DataError, DataValidationError, SchemaError
from ctloop.yamlsafe import YamlLimitError, load_bounded

SCHEMA_VERSION = 1


class ColumnSpec(BaseModel):
    """One column: its kind, nullability and allowed values.

    ``dtype: id`` marks the row id (``data.id_column``): checked for presence and nulls, never a feature.
    """

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["numeric", "integer", "categorical", "binary", "id"]
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

    @property
    def id_columns(self) -> list[str]:
        """Row id columns (``dtype: id``): never features."""
        return [c for c, s in self.columns.items() if s.dtype == "id"]


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _read_remote(uri: str) -> str:
    """A schema file's text from an fsspec URI (``s3://...``)."""
    import fsspec

    try:
        with fsspec.open(uri, "r") as fh:
            return str(fh.read())
    except FileNotFoundError as exc:
        raise SchemaError(f"{uri}: schema file not found (schema.path); write it with `ctloop datagen "
                          "--schema-out` or copy a reviewed schema there") from exc
    except (ImportError, ValueError, OSError) as exc:
        raise SchemaError(f"{uri}: cannot read the schema file ({exc}); check the URI, credentials and "
                          "AWS_ENDPOINT_URL") from exc


def load_schema(path: str | Path) -> Schema:
    """Read and validate a schema YAML file (a path, or an fsspec URI such as ``s3://bucket/schema.yaml``).

    Raises:
        SchemaError: When the file is missing, not YAML, or not a valid schema.
    """
    text = _read_remote(str(path)) if _is_remote(str(path)) else None
    p = Path(path)
    if text is None and not p.is_file():
        raise SchemaError(f"{p}: schema file not found (schema.path); infer one with `ctloop schema infer`")
    try:
        raw = load_bounded(text if text is not None else p.read_text(), str(path))
        return Schema.model_validate(raw)
    except YamlLimitError as exc:
        raise SchemaError(str(exc)) from exc
    except yaml.YAMLError as exc:
        raise SchemaError(f"{p}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise SchemaError(f"{p}: invalid schema: {msgs}") from exc


def read_sample(data: str, target: str, window_days: int = 3660) -> pd.DataFrame:
    """Read data to infer a schema from: one parquet file, or a partitioned source's newest days.

    Raises:
        DataError: When the data cannot be read (the message names the file or source).
    """
    from ctloop.data import read_window

    if data.endswith(".parquet") and "://" not in data:
        try:
            return pd.read_parquet(data)
        except (OSError, ValueError) as exc:
            raise DataError(f"{data}: cannot read parquet file ({exc})") from exc
    return read_window(data, window_days, allow_missing_days=True, target=target).frame


def dump_schema(schema: Schema) -> str:
    """Render a schema as YAML for a person to review."""
    data = schema.model_dump(exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def _is_categorical(s: pd.Series) -> bool:
    return (pd.api.types.is_string_dtype(s.dtype) or pd.api.types.is_object_dtype(s.dtype)
            or pd.api.types.is_bool_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype))


def _in_domain(s: pd.Series, domain: list[str]) -> pd.Series:
    """Which values (compared as strings) lie in ``domain``; cheap for category and string dtypes."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        allowed = np.asarray(s.cat.categories.map(str).isin(domain))
        codes = s.cat.codes.to_numpy()
        return pd.Series(allowed[codes] | (codes < 0), index=s.index)
    return (s if isinstance(s.dtype, pd.StringDtype) else s.astype(str)).isin(domain)


def infer_schema(frame: pd.DataFrame, target: str, max_categories: int = 50, id_column: str | None = "id") -> Schema:
    """Infer a schema (kinds, nullability, ranges, categorical domains) from a frame.

    Numeric columns get their observed ``[min, max]``; categorical columns with at most
    ``max_categories`` distinct values get that domain (more than that: no domain, any value
    passes). The ``date`` partition column is left out; ``id_column`` (when present) is marked
    ``dtype: id``, never a feature. The result is a draft for a person to review.

    Raises:
        SchemaError: When the target column is missing or not binary (0/1), or the frame is empty.
    """
    if target not in frame.columns:
        raise SchemaError(f"cannot infer schema: target column {target!r} is not in the data "
                          f"(columns: {sorted(map(str, frame.columns))})")
    if frame.empty:
        raise SchemaError("cannot infer schema: the data has no rows")
    cols: dict[str, ColumnSpec] = {}
    for name in frame.columns:
        if name == "date":
            continue
        s = frame[name]
        nullable = bool(s.isna().any())
        if name == target:
            values = set(s.dropna().unique().tolist())
            if not values <= {0, 1}:  # True/False compare equal to 1/0
                shown = sorted(map(str, values))[:5]
                raise SchemaError(f"cannot infer schema: target column {target!r} must hold 0/1 labels, "
                                  f"found {shown}")
            cols[str(name)] = ColumnSpec(dtype="binary", nullable=nullable)
        elif name == id_column:
            cols[str(name)] = ColumnSpec(dtype="id", nullable=nullable)
        elif _is_numeric(s):
            kind: Literal["integer", "numeric"] = "integer" if pd.api.types.is_integer_dtype(s) else "numeric"
            finite = s[pd.notna(s)]
            cols[str(name)] = ColumnSpec(
                dtype=kind, nullable=nullable,
                min=float(finite.min()) if len(finite) else None,
                max=float(finite.max()) if len(finite) else None,
            )
        else:
            distinct = s.dropna().astype(str).unique()
            categories = sorted(distinct.tolist()) if len(distinct) <= max_categories else None
            cols[str(name)] = ColumnSpec(dtype="categorical", nullable=nullable, categories=categories)
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


def _pandera_schema(schema: Schema, frame: pd.DataFrame, dtype_ok: set[str]):  # type: ignore[no-untyped-def]
    """The pandera schema of the value checks, for columns present in ``frame`` with the right kind."""
    import pandera.pandas as pa

    columns = {}
    for name, spec in schema.columns.items():
        if name not in frame.columns or name not in dtype_ok:
            continue
        checks = []
        if spec.dtype in ("numeric", "integer", "binary"):
            if spec.dtype == "integer":
                checks.append(pa.Check(lambda s: s % 1 == 0, name="integer", ignore_na=True))
            if spec.min is not None:
                checks.append(pa.Check(lambda s, lo=spec.min: s >= lo, name="min"))
            if spec.max is not None:
                checks.append(pa.Check(lambda s, hi=spec.max: s <= hi, name="max"))
            if spec.dtype == "binary":
                checks.append(pa.Check(lambda s: s.isin([0, 1]), name="binary"))
        elif spec.categories is not None:
            domain = list(spec.categories)
            checks.append(pa.Check(lambda s, d=domain: _in_domain(s, d), name="categories"))
        columns[name] = pa.Column(checks=checks, nullable=spec.nullable, required=True, unique=spec.dtype == "id")
    return pa.DataFrameSchema(columns, strict=False)


def check_frame(frame: pd.DataFrame, schema: Schema) -> list[Finding]:
    """Check a frame against the schema; return every failed check (empty when it passes).

    Checks, each naming the column: ``column_present``, ``unexpected_column`` (a warning), ``dtype``
    (kind of values), ``all_null``, ``not_nullable``, ``min``/``max`` (range), ``categories``
    (domain), ``integer``, ``binary``. ``failures`` counts the failing rows (1 for whole-column checks).
    """
    import pandera.pandas as pa

    findings: list[Finding] = []
    n = len(frame)
    for c in schema.columns:
        if c not in frame.columns:
            findings.append(Finding(c, "column_present", n, [], "error"))
    for c in frame.columns:
        if c not in schema.columns and c != "date":
            findings.append(Finding(str(c), "unexpected_column", 0, [], "warning"))
    dtype_ok: set[str] = set()
    for c, spec in schema.columns.items():
        if c not in frame.columns:
            continue
        s = frame[c]
        if n and s.isna().all():
            findings.append(Finding(c, "all_null", n, [], "error"))
            continue
        if spec.dtype == "id":
            ok = _is_categorical(s) or pd.api.types.is_integer_dtype(s.dtype)
        else:
            ok = _is_numeric(s) if spec.dtype in ("numeric", "integer", "binary") else _is_categorical(s)
        if ok:
            dtype_ok.add(c)
            continue
        want = "numbers" if spec.dtype in ("numeric", "integer", "binary") else (
            "strings or integers" if spec.dtype == "id" else "strings")
        bad = s.dropna()
        if want == "numbers":
            bad = bad[pd.to_numeric(bad, errors="coerce").isna()]
        examples = [repr(v) for v in pd.unique(bad.to_numpy(dtype=object))[:3]]
        findings.append(Finding(c, "dtype", max(1, len(bad)), [f"expected {want}, got {s.dtype}", *examples]))
    if not dtype_ok or n == 0:
        return findings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _pandera_schema(schema, frame, dtype_ok).validate(frame, lazy=True, inplace=True)  # no copy
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for (col, check), grp in cases.groupby(["column", "check"], dropna=False, sort=False):
            examples = [repr(v) for v in pd.unique(grp["failure_case"].to_numpy(dtype=object))[:3]]
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
