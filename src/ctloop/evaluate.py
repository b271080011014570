"""Evaluation metrics and the gate decision.

The gate applies, in order: absolute bounds on the challenger's holdout metrics; "beat the champion by
at least delta" on the holdout and on the recent slice (the champion is evaluated on the same rows in
the same step, never compared by the numbers of its own training run); per-slice minimums over a
categorical column; and an infra check that loads the saved artifact with :func:`ctloop.model.load_model`
(the model server's loader) and predicts a sample. Every check carries value, threshold, outcome and a
one-line reason; the :class:`Decision` is written whether the gate passes or not.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.config import BeatChampionConfig, GateConfig, InfraCheckConfig, SliceMinimum
from ctloop.model import LoadedModel, load_model

METRICS = ("roc_auc", "accuracy", "log_loss")
HIGHER_IS_BETTER = {"roc_auc": True, "accuracy": True, "log_loss": False}
DECISION_FORMAT = "ctloop-decision/v1"


def compute_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """roc_auc, accuracy and log_loss of positive-class probabilities ``proba``.

    roc_auc is NaN when ``y_true`` holds a single class; every metric is NaN on zero rows.
    """
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y = np.asarray(y_true).astype(int)
    if len(y) == 0:
        return {"roc_auc": math.nan, "accuracy": math.nan, "log_loss": math.nan, "rows": 0.0}
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    return {
        "roc_auc": auc,
        "accuracy": float(accuracy_score(y, (p >= 0.5).astype(int))),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "rows": float(len(y)),
    }


def evaluate_model(model: LoadedModel, frame: pd.DataFrame, target: str) -> dict[str, float]:
    """Metrics of ``model`` on ``frame``."""
    if frame.empty:
        return compute_metrics(np.array([]), np.array([]))
    return compute_metrics(frame[target].to_numpy(), model.predict_proba(frame))


def improvement(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is on ``metric`` (positive: better), NaN when undefined."""
    if math.isnan(challenger) or math.isnan(champion):
        return math.nan
    return challenger - champion if HIGHER_IS_BETTER[metric] else champion - challenger


@dataclass
class Check:
    """One gate check with its value, threshold and outcome."""

    name: str
    value: float
    threshold: float
    passed: bool
    reason: str


@dataclass
class ChampionEval:
    """The champion evaluated on the challenger's holdout and recent slice in the same step."""

    version: int
    metrics: dict[str, float] = field(default_factory=dict)
    recent_metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Decision:
    """The gate's decision: every check, and whether the challenger passes."""

    passed: bool
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    recent_metrics: dict[str, float] = field(default_factory=dict)
    champion: ChampionEval | None = None
    slices: list[dict[str, Any]] = field(default_factory=list)
    fast_path: dict[str, Any] | None = None

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "format": DECISION_FORMAT,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "notes": self.notes,
            "metrics": self.metrics,
            "recent_metrics": self.recent_metrics,
            "champion": asdict(self.champion) if self.champion else None,
            "slices": self.slices,
            "fast_path": self.fast_path,
        }

    def kfp_metrics(self) -> dict[str, float]:
        """Flat, finite metrics for a KFP ``Metrics`` artifact (challenger, recent slice, champion)."""
        out: dict[str, float] = {"gate_passed": float(self.passed),
                                 "gate_failed_checks": float(len(self.failed))}
        groups = [("", self.metrics), ("recent_", self.recent_metrics)]
        if self.champion:
            out["champion_version"] = float(self.champion.version)
            groups += [("champion_", self.champion.metrics),
                       ("champion_recent_", self.champion.recent_metrics)]
        for prefix, values in groups:
            for k, v in values.items():
                if isinstance(v, int | float) and math.isfinite(v):
                    out[prefix + k] = float(v)
        return out

    def markdown(self) -> str:
        """A Markdown summary: outcome, metrics side by side, every check, notes."""
        lines = [f"**Gate: {'PASSED' if self.passed else 'REJECTED'}**", ""]
        if self.failed:
            lines += [f"- rejected: {c.reason}" for c in self.failed] + [""]
        champ = self.champion
        head = "| metric | challenger (holdout) | challenger (recent) |"
        sep = "|---|---|---|"
        if champ:
            head += f" champion v{champ.version} (holdout) | champion v{champ.version} (recent) |"
            sep += "---|---|"
        lines += [head, sep]
        for m in METRICS:
            row = f"| {m} | {_fmt(self.metrics.get(m))} | {_fmt(self.recent_metrics.get(m))} |"
            if champ:
                row += f" {_fmt(champ.metrics.get(m))} | {_fmt(champ.recent_metrics.get(m))} |"
            lines.append(row)
        lines += ["", "| check | value | threshold | result | reason |", "|---|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.name} | {_fmt(c.value)} | {_fmt(c.threshold)} | "
                         f"{'pass' if c.passed else 'FAIL'} | {c.reason} |")
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def decision_from_dict(doc: dict[str, Any]) -> Decision:
    """Rebuild a :class:`Decision` from :meth:`Decision.to_dict` output."""
    champ = doc.get("champion")
    return Decision(
        passed=bool(doc["passed"]),
        checks=[Check(**c) for c in doc.get("checks", [])],
        notes=list(doc.get("notes", [])),
        metrics=dict(doc.get("metrics", {})),
        recent_metrics=dict(doc.get("recent_metrics", {})),
        champion=ChampionEval(**champ) if champ else None,
        slices=list(doc.get("slices", [])),
        fast_path=doc.get("fast_path"),
    )


# -- checks ----------------------------------------------------------------
def absolute_checks(metrics: dict[str, float], gate: GateConfig) -> list[Check]:
    """Minimum/maximum bounds on the challenger's holdout metrics."""
    checks: list[Check] = []
    for name, bound in gate.min_metric.items():
        v = metrics.get(name, math.nan)
        ok = not math.isnan(v) and v >= bound
        checks.append(Check(f"min_{name}", v, bound, ok,
                            f"{name} {v:.4f} {'>=' if ok else '<'} minimum {bound:.4f} on the holdout"))
    for name, bound in gate.max_metric.items():
        v = metrics.get(name, math.nan)
        ok = not math.isnan(v) and v <= bound
        checks.append(Check(f"max_{name}", v, bound, ok,
                            f"{name} {v:.4f} {'<=' if ok else '>'} maximum {bound:.4f} on the holdout"))
    return checks


def champion_checks(metrics: dict[str, float], recent_metrics: dict[str, float], champion: ChampionEval,
                    cfg: BeatChampionConfig) -> list[Check]:
    """"Beat the champion by at least delta" on the holdout and on the recent slice."""
    m = cfg.metric
    checks: list[Check] = []
    for where, delta, mine, theirs in (
        ("holdout", cfg.holdout_delta, metrics, champion.metrics),
        ("recent", cfg.recent_delta, recent_metrics, champion.recent_metrics),
    ):
        if delta is None:
            continue
        name = f"beat_champion_{where}_{m}"
        label = "the holdout" if where == "holdout" else "the recent slice"
        if champion.error:
            checks.append(Check(name, math.nan, delta, False,
                                f"champion v{champion.version} could not be evaluated on {label}: "
                                f"{champion.error}"))
            continue
        a, b = mine.get(m, math.nan), theirs.get(m, math.nan)
        gain = improvement(m, a, b)
        if math.isnan(gain):
            rows = int(mine.get("rows", 0) or 0)
            checks.append(Check(name, math.nan, delta, False,
                                f"{m} is undefined on {label} ({rows} rows; an empty or single-class "
                                f"slice cannot compare challenger and champion v{champion.version})"))
            continue
        ok = gain >= delta
        verb = "beats" if ok else "does not beat"
        checks.append(Check(name, gain, delta, ok,
                            f"challenger {m} {a:.4f} vs champion v{champion.version} {b:.4f} on {label}: "
                            f"{verb} it by the required {delta:+.4f} (improvement {gain:+.4f})"))
    return checks


def slice_checks(model: LoadedModel, test: pd.DataFrame, target: str,
                 slices: list[SliceMinimum]) -> tuple[list[Check], list[str], list[dict[str, Any]]]:
    """Per-slice minimums over categorical columns of the holdout; returns checks, notes and a table."""
    checks: list[Check] = []
    notes: list[str] = []
    table: list[dict[str, Any]] = []
    if not slices or test.empty:
        return checks, notes, table
    proba = model.predict_proba(test)
    y = test[target].to_numpy()
    for spec in slices:
        if spec.column not in test.columns:
            checks.append(Check(f"slice_{spec.column}", math.nan, spec.min, False,
                                f"gate.slices column {spec.column!r} is not in the holdout"))
            continue
        col = test[spec.column].astype("object").where(test[spec.column].notna(), "__missing__").astype(str)
        for value in sorted(col.unique()):
            mask = (col == value).to_numpy()
            rows = int(mask.sum())
            name = f"slice_{spec.column}={value}_{spec.metric}"
            if rows < spec.min_rows:
                notes.append(f"slice {spec.column}={value}: {rows} rows < min_rows {spec.min_rows}; skipped")
                continue
            v = compute_metrics(y[mask], proba[mask])[spec.metric]
            table.append({"column": spec.column, "value": value, "rows": rows, spec.metric: v})
            if math.isnan(v):
                notes.append(f"slice {spec.column}={value}: {spec.metric} undefined (single class); skipped")
                continue
            ok = v >= spec.min
            checks.append(Check(name, v, spec.min, ok,
                                f"{spec.metric} {v:.4f} {'>=' if ok else '<'} minimum {spec.min:.4f} "
                                f"on slice {spec.column}={value} ({rows} rows)"))
    return checks, notes, table


def infra_check(model_dir: str | Path, sample: pd.DataFrame, cfg: InfraCheckConfig) -> Check:
    """Load the artifact through the model server's loader and predict a JSON round-tripped sample."""
    n = min(cfg.sample_rows, len(sample))
    if n == 0:
        return Check("infra_load_predict", 0.0, float(cfg.sample_rows), False,
                     "no holdout rows to send as a sample request; cannot prove the artifact serves")
    rows = json.loads(sample.head(n).to_json(orient="records"))  # what an inference request carries
    try:
        model = load_model(model_dir)
        proba = np.asarray(model.predict_proba(pd.DataFrame.from_records(rows)), dtype=float)
    except Exception as exc:  # any failure here is exactly what the check is for
        return Check("infra_load_predict", 0.0, float(n), False,
                     f"the saved artifact does not load and predict through ctloop.model.load_model: "
                     f"{type(exc).__name__}: {exc}")
    if proba.shape != (n,) or not np.all(np.isfinite(proba)) or np.any((proba < 0) | (proba > 1)):
        return Check("infra_load_predict", float(proba.size), float(n), False,
                     f"the saved artifact predicted {proba.shape} values, expected {n} probabilities "
                     f"in [0, 1]")
    return Check("infra_load_predict", float(n), float(n), True,
                 f"the saved artifact loads through ctloop.model.load_model and predicts {n} sample rows")


def fast_path_check(model_dir: str | Path, model: LoadedModel, test: pd.DataFrame,
                    cfg: InfraCheckConfig) -> dict[str, Any]:
    """Run the compiled path and the reference path on the holdout; say whether the fast path may serve.

    Never fails the gate: a model without a usable fast path is registered and served on the reference
    path, and the returned verdict (recorded in the decision) says why.
    """
    from ctloop.fastpath.artifact import fast_path_status, load_fast, max_delta

    status = fast_path_status(model_dir)
    verdict: dict[str, Any] = {"serve": False, "status": status.get("status"), "max_abs_delta": None,
                               "tolerance": cfg.max_fast_path_delta, "rows": int(len(test))}
    if status.get("status") != "ok":
        verdict["reason"] = (f"no compiled artifact ({status.get('status')}: {status.get('reason', '')}); "
                             "the model is served on the reference path")
        return verdict
    try:
        fast = load_fast(model_dir, model.manifest)
        assert fast is not None
        delta = max_delta(model, fast, test[model.features])
    except Exception as exc:  # a broken fast path leaves the reference path, it does not fail the gate
        verdict["reason"] = f"compiled artifact failed ({type(exc).__name__}: {exc}); served on the reference path"
        return verdict
    verdict["max_abs_delta"] = delta
    if not delta <= cfg.max_fast_path_delta:
        verdict["reason"] = (f"compiled path differs from the reference by max |dP| {delta:.3g} > "
                             f"{cfg.max_fast_path_delta:g} on {len(test)} holdout rows; served on the reference path")
        return verdict
    verdict["serve"] = True
    verdict["reason"] = (f"compiled path ({status.get('kind')}) agrees with the reference: max |dP| {delta:.2g} "
                         f"<= {cfg.max_fast_path_delta:g} on {len(test)} holdout rows")
    return verdict


# -- the decision ----------------------------------------------------------
def decide(
    metrics: dict[str, float],
    gate: GateConfig,
    recent_metrics: dict[str, float] | None = None,
    champion: ChampionEval | None = None,
    extra_checks: list[Check] | None = None,
    extra_notes: list[str] | None = None,
    slices: list[dict[str, Any]] | None = None,
) -> Decision:
    """Combine the absolute, champion and extra (slice, infra) checks into a :class:`Decision`."""
    recent_metrics = recent_metrics or {}
    checks = absolute_checks(metrics, gate)
    notes: list[str] = []
    if gate.beat_champion is None:
        notes.append("champion comparison is off (gate.beat_champion: null): absolute checks only")
    elif champion is None:
        notes.append("no champion yet: only absolute checks apply")
    else:
        checks += champion_checks(metrics, recent_metrics, champion, gate.beat_champion)
        notes.append(f"compared with champion v{champion.version} on the same holdout and recent slice")
    checks += extra_checks or []
    notes += extra_notes or []
    if not checks:
        notes.append("no gate checks configured: the challenger passes by default")
    return Decision(passed=all(c.passed for c in checks), checks=checks, notes=notes, metrics=metrics,
                    recent_metrics=recent_metrics, champion=champion, slices=slices or [])


def evaluate_champion(version: int, model_dir: str | Path, test: pd.DataFrame, recent: pd.DataFrame,
                      target: str) -> ChampionEval:
    """Evaluate the champion on the challenger's rows; a load/predict failure is recorded, not raised."""
    try:
        model = load_model(model_dir)
        return ChampionEval(version, evaluate_model(model, test, target),
                            evaluate_model(model, recent, target))
    except Exception as exc:  # a broken champion must not crash the gate; the comparison fails closed
        return ChampionEval(version, error=f"{type(exc).__name__}: {exc}")


def run_gate(
    gate: GateConfig,
    target: str,
    model_dir: str | Path,
    test: pd.DataFrame,
    recent: pd.DataFrame,
    champion: ChampionEval | tuple[int, str | Path] | None = None,
) -> Decision:
    """Evaluate the challenger (and the champion, on the same rows) and apply every gate check.

    Args:
        gate: The gate policy.
        target: Label column.
        model_dir: The challenger's saved model folder.
        test: The holdout.
        recent: The recent slice (holdout rows of the newest days).
        champion: ``(version, local model folder)`` of the current champion, a ready
            :class:`ChampionEval` (e.g. one recording why it could not be fetched), or ``None``.
    """
    model = load_model(model_dir)
    metrics = evaluate_model(model, test, target)
    recent_metrics = evaluate_model(model, recent, target)
    champ = None
    if isinstance(champion, ChampionEval):
        champ = champion
    elif champion is not None and gate.beat_champion is not None:
        champ = evaluate_champion(champion[0], champion[1], test, recent, target)
    extra, notes, table = slice_checks(model, test, target, gate.slices)
    fast = None
    if gate.infra.enabled:
        features = [c for c in model.features if c in test.columns]
        extra.append(infra_check(model_dir, test[features], gate.infra))
        if len(features) == len(model.features):
            fast = fast_path_check(model_dir, model, test, gate.infra)
            notes.append(f"fast path: {fast['reason']}")
    if recent.empty:
        notes.append("the recent slice is empty (no holdout rows in the newest data.recent_days days)")
    decision = decide(metrics, gate, recent_metrics, champ, extra, notes, table)
    decision.fast_path = fast
    return decision
