"""Threshold calibration: bootstrap reference-vs-reference at the window size.

Under "no drift" both the reference profile and a live window are multinomial samples from the same
distribution. We draw both (reference with the profile's row count, window with the window's row
count) from the reference shares, score them, and take the ``1 - false_alarm_rate`` quantile. This
accounts for the noise of the reference itself, which a one-sample bootstrap would ignore.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ctloop.drift.stats import proportions

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray | float]


def bootstrap_threshold(
    reference_counts: np.ndarray,
    reference_rows: int,
    window_rows: int,
    statistic: Statistic,
    false_alarm_rate: float,
    samples: int = 2000,
    seed: int = 0,
) -> float:
    """Score quantile that a clean window of ``window_rows`` rows exceeds with ``false_alarm_rate``.

    Args:
        reference_counts: One feature's reference counts (1-D).
        reference_rows: Rows behind the reference (its own sampling noise is simulated too).
        window_rows: Rows in a live window.
        statistic: A function of ``(expected, actual)`` count arrays, vectorised over rows.
        false_alarm_rate: Wanted share of clean windows above the threshold, in (0, 1).
        samples: Bootstrap draws.
        seed: Random seed (calibration is deterministic).
    """
    p = proportions(np.asarray(reference_counts, dtype=float))
    if p.sum() <= 0:
        return 0.0
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    ref = rng.multinomial(max(int(reference_rows), 1), p, size=samples).astype(float)
    win = rng.multinomial(int(window_rows), p, size=samples).astype(float)
    scores = np.asarray(statistic(ref, win), dtype=float)
    return float(np.quantile(scores, 1.0 - false_alarm_rate, method="higher"))
