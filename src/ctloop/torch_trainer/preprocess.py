"""Fitted preprocessing for the MLP: numeric impute + standardise, categorical vocabulary indices.

Pure numpy and JSON-serialisable, so the exact transform fitted on the training split travels inside
the model folder (``model.json``) and serving cannot skew from training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ctloop.errors import ModelError


@dataclass
class Preprocessor:
    """Numeric medians/means/stds and categorical vocabularies (index 0 = unknown or missing)."""

    numeric: list[str]
    categorical: list[str]
    medians: list[float]
    means: list[float]
    stds: list[float]
    vocabularies: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Preprocessor:
        """Fit on a prepared frame (numeric float64, categorical strings)."""
        medians, means, stds = [], [], []
        for c in numeric:
            v = frame[c].to_numpy(dtype="float64")
            finite = v[np.isfinite(v)]
            med = float(np.median(finite)) if finite.size else 0.0
            filled = np.where(np.isfinite(v), v, med)
            std = float(filled.std())
            medians.append(med)
            means.append(float(filled.mean()) if filled.size else 0.0)
            stds.append(std if std > 1e-12 else 1.0)
        vocab = {c: sorted(str(x) for x in frame[c].unique()) for c in categorical}
        return cls(list(numeric), list(categorical), medians, means, stds, vocab)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes (vocabulary + the unknown index)."""
        return [len(self.vocabularies[c]) + 1 for c in self.categorical]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(numeric float32 [n, k], categorical int64 [n, m])`` arrays."""
        try:
            num = frame[self.numeric].to_numpy(dtype="float64") if self.numeric else np.zeros((len(frame), 0))
        except KeyError as exc:
            raise ModelError(f"input is missing feature column(s): {exc}") from exc
        med = np.asarray(self.medians)
        num = np.where(np.isfinite(num), num, med)
        num = ((num - np.asarray(self.means)) / np.asarray(self.stds)).astype("float32")
        cats = np.zeros((len(frame), len(self.categorical)), dtype="int64")
        for j, c in enumerate(self.categorical):
            index = pd.Index(self.vocabularies[c])
            codes = index.get_indexer(frame[c].astype(str))
            cats[:, j] = codes + 1  # -1 (unknown) -> 0
        return np.ascontiguousarray(num), cats

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        """Rebuild from :meth:`to_dict`."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"model.json: bad torch preprocessing block ({exc})") from exc
