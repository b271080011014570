"""The reference side of drift: features, bins and counts taken from a model's reference profile.

Bin layout per feature (one row of a padded ``(features, bins)`` matrix):

* numeric: the profile's ``len(edges) + 1`` bins, then a **missing** bin;
* categorical: the vocabulary, the OTHER bin, then a **missing** bin.

Binning is vectorised per column and agrees exactly with :func:`ctloop.profile.bin_numeric` and
:func:`ctloop.profile.bin_categorical` (same edges, same ``side="left"`` rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctloop.errors import EventError
from ctloop.profile import Profile


@dataclass(frozen=True)
class Reference:
    """Binned reference distribution of a model's input features."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    edges: tuple[np.ndarray, ...]
    vocabularies: tuple[tuple[str, ...], ...]
    counts: np.ndarray  # (features, bins), zero-padded
    n_bins: np.ndarray  # bins used per feature (including the missing bin)
    rows: int
    missing_share: np.ndarray  # per feature
    label_balance: Mapping[str, float]

    @property
    def features(self) -> tuple[str, ...]:
        """All features: numeric first, then categorical (the model's column order)."""
        return self.numeric + self.categorical

    @property
    def width(self) -> int:
        """Padded number of bins."""
        return int(self.counts.shape[1])

    @property
    def missing_bin(self) -> np.ndarray:
        """Index of each feature's missing bin."""
        return self.n_bins - 1

    @classmethod
    def from_profile(cls, profile: Profile, numeric: Sequence[str] | None = None,
                     categorical: Sequence[str] | None = None) -> Reference:
        """Build from a profile, optionally restricted/ordered by the model's feature lists.

        Raises:
            DriftError: When the profile lacks a model feature or its counts do not match its bins.
        """
        from ctloop.errors import DriftError

        num = list(numeric) if numeric is not None else list(profile.numeric)
        cat = list(categorical) if categorical is not None else list(profile.categorical)
        absent = [c for c in num if c not in profile.numeric] + [c for c in cat if c not in profile.categorical]
        if absent:
            raise DriftError(f"reference profile has no entry for model feature(s) {absent}; "
                             "retrain so the model folder carries a matching profile.json")
        rows_counts: list[np.ndarray] = []
        edges, vocabs, miss = [], [], []
        for c in num:
            p = profile.numeric[c]
            e = np.asarray(p.edges, dtype=float)
            cnt = np.asarray(p.counts, dtype=float)
            if cnt.size != e.size + 1:
                raise DriftError(f"reference profile: numeric feature {c!r} has {cnt.size} counts for "
                                 f"{e.size} edges (expected {e.size + 1})")
            edges.append(e)
            rows_counts.append(np.append(cnt, max(profile.rows - cnt.sum(), 0.0)))
            miss.append(p.missing_share)
        for c in cat:
            p = profile.categorical[c]
            cnt = np.asarray(p.counts, dtype=float)
            if cnt.size != len(p.vocabulary) + 1:
                raise DriftError(f"reference profile: categorical feature {c!r} has {cnt.size} counts for "
                                 f"{len(p.vocabulary)} values (expected vocabulary + OTHER)")
            vocabs.append(tuple(p.vocabulary))
            rows_counts.append(np.append(cnt, max(profile.rows - cnt.sum(), 0.0)))
            miss.append(p.missing_share)
        n_bins = np.array([r.size for r in rows_counts], dtype=int)
        width = int(n_bins.max()) if n_bins.size else 1
        counts = np.zeros((len(rows_counts), width))
        for i, r in enumerate(rows_counts):
            counts[i, : r.size] = r
        return cls(tuple(num), tuple(cat), tuple(edges), tuple(vocabs), counts, n_bins, profile.rows,
                   np.asarray(miss, dtype=float), dict(profile.label_balance))

    def bin_indices(self, columns: Mapping[str, np.ndarray | Sequence[object]], rows: int) -> np.ndarray:
        """Bin index of every value: an ``(rows, features)`` int matrix (no per-row Python).

        A feature absent from ``columns`` counts as missing in every row.

        Raises:
            EventError: When a numeric feature holds a value that is not a number.
        """
        out = np.empty((rows, len(self.features)), dtype=np.int64)
        for j, name in enumerate(self.numeric):
            col = columns.get(name)
            if col is None:
                out[:, j] = self.n_bins[j] - 1
                continue
            v = _as_float(col, name)
            if v.shape[0] != rows:
                raise EventError(f"feature {name!r}: {v.shape[0]} values for {rows} rows")
            idx = np.searchsorted(self.edges[j], v, side="left")
            idx[np.isnan(v)] = self.n_bins[j] - 1
            out[:, j] = idx
        base = len(self.numeric)
        for k, name in enumerate(self.categorical):
            j = base + k
            col = columns.get(name)
            if col is None:
                out[:, j] = self.n_bins[j] - 1
                continue
            s = pd.Series(np.asarray(col, dtype=object))
            if len(s) != rows:
                raise EventError(f"feature {name!r}: {len(s)} values for {rows} rows")
            missing = s.isna().to_numpy()
            vocab = self.vocabularies[k]
            if pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
                s = s.astype(str)  # numbers sent for a categorical feature compare as text
            codes = pd.Categorical(s, categories=list(vocab)).codes.astype(np.int64)
            codes[codes < 0] = len(vocab)
            codes[missing] = len(vocab) + 1
            out[:, j] = codes
        return out

    def count(self, indices: np.ndarray) -> np.ndarray:
        """Counts per feature and bin for a block of bin indices (one ``bincount`` call)."""
        f = indices.shape[1]
        flat = (indices + np.arange(f, dtype=np.int64) * self.width).ravel()
        return np.bincount(flat, minlength=f * self.width).reshape(f, self.width).astype(float)


def _as_float(col: np.ndarray | Sequence[object], name: str) -> np.ndarray:
    arr = np.asarray(col)
    if arr.dtype.kind in "fiub":
        return arr.astype(float, copy=False)
    try:
        return pd.to_numeric(pd.Series(arr, dtype=object), errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise EventError(f"feature {name!r}: expected numbers ({exc})") from exc
