"""Reference profile: a small, versioned, JSON-serialisable summary of the training data.

Computed in one vectorised pass and saved inside every model folder (``profile.json``). The data
validation gate and the drift watcher both compare new data against it, using the same binning
functions defined here.

Format ``ctloop-profile/v1``::

    {"format", "rows", "target", "label_balance": {"0": share, "1": share},
     "numeric": {col: {"dtype", "missing_share", "min", "max", "edges": [interior edges], "counts"}},
     "categorical": {col: {"missing_share", "vocabulary": [...], "counts": [... per value, OTHER]}}}

A numeric feature with ``len(edges) == k`` has ``k + 1`` bins: ``(-inf, e0], (e0, e1], ... (e_k-1, inf)``.
A categorical feature's last count is the OTHER bucket (values outside the vocabulary).

Optional fields (absent in older files, ``None`` when unknown): ``duplicate_share`` (share of rows
that repeat an earlier row, all columns but ``date``). Readers must ignore fields they do not know
only by upgrading the format; v1 stays readable by every v1 reader.

Format ``ctloop-profile/v2`` adds ``calibration``: the probability calibration fitted on the holdout at
training time (:class:`ctloop.quality.calibration.Calibration`; ``None`` until the pipeline fits it).
Both formats load; saving writes v2 (a v1 file loads with ``calibration = None``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ctloop.errors import ModelError
from ctloop.quality.calibration import Calibration

PROFILE_FORMAT: Literal["ctloop-profile/v2"] = "ctloop-profile/v2"
PROFILE_FORMATS = ("ctloop-profile/v1", "ctloop-profile/v2")
PROFILE_FILE = "profile.json"
OTHER = "__other__"


class NumericProfile(BaseModel):
    """One numeric feature."""

    model_config = ConfigDict(extra="forbid")

    dtype: str
    missing_share: float
    min: float | None
    max: float | None
    edges: list[float]
    counts: list[int]


class CategoricalProfile(BaseModel):
    """One categorical feature (vocabulary + OTHER bucket)."""

    model_config = ConfigDict(extra="forbid")

    missing_share: float
    vocabulary: list[str]
    counts: list[int]


class Profile(BaseModel):
    """The reference profile of a training set."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ctloop-profile/v1", "ctloop-profile/v2"] = PROFILE_FORMAT
    rows: int
    target: str
    label_balance: dict[str, float]
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    duplicate_share: float | None = None
    calibration: Calibration | None = None

    def save(self, path: str | Path) -> Path:
        """Write as JSON in the current format (a file, or ``profile.json`` inside a folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / PROFILE_FILE
        p.write_text(self.model_copy(update={"format": PROFILE_FORMAT}).model_dump_json(indent=1))
        return p

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read from a file or from ``profile.json`` inside a folder."""
        p = Path(path)
        if p.is_dir():
            p = p / PROFILE_FILE
        try:
            return cls.model_validate(json.loads(p.read_text()))
        except FileNotFoundError as exc:
            raise ModelError(f"{p}: reference profile not found") from exc
        except (json.JSONDecodeError, ValueError) as exc:
            raise ModelError(f"{p}: invalid reference profile ({exc})") from exc


def numeric_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Interior quantile edges of ``values`` (finite, non-missing), de-duplicated."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.array([], dtype=float)
    qs = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def bin_numeric(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Counts of non-missing ``values`` per bin defined by interior ``edges`` (len(edges)+1 bins)."""
    e = np.asarray(edges, dtype=float)
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    idx = np.searchsorted(e, v, side="left")
    return np.bincount(idx, minlength=e.size + 1)


def bin_categorical(values: pd.Series | np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """Counts of non-missing ``values`` per vocabulary entry, then the OTHER bucket."""
    s = pd.Series(values)
    s = s[s.notna()].astype(str)
    codes = pd.Categorical(s, categories=vocabulary).codes  # -1 for values outside the vocabulary
    codes = np.where(codes < 0, len(vocabulary), codes)
    return np.bincount(codes, minlength=len(vocabulary) + 1)


def duplicate_share(frame: pd.DataFrame, exclude: tuple[str, ...] = ("date",)) -> float:
    """Share of rows that repeat an earlier row (``exclude`` columns ignored).

    One 64-bit hash per row, combined column by column (no copy of the frame), then one sort.
    """
    cols = [c for c in frame.columns if c not in exclude]
    n = len(frame)
    if n == 0 or not cols:
        return 0.0
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:
            hc = pd.util.hash_pandas_object(frame[c], index=False).to_numpy(dtype=np.uint64)
            h = (h * np.uint64(0x100000001B3)) ^ hc
    h.sort()
    return float(np.count_nonzero(h[1:] == h[:-1]) / n)


def _bin_index(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value, as ``np.searchsorted(edges, v, side="left")`` (NaN excluded by caller).

    For the usual handful of edges, counting ``v > edge`` is several times faster than a binary search.
    """
    if edges.size > 32:
        return np.searchsorted(edges, v, side="left")
    idx = np.zeros(v.size, dtype=np.uint8)
    for e in edges:
        idx += v > e
    return idx


def _numeric_values(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def profile_numeric(
    column: pd.Series, bins: int = 10, edges: list[float] | np.ndarray | None = None
) -> NumericProfile:
    """Profile one numeric column; bin on ``edges`` when given (a reference's), else on its own quantiles."""
    v = _numeric_values(column)
    finite_mask = np.isfinite(v)
    finite = v[finite_mask] if not finite_mask.all() else v
    e = numeric_edges(finite, bins) if edges is None else np.asarray(edges, dtype=float)
    nan = np.isnan(v)
    counts = np.bincount(_bin_index(v[~nan] if nan.any() else v, e), minlength=e.size + 1)
    n = v.size
    return NumericProfile(
        dtype=str(column.dtype),
        missing_share=float(np.count_nonzero(nan) / n) if n else 0.0,
        min=float(finite.min()) if finite.size else None,
        max=float(finite.max()) if finite.size else None,
        edges=e.tolist(),
        counts=counts.tolist(),
    )


def profile_categorical(
    column: pd.Series, max_vocabulary: int = 50, vocabulary: list[str] | None = None
) -> CategoricalProfile:
    """Profile one categorical column; count on ``vocabulary`` when given, else on its own top values.

    Gives the same counts as :func:`bin_categorical` (values compared as strings), from one
    ``value_counts`` pass.
    """
    n = len(column)
    if isinstance(column.dtype, pd.CategoricalDtype):  # counts straight from the codes (no string work)
        codes = column.cat.codes.to_numpy()
        missing = int(np.count_nonzero(codes < 0))
        counts = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories))
        vc = pd.Series(counts, index=column.cat.categories.map(str))
    else:
        missing = int(column.isna().sum())
        vc = column.value_counts(dropna=True, sort=False)
        vc.index = vc.index.map(str)
    if not vc.index.is_unique:  # e.g. 1 and "1" both present: compared as strings they are one value
        vc = vc.groupby(level=0, sort=False).sum()
    if vocabulary is None:
        vc = vc[vc > 0].sort_values(ascending=False, kind="stable")
        vocabulary = [str(x) for x in vc.index[:max_vocabulary]]
    known = vc.reindex(vocabulary, fill_value=0).to_numpy(dtype="int64")
    other = int(vc.sum()) - int(known.sum())
    return CategoricalProfile(
        missing_share=missing / n if n else 0.0,
        vocabulary=list(vocabulary),
        counts=[*known.tolist(), other],
    )


def as_categories(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with its string ``columns`` as ``category`` dtype (one factorize pass each), so later
    counting, null checks and hashing work on integer codes. Other columns are shared, not copied."""

    def stringy(c: str) -> bool:
        d = frame[c].dtype
        return not isinstance(d, pd.CategoricalDtype) and (
            pd.api.types.is_string_dtype(d) or pd.api.types.is_object_dtype(d))

    todo = [c for c in columns if c in frame.columns and stringy(c)]
    if not todo:
        return frame
    out = frame.copy(deep=False)
    for c in todo:
        out[c] = out[c].astype("category")
    return out


def compute_profile(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    target: str,
    bins: int = 10,
    max_vocabulary: int = 50,
    reference: Profile | None = None,
    duplicates: bool = True,
) -> Profile:
    """Profile ``frame`` in one vectorised pass per column.

    Args:
        frame: The data.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        target: Label column (its class shares go to ``label_balance``).
        bins: Quantile bins per numeric feature (ignored for features binned on ``reference``).
        max_vocabulary: Most frequent values kept per categorical feature; the rest count as OTHER.
        reference: When given, features it knows are binned on its edges / vocabulary, so the
            counts line up bin for bin with the reference (how a batch is compared to a champion).
        duplicates: Also compute ``duplicate_share`` (one row-hash pass).
    """
    frame = as_categories(frame, categorical)
    nums: dict[str, NumericProfile] = {}
    for c in numeric:
        ref = reference.numeric.get(c) if reference else None
        nums[c] = profile_numeric(frame[c], bins, ref.edges if ref else None)
    cats: dict[str, CategoricalProfile] = {}
    for c in categorical:
        cref = reference.categorical.get(c) if reference else None
        cats[c] = profile_categorical(frame[c], max_vocabulary, cref.vocabulary if cref else None)
    balance = {}
    if target in frame:
        shares = frame[target].value_counts(normalize=True)
        balance = {str(k): float(v) for k, v in shares.items()}
    return Profile(rows=len(frame), target=target, label_balance=balance, numeric=nums, categorical=cats,
                   duplicate_share=_feature_duplicates(frame, numeric, categorical, target) if duplicates else None)


def _feature_duplicates(frame: pd.DataFrame, numeric: list[str], categorical: list[str], target: str) -> float:
    """Duplicate share over the features and the label only: a row id (unique by design) never counts."""
    keep = {*numeric, *categorical, target}
    return duplicate_share(frame, exclude=tuple(c for c in frame.columns if c not in keep))

