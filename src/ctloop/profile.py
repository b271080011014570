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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ctloop.errors import ModelError

PROFILE_FORMAT: Literal["ctloop-profile/v1"] = "ctloop-profile/v1"
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

    format: Literal["ctloop-profile/v1"] = PROFILE_FORMAT
    rows: int
    target: str
    label_balance: dict[str, float]
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]

    def save(self, path: str | Path) -> Path:
        """Write as JSON (a file, or ``profile.json`` inside a folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / PROFILE_FILE
        p.write_text(self.model_dump_json(indent=1))
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


def compute_profile(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    target: str,
    bins: int = 10,
    max_vocabulary: int = 50,
) -> Profile:
    """Profile ``frame`` in one vectorised pass per column."""
    n = len(frame)
    nums: dict[str, NumericProfile] = {}
    for c in numeric:
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        finite = v[np.isfinite(v)]
        edges = numeric_edges(v, bins)
        nums[c] = NumericProfile(
            dtype=str(frame[c].dtype),
            missing_share=float(np.isnan(v).mean()) if n else 0.0,
            min=float(finite.min()) if finite.size else None,
            max=float(finite.max()) if finite.size else None,
            edges=edges.tolist(),
            counts=bin_numeric(v, edges).tolist(),
        )
    cats: dict[str, CategoricalProfile] = {}
    for c in categorical:
        s = frame[c]
        vc = s.dropna().astype(str).value_counts()
        vocab = [str(x) for x in vc.index[:max_vocabulary]]
        cats[c] = CategoricalProfile(
            missing_share=float(s.isna().mean()) if n else 0.0,
            vocabulary=vocab,
            counts=bin_categorical(s, vocab).tolist(),
        )
    balance = {}
    if target in frame:
        shares = frame[target].value_counts(normalize=True)
        balance = {str(k): float(v) for k, v in shares.items()}
    return Profile(rows=n, target=target, label_balance=balance, numeric=nums, categorical=cats)
