"""Helpers for the drift watcher tests: reference profiles, models in a registry, payload events."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.datagen import CATEGORICAL, NUMERIC, DriftSpec, generate_day
from ctloop.profile import Profile, compute_profile

START = dt.date(2026, 1, 1)
FEATURES = NUMERIC + list(CATEGORICAL)
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def stream(rows: int, seed: int, day: dt.date = START, drift: DriftSpec | None = None) -> pd.DataFrame:
    """Rows of the synthetic stream for one day."""
    return generate_day(day, rows, seed, drift)


def reference_profile(rows: int = 3000, seed: int = 1000) -> Profile:
    """A reference profile like the trainer's (training rows of a clean stream)."""
    frame = pd.concat([stream(rows // 3, seed, START + dt.timedelta(days=i)) for i in range(3)],
                      ignore_index=True)
    return compute_profile(frame, NUMERIC, list(CATEGORICAL), "label")


def columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Feature columns as numpy arrays (how the watcher hands rows to the monitor)."""
    return {c: frame[c].to_numpy(dtype=object if c in CATEGORICAL else float) for c in FEATURES}


def train_model(out: Path, seed: int = 0, drift: DriftSpec | None = None, day: dt.date = START) -> Path:
    """Train a small real ctloop model folder (model.json + model.joblib + profile.json)."""
    from ctloop.project import init_project
    from ctloop.schema import load_schema
    from ctloop.train import train_sklearn

    proj = out.parent / f"{out.name}-project"
    init_project(proj)
    schema = load_schema(proj / "schema.yaml")
    frame = stream(3000, seed, day, drift)
    train_sklearn(frame, schema, {"estimator": "logistic_regression", "max_iter": 200}, seed, out)
    return out


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """V1 ``instances`` records (JSON-safe: NaN → null)."""
    f = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None)
    return f.to_dict(orient="records")


def binary_event(kind: str, body: dict[str, Any], model: str,
                 event_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a KServe-logger binary-mode CloudEvent."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id or uuid.uuid4().hex,
        "ce-type": REQUEST if kind == "request" else RESPONSE,
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": model,
        "ce-namespace": "default",
        "ce-component": "predictor",
        "ce-endpoint": "default",
        "content-type": "application/json",
    }
    return headers, json.dumps(body).encode()
