"""Estimated performance without labels (confidence-based performance estimation, the CBPE idea).

Given calibrated probabilities ``c_i = P(y_i = 1)`` for a window of predictions, the expected confusion
matrix follows row by row: a row predicted 1 is a true positive with probability ``c_i``, a row predicted
0 is a true negative with probability ``1 - c_i``. Expected accuracy is the mean of those probabilities;
expected ROC AUC integrates the expected TPR against the expected FPR over the score-ordered rows, as
NannyML's CBPE does. The estimate assumes P(label | score) is what it was on the holdout: it holds under
covariate shift but cannot see concept drift, which is why realized performance exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctloop.errors import DataError
from ctloop.quality.calibration import Calibration, apply_calibration

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """Expected metrics of one window, with 95% bands.

    Attributes:
        rows: Predictions in the window.
        values: Metric name (``accuracy``, ``roc_auc``) → expected value.
        bands: Metric name → (low, high): where the realized value should fall if the calibration holds.
    """

    rows: int
    values: dict[str, float]
    bands: dict[str, tuple[float, float]]


def expected_accuracy(calibrated: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Expected accuracy and its standard deviation (sum of independent Bernoulli outcomes).

    Args:
        calibrated: Calibrated P(class 1) per row.
        predicted: The label the model predicted per row (0/1).
    """
    c = np.asarray(calibrated, dtype=float)
    right = np.where(np.asarray(predicted) == 1, c, 1.0 - c)
    n = right.size
    return float(right.mean()), float(np.sqrt(np.sum(right * (1.0 - right))) / n)


def expected_roc_auc(scores: np.ndarray, calibrated: np.ndarray) -> float:
    """Expected ROC AUC: rows ranked by score, expected TPR/FPR from the calibrated probabilities.

    Returns NaN when the window is expected to hold (almost) only one class.
    """
    s = np.asarray(scores, dtype=float)
    c = np.asarray(calibrated, dtype=float)
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    # rows with tied scores move together: take the last index of each run of equal scores
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(c)[last]
    fp = np.cumsum(1.0 - c)[last]
    if tp[-1] <= 1e-9 or fp[-1] <= 1e-9:
        return float("nan")
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _auc_sd(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982) standard error of an AUC with the expected class counts."""
    if not np.isfinite(auc) or positives < 1 or negatives < 1:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return float(np.sqrt(max(var, 0.0)))


def estimate_window(
    scores: np.ndarray, calibration: Calibration | None, threshold: float = 0.5
) -> Estimate:
    """Expected accuracy and ROC AUC of one window of predictions, without labels.

    Args:
        scores: The model's P(class 1) for each prediction in the window.
        calibration: The serving version's calibration (``None``: the scores are taken as calibrated).
        threshold: The score at or above which the model predicts 1.

    Raises:
        DataError: An empty window or scores that are not finite probabilities.
    """
    s = np.asarray(scores, dtype=float).ravel()
    if s.size == 0:
        raise DataError("estimate: the window holds no predictions")
    if not np.all(np.isfinite(s)) or np.any((s < 0) | (s > 1)):
        raise DataError("estimate: scores must be finite probabilities in [0, 1]")
    c = apply_calibration(calibration, s)
    acc, acc_sd = expected_accuracy(c, (s >= threshold).astype(int))
    auc = expected_roc_auc(s, c)
    auc_sd = _auc_sd(auc, float(c.sum()), float((1 - c).sum()))
    bands = {"accuracy": (max(0.0, acc - Z95 * acc_sd), min(1.0, acc + Z95 * acc_sd))}
    if np.isfinite(auc_sd):
        bands["roc_auc"] = (max(0.0, auc - Z95 * auc_sd), min(1.0, auc + Z95 * auc_sd))
    return Estimate(int(s.size), {"accuracy": acc, "roc_auc": auc}, bands)
