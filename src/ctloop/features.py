"""Declared derived features (``features:`` in ``ctloop.yaml``): one pure function, :func:`apply`, used by
the pipeline's features step, the trainers (through the model), the model server, the drift watcher and
the backtest, so training and serving compute them identically.

A feature is a transform from a small vocabulary (``log1p``, ``ratio``, ``clip``, ``bucketize``,
``one_hot_top_k``, ``date_part``, ``is_missing``); no user code is evaluated. ``one_hot_top_k`` learns
its categories from the training split (:func:`fit`); that state travels with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctloop.config import FeatureSpec
from ctloop.errors import ConfigError

FEATURES_FORMAT = "ctloop-features/v1"
State = dict[str, list[str]]  # one_hot_top_k feature name -> its categories, most frequent first


def check_spec(specs: Sequence[FeatureSpec], columns: Sequence[str], target: str) -> None:
    """Refuse features over unknown columns, clashing names or the target (exit code 2, naming them).

    Raises:
        ConfigError: Naming ``features[i].field`` and the bad column or name.
    """
    known = set(columns)
    seen: set[str] = set()
    for i, f in enumerate(specs):
        for field in ("column", "numerator", "denominator"):
            col = getattr(f, field)
            if col is None:
                continue
            if col == target:
                raise ConfigError(f"features[{i}].{field}: {col!r} is the target; a feature cannot read the label")
            if col not in known:
                raise ConfigError(f"features[{i}].{field}: unknown column {col!r}; columns are {sorted(known)}")
        if f.name in known or f.name in seen or f.name == target:
            raise ConfigError(f"features[{i}].name: {f.name!r} clashes with an existing column or feature")
        seen.add(f.name)


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")


def fit(frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> State:
    """Learn what some transforms need from the training split: ``one_hot_top_k``'s categories."""
    state: State = {}
    for f in specs:
        if f.transform == "one_hot_top_k":
            counts = frame[str(f.column)].dropna().astype(str).value_counts()
            top = counts.sort_index().sort_values(ascending=False, kind="stable")  # ties: alphabetical
            state[f.name] = [str(c) for c in top.index[: int(f.k or 1)]]
    return state


def output_names(specs: Sequence[FeatureSpec], state: State) -> list[str]:
    """The derived columns :func:`apply` adds, in order (all numeric)."""
    out: list[str] = []
    for f in specs:
        if f.transform == "one_hot_top_k":
            out += [f"{f.name}={c}" for c in state.get(f.name, [])]
        else:
            out.append(f.name)
    return out


def _date_part(values: pd.Series, part: str) -> np.ndarray:
    t = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    acc = t.dt.isocalendar().day - 1 if part == "dayofweek" else getattr(t.dt, part)
    return pd.to_numeric(acc, errors="coerce").to_numpy(dtype="float64")


def _one(frame: pd.DataFrame, f: FeatureSpec, state: State) -> dict[str, np.ndarray]:
    t = f.transform
    if t == "log1p":
        x = _numeric(frame, str(f.column))
        with np.errstate(invalid="ignore", divide="ignore"):
            return {f.name: np.where(x > -1, np.log1p(np.where(x > -1, x, 0.0)), np.nan)}
    if t == "ratio":
        num, den = _numeric(frame, str(f.numerator)), _numeric(frame, str(f.denominator))
        with np.errstate(invalid="ignore", divide="ignore"):
            return {f.name: np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)}
    if t == "clip":
        x = _numeric(frame, str(f.column))
        return {f.name: np.clip(x, f.min if f.min is not None else -np.inf, f.max if f.max is not None else np.inf)}
    if t == "bucketize":
        x = _numeric(frame, str(f.column))
        idx = np.searchsorted(np.asarray(f.boundaries, dtype="float64"), x, side="right").astype("float64")
        return {f.name: np.where(np.isnan(x), np.nan, idx)}
    if t == "is_missing":
        return {f.name: frame[str(f.column)].isna().to_numpy().astype("float64")}
    if t == "date_part":
        return {f.name: _date_part(frame[str(f.column)], str(f.part))}
    values = frame[str(f.column)].astype("object")
    text = values.where(values.notna(), None).map(lambda v: None if v is None else str(v))
    return {f"{f.name}={c}": (text == c).to_numpy().astype("float64") for c in state.get(f.name, [])}


def apply(frame: pd.DataFrame, specs: Sequence[FeatureSpec], state: State | None = None) -> pd.DataFrame:
    """``frame`` with the declared features added as float64 columns (a new frame; inputs untouched).

    Missing inputs give a missing derived value (NaN), except ``is_missing`` (1.0) and ``one_hot_top_k``
    (0.0 in every column). Without features the frame is returned as it is.
    """
    if not specs:
        return frame
    state = state or {}
    missing = sorted({c for f in specs for c in f.inputs() if c not in frame.columns})
    if missing:
        raise ConfigError(f"features: input column(s) {missing} are missing from the data")
    added: dict[str, np.ndarray] = {}
    for f in specs:
        added.update(_one(frame, f, state))
    return pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)


def to_doc(specs: Sequence[FeatureSpec], state: State) -> dict[str, Any]:
    """The JSON form saved with the feature table and in the model folder."""
    return {"format": FEATURES_FORMAT, "specs": [s.model_dump(mode="json", exclude_none=True) for s in specs],
            "state": state, "outputs": output_names(specs, state)}


def from_doc(doc: dict[str, Any] | None) -> tuple[list[FeatureSpec], State]:
    """Specs and state back from :func:`to_doc`'s form (``None``: no features)."""
    if not doc:
        return [], {}
    if doc.get("format") != FEATURES_FORMAT:
        raise ConfigError(f"features: unsupported format {doc.get('format')!r}")
    return [FeatureSpec.model_validate(s) for s in doc.get("specs", [])], dict(doc.get("state", {}))
