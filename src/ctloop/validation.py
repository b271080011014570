"""The data validation gate: schema checks plus checks against the champion's reference profile.

One call, :func:`validate_frame`, runs every check on a batch in one vectorised pass per column and
returns a :class:`ValidationReport` (one row per check, per-feature reference-vs-batch histograms).
:func:`run_validation` is the pipeline's validate step: it reads the batch and the champion's
``profile.json``, writes the JSON / HTML / Markdown reports, and raises
:class:`~ctloop.errors.DataValidationError` when any check is an error (fail closed).

Check names (each result names its column where it has one): ``row_count``, ``label_present``,
``label_classes``, ``duplicate_share_increase``, ``column_present``, ``unexpected_column`` (warning),
``dtype``, ``all_null``, ``not_nullable``, ``min``, ``max``, ``categories``, ``integer``, ``binary``,
``schema`` (a column that passed them all), ``reference`` (whether a champion profile was found),
``missing_share_increase``, ``unseen_category_share``, ``out_of_range_share``, ``psi``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ctloop.config import Limit, ProjectConfig, ValidationConfig
from ctloop.errors import DataValidationError, ModelError, SchemaError, VersionNotFoundError
from ctloop.profile import PROFILE_FILE, Profile, as_categories, compute_profile
from ctloop.schema import Finding, Schema, check_frame, load_schema

REPORT_FORMAT = "ctloop-validation-report/v1"
Status = Literal["pass", "warning", "error", "skipped"]
GRADED_SCHEMA_CHECKS = ("min", "max", "categories")  # graded by validation.schema_violation_share


@dataclass
class CheckResult:
    """One row of the report."""

    check: str
    column: str | None
    status: Status
    message: str
    value: float | None = None
    threshold: float | None = None


@dataclass
class Histogram:
    """Reference-vs-batch shares of one feature over the same bins."""

    column: str
    kind: Literal["numeric", "categorical"]
    labels: list[str]
    batch: list[float]
    reference: list[float] | None = None


@dataclass
class ReferenceInfo:
    """Where the reference profile came from."""

    version: int | None
    uri: str | None
    rows: int | None
    note: str


@dataclass
class ValidationReport:
    """The outcome of validating one batch."""

    rows: int
    dataset: str
    schema: str
    reference: ReferenceInfo
    checks: list[CheckResult] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)
    seconds: float = 0.0
    html_path: str | None = None

    @property
    def passed(self) -> bool:
        """True when no check is an error."""
        return not any(c.status == "error" for c in self.checks)

    def failing(self) -> list[CheckResult]:
        """The error checks."""
        return [c for c in self.checks if c.status == "error"]

    def warnings(self) -> list[CheckResult]:
        """The warning checks."""
        return [c for c in self.checks if c.status == "warning"]

    def error_message(self) -> str:
        """A multi-line message listing every failing check (for the raised error and the CLI)."""
        lines = [f"{self.dataset}: data validation failed ({len(self.failing())} failing check(s)):"]
        lines += [f"  - {c.message}" for c in self.failing()]
        if self.html_path:
            lines.append(f"  report: {self.html_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (format ``ctloop-validation-report/v1``)."""
        return {
            "format": REPORT_FORMAT,
            "passed": self.passed,
            "rows": self.rows,
            "dataset": self.dataset,
            "schema": self.schema,
            "reference": asdict(self.reference),
            "errors": [c.message for c in self.failing()],
            "warnings": [c.message for c in self.warnings()],
            "checks": [asdict(c) for c in self.checks],
            "histograms": [asdict(h) for h in self.histograms],
            "seconds": round(self.seconds, 4),
            "html": self.html_path,
        }


def grade(value: float, limit: Limit) -> Status:
    """``error`` above ``limit.error``, ``warning`` above ``limit.warn``, else ``pass``."""
    if limit.error is not None and value > limit.error:
        return "error"
    if limit.warn is not None and value > limit.warn:
        return "warning"
    return "pass"


def _threshold(status: Status, limit: Limit) -> float | None:
    return limit.error if status == "error" or limit.warn is None else limit.warn


def psi(reference_counts: list[int] | np.ndarray, batch_counts: list[int] | np.ndarray,
        epsilon: float = 1e-4) -> float:
    """Population stability index between two count vectors over the same bins."""
    r = np.asarray(reference_counts, dtype=float)
    b = np.asarray(batch_counts, dtype=float)
    if r.sum() == 0 or b.sum() == 0:
        return 0.0
    r = np.clip(r / r.sum(), epsilon, None)
    b = np.clip(b / b.sum(), epsilon, None)
    return float(np.sum((b - r) * np.log(b / r)))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _schema_results(findings: list[Finding], schema: Schema, rows: int, limit: Limit) -> list[CheckResult]:
    out: list[CheckResult] = []
    failed_cols: set[str] = set()
    for f in findings:
        if f.column == schema.target and f.check == "column_present":
            continue  # reported as label_present
        ex = f" (e.g. {', '.join(f.examples)})" if f.examples else ""
        if f.check == "unexpected_column":
            msg = f"column {f.column!r}: check 'unexpected_column': not in the schema; ignored"
            out.append(CheckResult("unexpected_column", f.column, "warning", msg))
            continue
        failed_cols.add(f.column)
        share = f.failures / rows if rows else 1.0
        if f.check in GRADED_SCHEMA_CHECKS:
            status = grade(share, limit)
            what = {"min": "below the schema's min", "max": "above the schema's max",
                    "categories": "outside the schema's categories"}[f.check]
            msg = (f"column {f.column!r}: check {f.check!r}: {f.failures} of {rows} row(s) ({_pct(share)}) "
                   f"{what}{ex}")
            out.append(CheckResult(f.check, f.column, status, msg, share, _threshold(status, limit)))
            continue
        if f.check == "dtype" and f.examples:  # first "example" says what was expected
            ex = f" (e.g. {', '.join(f.examples[1:])})" if f.examples[1:] else ""
        text = {
            "column_present": "column is missing from the batch",
            "dtype": f"wrong value type: {f.examples[0] if f.examples else 'unexpected dtype'}",
            "all_null": "every value is null",
            "not_nullable": f"{f.failures} null value(s) ({_pct(share)}) in a non-nullable column",
            "integer": f"{f.failures} non-integer value(s)",
            "binary": f"{f.failures} value(s) other than 0/1",
        }.get(f.check, f"{f.failures} failing row(s)")
        msg = f"column {f.column!r}: check {f.check!r}: {text}{ex}"
        out.append(CheckResult(f.check, f.column, "error", msg, share))
    for c in schema.columns:
        if c not in failed_cols and c != schema.target:
            out.append(CheckResult("schema", c, "pass", f"column {c!r}: matches the schema"))
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _numeric_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"≤ {_fmt(edges[0])}"]
    labels += [f"({_fmt(a)}, {_fmt(b)}]" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f"> {_fmt(edges[-1])}")
    return labels


def _shares(counts: list[int]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def _reference_results(frame: pd.DataFrame, batch: Profile, ref: Profile,
                       cfg: ValidationConfig) -> list[CheckResult]:
    out: list[CheckResult] = []

    def add(check: str, column: str, value: float, limit: Limit, what: str) -> None:
        status = grade(value, limit)
        out.append(CheckResult(check, column, status, f"column {column!r}: check {check!r}: {what}", value,
                               _threshold(status, limit)))

    for c, b in batch.numeric.items():
        r = ref.numeric.get(c)
        if r is None:
            out.append(CheckResult("reference", c, "skipped", f"column {c!r}: not in the champion's profile"))
            continue
        jump = b.missing_share - r.missing_share
        add("missing_share_increase", c, jump, cfg.missing_share_increase,
            f"missing share {_pct(b.missing_share)} vs {_pct(r.missing_share)} in the reference")
        if r.min is not None and r.max is not None:
            v = frame[c].to_numpy(dtype=float, na_value=np.nan)
            present = int(np.count_nonzero(~np.isnan(v)))
            outside = int(np.count_nonzero((v < r.min) | (v > r.max)))
            share = outside / present if present else 0.0
            add("out_of_range_share", c, share, cfg.out_of_range_share,
                f"{outside} value(s) ({_pct(share)}) outside the reference range "
                f"[{_fmt(r.min)}, {_fmt(r.max)}]")
        value = psi(r.counts, b.counts)
        add("psi", c, value, cfg.psi, f"PSI {value:.3f} against the reference")
    for c, cb in batch.categorical.items():
        cr = ref.categorical.get(c)
        if cr is None:
            out.append(CheckResult("reference", c, "skipped", f"column {c!r}: not in the champion's profile"))
            continue
        jump = cb.missing_share - cr.missing_share
        add("missing_share_increase", c, jump, cfg.missing_share_increase,
            f"missing share {_pct(cb.missing_share)} vs {_pct(cr.missing_share)} in the reference")
        b_other = _shares(cb.counts)[-1]
        r_other = _shares(cr.counts)[-1]
        unseen = max(0.0, b_other - r_other)
        add("unseen_category_share", c, unseen, cfg.unseen_category_share,
            f"{_pct(b_other)} of values outside the reference vocabulary (reference: {_pct(r_other)})")
        value = psi(cr.counts, cb.counts)
        add("psi", c, value, cfg.psi, f"PSI {value:.3f} against the reference")
    return out


def _histograms(batch: Profile, ref: Profile | None) -> list[Histogram]:
    out = []
    for c, b in batch.numeric.items():
        r = ref.numeric.get(c) if ref else None
        out.append(Histogram(c, "numeric", _numeric_labels(b.edges), _shares(b.counts),
                             _shares(r.counts) if r else None))
    for c, cb in batch.categorical.items():
        cr = ref.categorical.get(c) if ref else None
        out.append(Histogram(c, "categorical", [*cb.vocabulary, "OTHER"], _shares(cb.counts),
                             _shares(cr.counts) if cr else None))
    return out


def read_batch(path: str, schema: Schema) -> pd.DataFrame:
    """Read a batch; string columns the schema calls categorical come back dictionary-encoded
    (``category`` dtype), which skips building millions of Python strings.

    Raises:
        OSError, ValueError: When the file is missing or not parquet (pyarrow errors are ValueErrors).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        fields = pq.read_schema(path)
        wanted = {*schema.categorical_features, "date"}
        as_dict = [f.name for f in fields if f.name in wanted
                   and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        return pq.read_table(path, read_dictionary=as_dict).to_pandas()
    except pa.ArrowException as exc:
        raise ValueError(str(exc)) from exc


def validate_frame(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidationConfig,
    reference: Profile | None = None,
    reference_info: ReferenceInfo | None = None,
    dataset: str = "<frame>",
    schema_path: str = "<schema>",
) -> ValidationReport:
    """Run every check on ``frame``; never raises for bad data (the report says what failed).

    Args:
        frame: The batch.
        schema: The reviewed schema.
        cfg: Thresholds (``validation`` in ``ctloop.yaml``).
        reference: The champion's reference profile; ``None`` skips the checks against it.
        reference_info: Where ``reference`` came from (for the report).
        dataset: Name of the batch in messages.
        schema_path: Name of the schema in the report.
    """
    t0 = time.perf_counter()
    info = reference_info or ReferenceInfo(None, None, reference.rows if reference else None,
                                           "reference profile given" if reference else "no reference profile")
    rows = len(frame)
    frame = as_categories(frame, schema.categorical_features)
    report = ValidationReport(rows=rows, dataset=dataset, schema=schema_path, reference=info)
    checks = report.checks
    target = schema.target
    if rows == 0:
        checks.append(CheckResult("row_count", None, "error",
                                  "check 'row_count': the batch is empty (0 rows)", 0, cfg.min_rows))
        report.seconds = time.perf_counter() - t0
        return report
    checks.append(CheckResult(
        "row_count", None, "error" if rows < cfg.min_rows else "pass",
        f"check 'row_count': {rows} row(s), at least {cfg.min_rows} needed (validation.min_rows)",
        rows, cfg.min_rows))
    if target not in frame.columns:
        checks.append(CheckResult("label_present", target, "error",
                                  f"column {target!r}: check 'label_present': the label column is missing"))
    else:
        classes = sorted(map(str, frame[target].dropna().unique().tolist()))
        ok = len(classes) >= 2
        checks.append(CheckResult(
            "label_present", target, "pass", f"column {target!r}: check 'label_present': present"))
        checks.append(CheckResult(
            "label_classes", target, "pass" if ok else "error",
            f"column {target!r}: check 'label_classes': "
            + (f"classes {classes}" if ok else f"needs both classes, found only {classes or 'nulls'}"),
            len(classes), 2))
    findings = check_frame(frame, schema)
    checks += _schema_results(findings, schema, rows, cfg.schema_violation_share)
    broken = {f.column for f in findings if f.check in ("column_present", "dtype", "all_null")}
    numeric = [c for c in schema.numeric_features if c not in broken]
    categorical = [c for c in schema.categorical_features if c not in broken]
    batch = compute_profile(frame, numeric, categorical, target, bins=cfg.bins, reference=reference)
    base_dup = reference.duplicate_share if reference and reference.duplicate_share is not None else 0.0
    dup = batch.duplicate_share or 0.0
    status = grade(dup - base_dup, cfg.duplicate_share_increase)
    checks.append(CheckResult(
        "duplicate_share_increase", None, status,
        f"check 'duplicate_share_increase': {_pct(dup)} duplicated rows (reference {_pct(base_dup)})",
        dup - base_dup, _threshold(status, cfg.duplicate_share_increase)))
    if reference is None:
        checks.append(CheckResult("reference", None, "skipped",
                                  f"checks against the champion's profile skipped: {info.note}"))
    else:
        if reference.target != target:
            checks.append(CheckResult("reference", target, "warning",
                                      f"the reference profile's target {reference.target!r} differs from "
                                      f"the schema's {target!r}"))
        checks += _reference_results(frame, batch, reference, cfg)
    report.histograms = _histograms(batch, reference)
    report.seconds = time.perf_counter() - t0
    return report


def load_reference(cfg: ProjectConfig) -> tuple[Profile | None, ReferenceInfo]:
    """The champion's reference profile from the registry, or ``None`` with the reason.

    Reads only; never writes to the registry.

    Raises:
        ModelError: When the champion's ``profile.json`` exists but is not a valid profile.
    """
    from ctloop.registry import Registry

    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    try:
        if reg.alias("champion") is None:
            return None, ReferenceInfo(None, None, None, "no champion yet")
        mv = reg.get("champion")
    except VersionNotFoundError:
        return None, ReferenceInfo(None, None, None, "no champion yet")
    uri = f"{mv.model_uri}/{PROFILE_FILE}"
    try:
        raw = reg.fs.cat_file(uri)
    except FileNotFoundError:
        return None, ReferenceInfo(mv.version, uri, None, f"champion v{mv.version} has no {PROFILE_FILE}")
    try:
        prof = Profile.model_validate(json.loads(raw))
    except ValueError as exc:
        raise ModelError(f"{uri}: invalid reference profile of champion v{mv.version} ({exc}); "
                         "re-register the model or fix the file") from exc
    return prof, ReferenceInfo(mv.version, uri, prof.rows, f"champion v{mv.version}")


def _write(path: str | None, text: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def write_outputs(report: ValidationReport, report_path: str, html_path: str | None = None,
                  summary_path: str | None = None) -> None:
    """Write the JSON report, and the HTML and Markdown renderings when their paths are given."""
    from ctloop.reports import render_validation_html, render_validation_markdown

    report.html_path = html_path or None
    doc = report.to_dict()
    _write(report_path, json.dumps(doc, indent=1, default=float))
    _write(html_path, render_validation_html(doc))
    _write(summary_path, render_validation_markdown(doc))


def _failed_early(check: str, message: str, dataset: str, schema_path: str) -> ValidationReport:
    rep = ValidationReport(rows=0, dataset=dataset, schema=schema_path,
                           reference=ReferenceInfo(None, None, None, "not loaded"))
    rep.checks.append(CheckResult(check, None, "error", message))
    return rep


def run_validation(cfg: ProjectConfig, dataset_path: str, report_path: str, html_path: str | None = None,
                   summary_path: str | None = None, fail: bool = True) -> ValidationReport:
    """The validate step: check the batch, write the reports, and (with ``fail``) fail closed.

    With ``fail=False`` a batch that fails its checks is reported, not raised, so the reports get
    published (KFP uploads a task's output artifacts only when it succeeds); :func:`gate` then stops
    the run in the next task.

    Raises:
        SchemaError: The schema file is missing or invalid (exit code 2); the report says so.
        DataValidationError: With ``fail``, the batch is unreadable or any check is an error (exit
            code 3); the message lists the failing checks and where the HTML report is.
    """
    schema_path = cfg.schema_.path
    try:
        schema = load_schema(schema_path)
    except SchemaError as exc:
        write_outputs(_failed_early("schema_file", f"check 'schema_file': {exc}", dataset_path, schema_path),
                      report_path, html_path, summary_path)
        raise
    try:
        frame = read_batch(dataset_path, schema)
    except (OSError, ValueError) as exc:
        rep = _failed_early("readable", f"check 'readable': cannot read the batch ({exc})", dataset_path,
                            schema_path)
        write_outputs(rep, report_path, html_path, summary_path)
        if fail:
            raise DataValidationError(rep.error_message()) from exc
        return rep
    reference, info = load_reference(cfg)
    report = validate_frame(frame, schema, cfg.validation, reference, info, dataset=cfg.data.source,
                            schema_path=schema_path)
    if schema.target != cfg.data.target:
        report.checks.insert(0, CheckResult(
            "label_present", cfg.data.target, "error",
            f"check 'label_present': the schema's target {schema.target!r} differs from data.target "
            f"{cfg.data.target!r}"))
    write_outputs(report, report_path, html_path, summary_path)
    if fail and not report.passed:
        raise DataValidationError(report.error_message())
    return report


def gate(report_path: str) -> dict[str, Any]:
    """Stop the run when a written validation report did not pass; return the report otherwise.

    Raises:
        DataValidationError: The report failed (the message lists its failing checks and the HTML
            path), or it is missing or unreadable (fail closed).
    """
    try:
        doc = json.loads(Path(report_path).read_text())
        passed = doc["passed"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataValidationError(f"{report_path}: validation report missing or unreadable ({exc}); "
                                  "rerun the validate step") from exc
    if passed is not True:
        errors = doc.get("errors") or ["(no failing check recorded)"]
        lines = [f"{doc.get('dataset')}: data validation failed ({len(errors)} failing check(s)):"]
        lines += [f"  - {e}" for e in errors]
        if doc.get("html"):
            lines.append(f"  report: {doc['html']}")
        raise DataValidationError("\n".join(lines))
    return dict(doc)
