"""The ``kserve.Model`` serving a ctloop model, with atomic hot-swap guarded by a smoke prediction."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.errors import ModelError
from ctloop.fastpath.runtime import FastModel
from ctloop.model import LoadedModel, load_model
from ctloop.serving._kserve import import_kserve
from ctloop.serving.decode import columns_from_v1, columns_from_v2, ids_from_v1, ids_from_v2, request_id_of
from ctloop.serving.fast import load_fast_checked
from ctloop.serving.metrics import ServingMetrics

import_kserve()

from kserve import InferOutput, InferRequest, InferResponse, Model  # noqa: E402
from kserve.errors import InvalidInput  # noqa: E402

log = logging.getLogger("ctloop.serving")


@dataclass(frozen=True)
class Served:
    """What is being served: the loaded model, its registry version (or None) and where it came from."""

    model: LoadedModel
    version: int | None
    source: str
    fast: FastModel | None = None


def smoke_frame(model: LoadedModel, model_dir: str | Path) -> pd.DataFrame:
    """A few plausible rows built from the model folder's ``profile.json`` (or neutral values)."""
    from ctloop.profile import PROFILE_FILE, Profile

    path = Path(model_dir) / PROFILE_FILE
    prof = Profile.load(path) if path.is_file() else None
    data: dict[str, list[Any]] = {}
    for c in model.numeric_features:
        n = prof.numeric.get(c) if prof else None
        lo = n.min if n and n.min is not None else 0.0
        hi = n.max if n and n.max is not None else lo
        data[c] = [lo, (lo + hi) / 2, hi]
    for c in model.categorical_features:
        k = prof.categorical.get(c) if prof else None
        vocab = list(k.vocabulary) if k and k.vocabulary else ["__missing__"]
        data[c] = [vocab[0], vocab[-1], None]
    return pd.DataFrame(data)


def load_checked(model_dir: str | Path) -> LoadedModel:
    """Load a model folder and run a smoke prediction; raise :class:`ModelError` if either fails."""
    model = load_model(model_dir)
    try:
        frame = smoke_frame(model, model_dir)
        proba = np.asarray(model.predict_proba(frame), dtype="float64")
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{model_dir}: smoke prediction failed ({type(exc).__name__}: {exc}); "
                         "the model was not swapped in") from exc
    if proba.shape != (len(frame),) or not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
        raise ModelError(f"{model_dir}: smoke prediction returned {proba!r}, not one probability per row")
    return model


class CtloopModel(Model):
    """Serves one ctloop model over V1 and V2; :meth:`swap` replaces it atomically.

    Every prediction has an id: the instance's ``id_column`` value when present, else
    ``<request id>-<row index>`` (request id from ``ce-id`` / ``x-request-id`` or a fresh UUID).
    """

    def __init__(self, name: str, metrics: ServingMetrics, threshold: float = 0.5, id_column: str = "id",
                 max_fast_path_delta: float = 1e-5) -> None:
        super().__init__(name)
        self.metrics = metrics
        self.threshold = threshold
        self.id_column = id_column
        self.max_fast_path_delta = max_fast_path_delta
        self._served: Served | None = None
        self._swap_lock = threading.Lock()

    @property
    def served(self) -> Served:
        """The current model (raises if none is loaded yet)."""
        if self._served is None:
            raise ModelError(f"model {self.name!r}: nothing loaded")
        return self._served

    def swap(self, model_dir: str | Path, version: int | None) -> bool:
        """Load ``model_dir`` beside the current model, smoke-test it, then swap it in.

        Returns:
            True when swapped; False when the candidate was refused (the old model keeps serving,
            the failure is logged and counted).
        """
        with self._swap_lock:
            try:
                candidate = load_checked(model_dir)
                fast, why = load_fast_checked(candidate, model_dir, self.max_fast_path_delta)
            except Exception as exc:  # any failure refuses the candidate
                self.metrics.swap_failures.inc()
                log.error("refused model version %s from %s: %s (still serving version %s)", version,
                          model_dir, exc, self._served.version if self._served else None)
                return False
            old = self._served
            self._served = Served(candidate, version, str(model_dir), fast)  # one reference assignment: atomic
            self.metrics.model_version.set(version or 0)
            self.metrics.set_fast_path(version, fast is not None, old.version if old else None)
            self.metrics.swaps.inc()
            self.ready = True
            log.info("serving model %r version %s (was %s)", self.name, version, old.version if old else None)
            if fast is None:
                log.warning("model %r version %s: %s; served on the reference path", self.name, version, why)
            return True

    def load(self) -> bool:
        """Ready once a model has been swapped in."""
        self.ready = self._served is not None
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 input metadata: one named input per feature."""
        m = self.served.model
        return ([{"name": f, "datatype": "FP64", "shape": [-1]} for f in m.numeric_features]
                + [{"name": f, "datatype": "BYTES", "shape": [-1]} for f in m.categorical_features])

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 output metadata: probability of class 1, the label and the prediction id."""
        return [{"name": "probability", "datatype": "FP64", "shape": [-1]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "id", "datatype": "BYTES", "shape": [-1]}]

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:  # type: ignore[override]
        """Predict with the model current at the start of the request (a swap never splits a request)."""
        served, columns = self.decode(payload)
        return self.respond(payload, headers, served, predict_columns(served, columns))

    def decode(self, payload: Any) -> tuple[Served, dict[str, Any]]:
        """The model current now and the request's typed columns (400 on bad input)."""
        served = self.served
        m = served.model
        if isinstance(payload, InferRequest):
            return served, columns_from_v2(payload, m.numeric_features, m.categorical_features, self.id_column)
        return served, columns_from_v1(payload, m.numeric_features, m.categorical_features)

    def respond(self, payload: Any, headers: dict[str, str] | None, served: Served, proba: np.ndarray) -> Any:
        """The V1 or V2 response for ``proba``, naming the version that computed it, with row ids."""
        labels = (proba >= self.threshold).astype("int64")
        version = None if served.version is None else str(served.version)
        n = len(proba)
        rid = request_id_of(headers)
        if isinstance(payload, InferRequest):
            ids = ids_from_v2(payload, self.id_column, rid, n)
            return InferResponse(
                response_id=payload.id or uuid.uuid4().hex, model_name=self.name, model_version=version,
                infer_outputs=[InferOutput("probability", [n], "FP64", proba.tolist()),
                               InferOutput("label", [n], "INT64", labels.tolist()),
                               InferOutput("id", [n], "BYTES", ids)])
        ids = ids_from_v1(payload, self.id_column, rid, n)
        return {"predictions": proba.tolist(), "labels": labels.tolist(), "ids": ids, "model_version": version}


def predict_columns(served: Served, columns: dict[str, Any]) -> np.ndarray:
    """P(class 1) on the fast path when the served model has one, else on the reference path."""
    try:
        if served.fast is not None:
            return served.fast.predict_proba(columns)
        return np.asarray(served.model.predict_proba(pd.DataFrame(columns)), dtype="float64")
    except (ValueError, TypeError, ModelError) as exc:
        raise InvalidInput(f"instances: cannot predict on this input ({exc})") from exc


class BatchingCtloopModel(CtloopModel):
    """:class:`CtloopModel` whose concurrent requests share model calls (``serving.batching``)."""

    def __init__(self, name: str, metrics: ServingMetrics, batcher: Any, **kwargs: Any) -> None:
        super().__init__(name, metrics, **kwargs)
        self.batcher = batcher

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:  # type: ignore[override]
        """Decode, wait for the batch to run, respond with this request's own rows, ids and version."""
        served, columns = self.decode(payload)
        first = next(iter(columns.values()))
        proba = await self.batcher.predict(served, lambda cols: predict_columns(served, cols), columns, len(first))
        return self.respond(payload, headers, served, proba)
