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
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ctloop.errors import EventError
from ctloop.profile import Profile


@dataclass(frozen=True, eq=False)
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
        absent = [c for c in num if c not in profile.numeric]
        absent += [c for c in cat if c not in profile.categorical]
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
            cp = profile.categorical[c]
            cnt = np.asarray(cp.counts, dtype=float)
            if cnt.size != len(cp.vocabulary) + 1:
                raise DriftError(f"reference profile: categorical feature {c!r} has {cnt.size} counts for "
                                 f"{len(cp.vocabulary)} values (expected vocabulary + OTHER)")
            vocabs.append(tuple(cp.vocabulary))
            rows_counts.append(np.append(cnt, max(profile.rows - cnt.sum(), 0.0)))
            miss.append(cp.missing_share)
        n_bins = np.array([r.size for r in rows_counts], dtype=int)
        width = int(n_bins.max()) if n_bins.size else 1
        counts = np.zeros((len(rows_counts), width))
        for i, r in enumerate(rows_counts):
            counts[i, : r.size] = r
        return cls(tuple(num), tuple(cat), tuple(edges), tuple(vocabs), counts, n_bins, profile.rows,
                   np.asarray(miss, dtype=float), dict(profile.label_balance))

    def prepare(self, columns: Mapping[str, np.ndarray | Sequence[object]], rows: int) -> Batch:
        """Validate and type a batch of rows (columns by feature name) for counting.

        A feature absent from ``columns`` counts as missing in every row. All checks happen here, so
        a bad batch is refused before any of it is counted.

        Raises:
            EventError: When a column has the wrong length or a numeric feature holds a non-number.
        """
        numeric: list[np.ndarray | None] = []
        for name in self.numeric:
            col = columns.get(name)
            v = None if col is None else _as_float(col, name)
            if v is not None and v.shape[0] != rows:
                raise EventError(f"feature {name!r}: {v.shape[0]} values for {rows} rows")
            numeric.append(v)
        codes: list[np.ndarray | DictCodes | None] = []
        for k, name in enumerate(self.categorical):
            col = columns.get(name)
            if col is None:
                codes.append(None)
                continue
            index = self._vocab_index[k]
            size = len(self.vocabularies[k])
            if _is_arrow(col):  # Arrow strings: dictionary-encoded in C++, no Python str per value
                arrow_codes = _arrow_codes(col, self._vocab_pos[k], size)
                if len(arrow_codes) != rows:
                    raise EventError(f"feature {name!r}: {len(arrow_codes)} values for {rows} rows")
                codes.append(arrow_codes)
                continue
            if isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
                # pandas categoricals (e.g. dictionary-encoded parquet): remap the few categories,
                # then gather by code (code -1 = missing → the last lookup entry)
                cat = pd.Categorical(col)
                if len(cat) != rows:
                    raise EventError(f"feature {name!r}: {len(cat)} values for {rows} rows")
                lut = index.get_indexer(cat.categories.astype(str))
                lut = np.append(np.where(lut < 0, size, lut), size + 1)
                codes.append(lut[cat.codes])
                continue
            arr = np.asarray(col, dtype=object)
            if arr.ndim != 1:
                raise EventError(f"feature {name!r}: expected one text or number value per row, got shape "
                                 f"{arr.shape}")
            if arr.shape[0] != rows:
                raise EventError(f"feature {name!r}: {arr.shape[0]} values for {rows} rows")
            if rows <= SMALL_SLICE // 32:  # a few values: dictionary lookups beat an index's overhead
                pos = self._vocab_pos[k]
                values = arr.tolist()
                if any(isinstance(v, dict | list) for v in values):
                    raise EventError(f"feature {name!r}: expected one text or number value per row, got a "
                                     "nested object or list")
                codes.append(np.array([_code(v, pos, size) for v in values], dtype=np.intp))
                continue
            try:
                c = index.get_indexer(arr)
            except TypeError as exc:  # unhashable values (objects, lists) are not categories
                raise EventError(f"feature {name!r}: expected one text or number value per row, got a "
                                 f"nested object or list ({exc})") from None
            unknown = np.flatnonzero(c < 0)
            if unknown.size:  # only values outside the vocabulary need a second look
                rest = arr[unknown]
                missing = pd.isna(rest)
                # numbers sent for a categorical feature compare as text
                text = rest.astype(str)
                text[missing] = None
                as_text = index.get_indexer(text)
                c[unknown] = np.where(missing, size + 1, np.where(as_text < 0, size, as_text))
            codes.append(c)
        return Batch(self, rows, numeric, codes)

    def count_columns(self, columns: Mapping[str, np.ndarray | Sequence[object]], rows: int) -> np.ndarray:
        """Counts per feature and bin of a whole batch (``(features, width)``)."""
        return self.prepare(columns, rows).counts(0, rows)

    @cached_property
    def search_edges(self) -> tuple[np.ndarray, ...]:
        """Numeric edges with a final ``+inf`` edge (for ``searchsorted``)."""
        return tuple(np.append(e, np.inf) for e in self.edges)

    @cached_property
    def _vocab_pos(self) -> tuple[dict[str, int], ...]:
        return tuple({v: i for i, v in enumerate(vocab)} for vocab in self.vocabularies)

    @cached_property
    def _vocab_index(self) -> tuple[pd.Index, ...]:
        return tuple(pd.Index(list(v), dtype=object) for v in self.vocabularies)


def _code(value: object, pos: dict[str, int], size: int) -> int:
    """Bin of one categorical value: its vocabulary position, OTHER (``size``) or missing (``size + 1``)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return size + 1
    return pos.get(value if isinstance(value, str) else str(value), size)


def _is_arrow(col: object) -> bool:
    """A pyarrow Array/ChunkedArray, or a pandas column backed by one (``string[pyarrow]``, ArrowDtype)."""
    if type(col).__module__.startswith("pyarrow"):
        return True
    dtype = getattr(col, "dtype", None)
    return isinstance(dtype, pd.ArrowDtype) or getattr(dtype, "storage", None) in ("pyarrow", "pyarrow_numpy")


class DictCodes:
    """Bin codes of a dictionary-encoded column kept as ``(indices, lookup)``: a row range is counted by
    a bincount over the small integer indices, then mapped through the lookup (no per-row gather)."""

    def __init__(self, indices: np.ndarray, lut: np.ndarray) -> None:
        self.indices, self.lut = indices, lut

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def bincount(self, a: int, b: int, bins: int) -> np.ndarray:
        """Counts per bin of rows ``a:b``."""
        per_value = np.bincount(self.indices[a:b], minlength=self.lut.size)
        return np.bincount(self.lut, weights=per_value, minlength=bins)


def _arrow_codes(col: object, pos: dict[str, int], size: int) -> DictCodes:
    """Bin codes of an Arrow string column via ``pyarrow.compute.dictionary_encode`` (or the column's own
    dictionary): the values are hashed in C++, and only the (few) distinct values meet the vocabulary."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr: Any = col if type(col).__module__.startswith("pyarrow") else pa.array(col)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.unify_dictionaries().combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    values = arr.dictionary.cast(pa.string()).to_pylist()
    lut = np.array([*(pos.get(v, size) for v in values), size + 1], dtype=np.intp)  # last: missing (null)
    indices = pc.fill_null(arr.indices, len(values)).to_numpy(zero_copy_only=False)
    return DictCodes(indices, lut)


def _as_float(col: np.ndarray | Sequence[object], name: str) -> np.ndarray:
    if _is_arrow(col):
        import pyarrow as pa

        arr = col if type(col).__module__.startswith("pyarrow") else pa.array(col)
        try:
            col = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[union-attr]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise EventError(f"feature {name!r}: expected numbers ({exc})") from exc
    try:
        arr = np.asarray(col)
    except ValueError as exc:  # ragged nested lists
        raise EventError(f"feature {name!r}: expected one number per row ({exc})") from exc
    if arr.ndim != 1:
        raise EventError(f"feature {name!r}: expected one number per row, got shape {arr.shape}")
    if arr.dtype.kind in "fiub":
        return arr.astype(float, copy=False)
    try:
        return pd.to_numeric(pd.Series(arr, dtype=object), errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise EventError(f"feature {name!r}: expected numbers ({exc})") from exc


SMALL_SLICE = 2048
BLOCK = 65536


def _count_above(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``[count(x > e) for e in edges]``, block by block so each block is compared while in cache."""
    acc = np.zeros(edges.size, dtype=np.int64)
    flags = np.empty(min(BLOCK, x.size), dtype=bool)
    for a in range(0, x.size, BLOCK):
        xb = x[a : a + BLOCK]
        fb = flags[: xb.size]
        for i, e in enumerate(edges):
            np.greater(xb, e, out=fb)
            acc[i] += np.count_nonzero(fb)
    return acc


class Batch:
    """A validated batch of rows; :meth:`counts` bins any row range of it with whole-array operations."""

    def __init__(self, ref: Reference, rows: int, numeric: list[np.ndarray | None],
                 codes: list[np.ndarray | DictCodes | None]) -> None:
        self.ref, self.rows, self.numeric, self.codes = ref, rows, numeric, codes

    def counts(self, a: int, b: int) -> np.ndarray:
        """Counts per feature and bin of rows ``a:b``, shape ``(features, width)``."""
        ref, n = self.ref, b - a
        out = np.zeros((len(ref.features), ref.width))
        for j, v in enumerate(self.numeric):
            if v is None:
                out[j, ref.n_bins[j] - 1] = n
                continue
            x = v[a:b]
            if n <= SMALL_SLICE:
                # +inf edge: infinities stay in the last value bin, NaN sorts after it (missing bin)
                idx = np.searchsorted(ref.search_edges[j], x, side="left")
                out[j, : ref.n_bins[j]] = np.bincount(idx, minlength=ref.n_bins[j])
                continue
            # large slices: vectorised comparisons per edge beat a binary search per value;
            # count(x > e_i) is the number of values right of edge i (side="left" semantics)
            missing = int(np.count_nonzero(np.isnan(x)))
            right = np.array([n - missing, *_count_above(x, ref.edges[j]), 0])
            out[j, : ref.n_bins[j] - 1] = right[:-1] - right[1:]
            out[j, ref.n_bins[j] - 1] = missing
        base = len(ref.numeric)
        for k, c in enumerate(self.codes):
            j = base + k
            if c is None:
                out[j, ref.n_bins[j] - 1] = n
            elif isinstance(c, DictCodes):
                out[j, : ref.n_bins[j]] = c.bincount(a, b, int(ref.n_bins[j]))
            else:
                out[j, : ref.n_bins[j]] = np.bincount(c[a:b], minlength=ref.n_bins[j])
        return out
