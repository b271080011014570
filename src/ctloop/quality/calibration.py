"""Probability calibration fitted on the holdout at training time (pure functions).

The calibration maps the model's P(class 1) to a calibrated probability: isotonic regression (as
NannyML's CBPE uses by default), stored as the step function's knots so it is small, JSON-friendly and
applied with one ``np.interp``. It travels inside the model's reference profile (format v2).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctloop.errors import DataError


class Calibration(BaseModel):
    """A monotone map from the model's score to a calibrated P(class 1).

    Attributes:
        method: ``isotonic`` (knots of the fitted step function, linear in between).
        x: Increasing scores (knots).
        y: Calibrated probability at each knot (non-decreasing, within [0, 1]).
        rows: Holdout rows it was fitted on.
        brier_before: Brier score of the raw scores on the holdout.
        brier_after: Brier score of the calibrated probabilities on the holdout.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["isotonic"] = "isotonic"
    x: list[float] = Field(min_length=1)
    y: list[float] = Field(min_length=1)
    rows: int = Field(ge=1)
    brier_before: float | None = None
    brier_after: float | None = None

    @model_validator(mode="after")
    def _knots(self) -> Calibration:
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y must have the same length ({len(self.x)} != {len(self.y)})")
        if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < -1e-12):
            raise ValueError("knots must be non-decreasing in x and y")
        if min(self.y) < 0 or max(self.y) > 1:
            raise ValueError("calibrated probabilities must lie in [0, 1]")
        return self

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for ``scores`` (clipped to the fitted range at the ends)."""
        return apply_calibration(self, scores)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels).ravel()
    if s.size != y.size:
        raise DataError(f"calibration: {s.size} scores but {y.size} labels")
    if s.size < 2:
        raise DataError(f"calibration: needs at least 2 holdout rows, got {s.size}")
    if not np.all(np.isfinite(s)) or np.any((s < 0) | (s > 1)):
        raise DataError("calibration: scores must be finite probabilities in [0, 1]")
    if not np.isin(y, (0, 1)).all():
        raise DataError("calibration: labels must be 0 or 1")
    return s, y.astype(float)


def fit_calibration(scores: np.ndarray, labels: np.ndarray, max_knots: int = 200) -> Calibration:
    """Fit an isotonic calibration of ``scores`` (model P(class 1)) to ``labels`` on a holdout.

    Args:
        scores: The model's probabilities on the holdout.
        labels: The holdout's 0/1 labels.
        max_knots: Keep at most this many knots (evenly spaced by rank), so the profile stays small.

    Raises:
        DataError: Mismatched lengths, fewer than 2 rows, scores outside [0, 1], labels not 0/1.
    """
    from sklearn.isotonic import IsotonicRegression

    s, y = _check(scores, labels)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    xs = np.asarray(iso.X_thresholds_, dtype=float)
    ys = np.asarray(iso.y_thresholds_, dtype=float)
    if xs.size > max_knots:
        keep = np.unique(np.linspace(0, xs.size - 1, max_knots).round().astype(int))
        xs, ys = xs[keep], ys[keep]
    cal = Calibration(x=xs.tolist(), y=np.clip(ys, 0, 1).tolist(), rows=int(s.size))
    return cal.model_copy(update={
        "brier_before": float(np.mean((s - y) ** 2)),
        "brier_after": float(np.mean((cal.apply(s) - y) ** 2)),
    })


def apply_calibration(cal: Calibration | None, scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities; the scores themselves when there is no calibration (old profiles)."""
    s = np.asarray(scores, dtype=float)
    if cal is None:
        return np.clip(s, 0.0, 1.0)
    return np.interp(s, cal.x, cal.y)
