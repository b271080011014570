"""Drift statistics: one pure function per statistic, over count vectors (last axis = bins).

Every function accepts 1-D count vectors or stacked 2-D arrays (one row per feature; rows may be
zero-padded to a common width, padded bins contribute nothing) and returns a float or an array.
They are effect sizes, not p-values: their size does not grow with the number of rows.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-4


def proportions(counts: np.ndarray) -> np.ndarray:
    """Counts → shares along the last axis (an all-zero row stays all zero)."""
    c = np.asarray(counts, dtype=float)
    total = c.sum(axis=-1, keepdims=True)
    return np.divide(c, total, out=np.zeros_like(c), where=total > 0)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> np.ndarray | float:
    """Population stability index ``sum((a - e) * ln(a / e))`` with shares clipped below at ``eps``.

    Args:
        expected: Reference counts (or shares).
        actual: Window counts (or shares), same shape.
        eps: Floor for empty bins, so an empty reference bin gives a large but finite score.
    """
    e = np.maximum(proportions(expected), eps)
    a = np.maximum(proportions(actual), eps)
    out = np.sum((a - e) * np.log(a / e), axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def js_distance(expected: np.ndarray, actual: np.ndarray) -> np.ndarray | float:
    """Jensen–Shannon distance (base 2, in [0, 1]): the square root of the JS divergence."""
    p, q = proportions(expected), proportions(actual)
    m = 0.5 * (p + q)

    def kl(x: np.ndarray) -> np.ndarray:
        ratio = np.divide(x, m, out=np.ones_like(x), where=(x > 0) & (m > 0))
        return np.sum(x * np.log2(ratio), axis=-1)

    out = np.sqrt(np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0))
    return float(out) if np.ndim(out) == 0 else out


def unseen_share(actual: np.ndarray, other_bin: int | np.ndarray) -> np.ndarray | float:
    """Share of non-missing window values that fell in the OTHER (outside-vocabulary) bin.

    Args:
        actual: Window counts laid out as ``[vocabulary..., OTHER, missing]``.
        other_bin: Index of the OTHER bin (per row for 2-D input).
    """
    a = np.asarray(actual, dtype=float)
    if a.ndim == 1:
        present = a[:-1].sum()
        return float(a[int(other_bin)] / present) if present > 0 else 0.0
    idx = np.asarray(other_bin, dtype=int)
    other = a[np.arange(a.shape[0]), idx]
    present = a.sum(axis=-1) - a[np.arange(a.shape[0]), idx + 1]
    return np.divide(other, present, out=np.zeros_like(other), where=present > 0)


def missing_share_change(expected_missing_share: np.ndarray | float, missing: np.ndarray | float,
                         rows: np.ndarray | float) -> np.ndarray | float:
    """Window missing share minus the reference missing share (signed; 0 for an empty window)."""
    m, n = np.asarray(missing, dtype=float), np.asarray(rows, dtype=float)
    share = np.divide(m, n, out=np.zeros_like(m), where=n > 0)
    out = share - np.asarray(expected_missing_share, dtype=float)
    return float(out) if np.ndim(out) == 0 else out
