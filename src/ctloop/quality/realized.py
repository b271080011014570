"""Realized performance: pure functions of (P(class 1), predicted label, true label).

Each metric is one function on small arrays, with the edge cases made explicit: an empty window gives
``nan`` for every metric, a window with a single class gives ``nan`` ROC AUC (undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

EPS = 1e-15
METRICS = ("accuracy", "roc_auc", "log_loss", "positive_rate")


def accuracy(predicted: np.ndarray, label: np.ndarray) -> float:
    """Share of rows whose predicted label equals the true label."""
    return float(np.mean(predicted == label)) if len(label) else float("nan")


def roc_auc(proba: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); ``nan`` with one class."""
    pos = int(np.sum(label == 1))
    neg = len(label) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(proba)
    return float((ranks[label == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_loss(proba: np.ndarray, label: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (probabilities clipped to [1e-15, 1 - 1e-15])."""
    if not len(label):
        return float("nan")
    p = np.clip(proba, EPS, 1 - EPS)
    return float(-np.mean(label * np.log(p) + (1 - label) * np.log(1 - p)))


def positive_rate(predicted: np.ndarray) -> float:
    """Share of rows predicted positive."""
    return float(np.mean(predicted == 1)) if len(predicted) else float("nan")


def realized_metrics(proba: np.ndarray, predicted: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Accuracy, ROC AUC, log loss and positive rate of one window."""
    return {"accuracy": accuracy(predicted, label), "roc_auc": roc_auc(proba, label),
            "log_loss": log_loss(proba, label), "positive_rate": positive_rate(predicted)}


def slice_metrics(proba: np.ndarray, predicted: np.ndarray, label: np.ndarray,
                  slices: Sequence[dict[str, str]], min_rows: int) -> dict[str, dict[str, float]]:
    """Realized metrics per ``column=value`` slice, for slices with at least ``min_rows`` rows.

    Args:
        proba: P(class 1) per row.
        predicted: Predicted label per row.
        label: True label per row.
        slices: ``{column: value}`` per row (the gate's slice columns).
        min_rows: Smaller slices are left out.
    """
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(slices):
        for col, value in s.items():
            if value is not None:
                groups.setdefault(f"{col}={value}", []).append(i)
    out = {}
    for key in sorted(groups):
        idx = np.asarray(groups[key])
        if len(idx) >= min_rows:
            out[key] = realized_metrics(proba[idx], predicted[idx], label[idx])
    return out
