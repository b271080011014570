"""Evaluation metrics and the gate decision."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ctloop.config import GateConfig
from ctloop.model import LoadedModel

METRICS = ("roc_auc", "accuracy", "log_loss")


def compute_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """roc_auc, accuracy and log_loss of positive-class probabilities ``proba``.

    roc_auc is NaN when ``y_true`` holds a single class.
    """
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y = np.asarray(y_true).astype(int)
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
    return compute_metrics(frame[target].to_numpy(), model.predict_proba(frame))


@dataclass
class Check:
    """One gate check with its value, threshold and outcome."""

    name: str
    value: float
    threshold: float
    passed: bool
    reason: str


@dataclass
class Decision:
    """The gate's decision: every check, and whether the challenger passes."""

    passed: bool
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks], "notes": self.notes}

    def markdown(self) -> str:
        """A Markdown table of the checks."""
        head = f"**Gate: {'PASSED' if self.passed else 'REJECTED'}**\n\n"
        rows = ["| check | value | threshold | result | reason |", "|---|---|---|---|---|"]
        for c in self.checks:
            rows.append(f"| {c.name} | {c.value:.4f} | {c.threshold:.4f} | "
                        f"{'pass' if c.passed else 'FAIL'} | {c.reason} |")
        notes = "".join(f"\n- {n}" for n in self.notes)
        return head + "\n".join(rows) + ("\n" + notes if notes else "") + "\n"


def decide(metrics: dict[str, float], gate: GateConfig) -> Decision:
    """Apply the absolute bounds of ``gate`` to holdout ``metrics``."""
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
    notes = ["absolute checks only (champion comparison not configured)"]
    if not checks:
        notes.append("no gate bounds configured: the challenger passes by default")
    return Decision(passed=all(c.passed for c in checks), checks=checks, notes=notes)
