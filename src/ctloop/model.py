"""Model artifacts: one folder holding the fitted pipeline (transforms included) and its manifest.

The model server and the evaluation gate load models through :func:`load_model`, so what is evaluated
is exactly what is served.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ctloop.errors import ModelError

MODEL_FORMAT = "ctloop-model/v1"
MANIFEST = "model.json"


class Predictor(Protocol):
    """What a trainer's fitted object must offer."""

    def predict_proba(self, frame: pd.DataFrame) -> Any: ...


@dataclass
class LoadedModel:
    """A model ready to predict, with the features it expects."""

    manifest: dict[str, Any]
    predictor: Any

    @functools.cached_property
    def _features(self) -> tuple[list[Any], dict[str, list[str]]]:
        from ctloop.features import from_doc

        return from_doc(self.manifest.get("features"))

    @property
    def derived_features(self) -> list[str]:
        """Columns the model computes from its inputs with the declared features (``ctloop.features``)."""
        return list((self.manifest.get("features") or {}).get("outputs", []))

    @property
    def numeric_features(self) -> list[str]:
        """Numeric input columns (what a request carries; derived features excluded)."""
        derived = set(self.derived_features)
        return [c for c in self.manifest["numeric_features"] if c not in derived]

    @property
    def categorical_features(self) -> list[str]:
        """Categorical input columns."""
        return list(self.manifest["categorical_features"])

    @property
    def features(self) -> list[str]:
        """All input columns in order."""
        return self.numeric_features + self.categorical_features

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Compute the declared features, then select and type the columns the fitted model takes."""
        specs, state = self._features
        if specs:
            from ctloop.features import apply

            frame = apply(frame, specs, state)
        return prepare_frame(frame, list(self.manifest["numeric_features"]), self.categorical_features)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class per row."""
        proba = np.asarray(self.predictor.predict_proba(self.prepare(frame)))
        return proba[:, 1] if proba.ndim == 2 else proba

    def predict(self, frame: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        """Predicted label per row."""
        return (self.predict_proba(frame) >= threshold).astype("int64")


def prepare_frame(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Return the feature columns with numeric as float64 and categorical as object strings."""
    missing = [c for c in numeric + categorical if c not in frame.columns]
    if missing:
        raise ModelError(f"input is missing feature column(s) {missing}")
    out = pd.DataFrame(index=frame.index)
    for c in numeric:
        out[c] = pd.to_numeric(frame[c], errors="raise").astype("float64")
    for c in categorical:
        col = frame[c].astype("object")
        out[c] = col.where(col.notna(), "__missing__").astype(str)
    return out


def save_model(predictor: Any, manifest: dict[str, Any], out_dir: str | Path) -> Path:
    """Write a model folder: ``model.joblib`` and ``model.json``."""
    import joblib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(predictor, out / "model.joblib")
    full = {"format": MODEL_FORMAT, **manifest}
    (out / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True))
    return out


def load_model(model_dir: str | Path) -> LoadedModel:
    """Load a model folder written by :func:`save_model`.

    Raises:
        ModelError: When the folder, manifest or artifact is missing or corrupt.
    """
    import joblib

    d = Path(model_dir)
    man_path = d / MANIFEST
    try:
        manifest = json.loads(man_path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"{man_path}: model manifest not found") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{man_path}: corrupt model manifest ({exc})") from exc
    if manifest.get("format") != MODEL_FORMAT:
        raise ModelError(f"{man_path}: unsupported model format {manifest.get('format')!r}")
    trainer = manifest.get("trainer", "sklearn")
    if trainer == "torch":
        from ctloop.torch_trainer.artifact import load_torch_predictor

        return LoadedModel(manifest=manifest, predictor=load_torch_predictor(d, manifest))
    if trainer != "sklearn":
        raise ModelError(f"{man_path}: no loader for trainer {trainer!r}")
    try:
        predictor = joblib.load(d / "model.joblib")
    except Exception as exc:  # joblib raises many types on corrupt pickles
        raise ModelError(f"{d / 'model.joblib'}: cannot load model artifact ({exc})") from exc
    return LoadedModel(manifest=manifest, predictor=predictor)
