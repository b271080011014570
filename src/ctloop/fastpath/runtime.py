"""Predict from compiled arrays on typed columns: no pandas, float64 comparisons like the reference path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from ctloop.errors import FastPathError

MISSING = "__missing__"  # what ctloop.model.prepare_frame puts in place of a missing category


class FastModel:
    """A compiled model: ``predict_proba(columns)`` gives P(class 1) per row.

    Args:
        arrays: What :mod:`ctloop.fastpath.compile` produced (or ``fast.npz`` holds).
        numeric: Numeric feature names in the model's order.
        categorical: Categorical feature names in the model's order.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], numeric: list[str], categorical: list[str]) -> None:
        try:
            self.kind = str(arrays["kind"])
            self.medians = np.asarray(arrays["medians"], dtype="float64")
            self.means = np.asarray(arrays["means"], dtype="float64")
            self.scales = np.asarray(arrays["scales"], dtype="float64")
            vocabs = [list(arrays[f"vocab_{j}"]) for j in range(len(categorical))]
            self.a = {k: np.asarray(arrays[k]) for k in arrays}
        except KeyError as exc:
            raise FastPathError(f"compiled model lacks array {exc}") from exc
        if self.kind not in ("trees", "linear", "mlp"):
            raise FastPathError(f"unknown compiled model kind {self.kind!r}")
        if len(self.medians) != len(numeric) or len(self.scales) != len(numeric):
            raise FastPathError(f"compiled numeric transform has {len(self.medians)} features, "
                                f"the model has {len(numeric)}")
        self.numeric = numeric
        self.categorical = categorical
        # one-hot/embedding offset per category value; unknown values map to -1 (trees/linear) or 0 (mlp)
        base = 1 if self.kind == "mlp" else 0
        self.index = [{str(v): i + base for i, v in enumerate(vocab)} for vocab in vocabs]
        self.widths = [len(v) for v in vocabs]

    def _numeric(self, columns: Mapping[str, Any], n: int) -> np.ndarray:
        if not self.numeric:
            return np.zeros((n, 0))
        num = np.column_stack([np.asarray(columns[c], dtype="float64") for c in self.numeric])
        bad = ~np.isfinite(num) if self.kind == "mlp" else np.isnan(num)
        if bad.any():
            num = np.where(bad, self.medians, num)
        return (num - self.means) / self.scales

    def _codes(self, columns: Mapping[str, Any], n: int) -> np.ndarray:
        unknown = 0 if self.kind == "mlp" else -1
        codes = np.empty((n, len(self.categorical)), dtype="int64")
        for j, c in enumerate(self.categorical):
            idx = self.index[j]
            codes[:, j] = [idx.get(MISSING if v is None else str(v), unknown) for v in columns[c]]
        return codes

    def _design(self, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Numeric block then one-hot blocks, as the ColumnTransformer lays them out."""
        n = len(num)
        out = np.zeros((n, num.shape[1] + sum(self.widths)))
        out[:, :num.shape[1]] = num
        start = num.shape[1]
        rows = np.arange(n)
        for j, w in enumerate(self.widths):
            hit = codes[:, j] >= 0
            out[rows[hit], start + codes[hit, j]] = 1.0
            start += w
        return out

    def _trees(self, x: np.ndarray) -> np.ndarray:
        """Walk every tree one level per step for all rows at once (leaves point to themselves)."""
        a = self.a
        feature, threshold, left, right = a["feature"], a["threshold"], a["left"], a["right"]
        n, width = x.shape
        idx = np.tile(a["roots"], (n, 1))
        flat = x.ravel()
        offsets = (np.arange(n) * width)[:, None]
        missing = bool(np.isnan(flat).any())
        for _ in range(int(a["depth"])):
            v = flat.take(offsets + feature.take(idx))
            go_left = v <= threshold.take(idx)
            if missing:
                go_left = np.where(np.isnan(v), a["missing_left"].take(idx), go_left)
            idx = np.where(go_left, left.take(idx), right.take(idx))
        return np.asarray(expit(a["value"].take(idx).sum(axis=1) + float(a["baseline"])), dtype="float64")

    def _mlp(self, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        a = self.a
        parts = [num.astype("float32")] + [a[f"emb_{j}"][codes[:, j]] for j in range(len(self.categorical))]
        h = np.concatenate(parts, axis=1)
        layers = int(a["layers"])
        for i in range(layers):
            h = h @ a[f"w_{i}"] + a[f"b_{i}"]
            if i < layers - 1:
                np.maximum(h, 0, out=h)
        return np.asarray(expit(h[:, 0].astype("float64")), dtype="float64")

    def predict_proba(self, columns: Mapping[str, Any]) -> np.ndarray:
        """P(class 1) per row from ``{feature: values}`` (numeric: numbers/NaN; categorical: str or None)."""
        first: Sequence[Any] = columns[(self.numeric or self.categorical)[0]]
        n = len(first)
        num = self._numeric(columns, n)
        codes = self._codes(columns, n)
        if self.kind == "mlp":
            return self._mlp(num, codes)
        x = self._design(num, codes)
        if self.kind == "linear":
            return np.asarray(expit(x @ self.a["coef"] + float(self.a["intercept"])), dtype="float64")
        return self._trees(x)
