"""KServe payload-logger events → rows and predictions.

KServe's logger (and ctloop's model server) posts one CloudEvent per request and per response, in
binary mode (``ce-*`` headers, JSON body) or structured mode (``application/cloudevents+json``);
batched mode (``application/cloudevents-batch+json``, a JSON array of structured events) is accepted
too. ``ce-type`` is ``org.kubeflow.serving.inference.request`` or ``...response``; request and response
share ``ce-id``. Bodies are V1 (``{"instances": [...]}`` as records or rows → ``{"predictions": [...]}``)
or V2 (``{"inputs": [{"name", "shape", "datatype", "data"}]}`` → ``{"outputs": [...]}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_dict, from_http

from ctloop.errors import EventError

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
SMALL_RECORDS = 256
PROBABILITY_OUTPUTS = ("probability", "probabilities", "proba", "predict_proba", "output-0")


@dataclass
class PayloadEvent:
    """One parsed payload event."""

    id: str
    kind: Literal["request", "response"]
    model: str | None
    rows: int = 0
    columns: dict[str, Any] = field(default_factory=dict)
    predictions: np.ndarray | None = None
    ids: list[str] | None = None
    labels: np.ndarray | None = None
    version: int | None = None


def parse_events(headers: Mapping[str, str], body: bytes, numeric: Sequence[str],
                 categorical: Sequence[str], extra: Sequence[str] = (),
                 id_column: str = "id") -> list[PayloadEvent]:
    """Parse an HTTP delivery (binary, structured or batched CloudEvents) into payload events.

    Args:
        headers: The HTTP request headers.
        body: The raw body.
        numeric: The model's numeric features (row-format inputs are ordered numeric, then categorical).
        categorical: The model's categorical features.
        extra: More columns to pick from requests when present (the gate's slice columns).
        id_column: The row id input (``data.id_column``), accepted and ignored in requests.

    Raises:
        EventError: Naming what is wrong (missing ``ce-*`` attribute, bad JSON, unknown body layout ...).
    """
    h = {k.lower(): v for k, v in headers.items()}
    features = list(numeric) + list(categorical)
    extras = [c for c in dict.fromkeys(extra) if c not in features]
    if h.get("content-type", "").split(";")[0].strip().lower() == BATCH_CONTENT_TYPE:
        try:
            items = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EventError(f"batched CloudEvents: body is not JSON ({exc})") from exc
        if not isinstance(items, list):
            raise EventError("batched CloudEvents: body must be a JSON array of events")
        events = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise EventError(f"batched CloudEvents: item {i} is not an object")
            try:
                events.append(from_dict(item))
            except GenericException as exc:
                raise EventError(f"batched CloudEvents: item {i}: {exc}") from exc
        return [_to_payload(e, features, len(numeric), extras, id_column) for e in events]
    if "ce-id" not in h and "application/cloudevents" not in h.get("content-type", ""):
        raise EventError("not a CloudEvent: missing ce-id header (binary mode) and not "
                         "application/cloudevents+json (structured mode)")
    try:
        event = from_http(h, body)
    except GenericException as exc:
        raise EventError(f"invalid CloudEvent: {exc}") from exc
    return [_to_payload(event, features, len(numeric), extras, id_column)]


def _to_payload(event: CloudEvent, features: list[str], n_numeric: int, extras: list[str],
                id_column: str) -> PayloadEvent:
    ctype = event.get("type")
    eid = str(event.get("id") or "")
    if not eid:
        raise EventError("CloudEvent has an empty id (ce-id)")
    model = event.get("inferenceservicename")
    data = event.data
    if isinstance(data, bytes | bytearray | str):
        try:
            data = json.loads(data) if data else None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EventError(f"event {eid}: body is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EventError(f"event {eid}: body must be a JSON object, got {type(data).__name__}")
    if ctype == REQUEST_TYPE:
        rows, cols = request_columns(data, features, n_numeric, eid, extras, id_column)
        return PayloadEvent(eid, "request", model, rows=rows, columns=cols)
    if ctype == RESPONSE_TYPE:
        preds = response_predictions(data, eid)
        ids, labels, version = response_extras(data, int(preds.size), eid)
        return PayloadEvent(eid, "response", model, rows=int(preds.size), predictions=preds, ids=ids,
                            labels=labels, version=version)
    raise EventError(f"event {eid}: unsupported ce-type {ctype!r} (expected {REQUEST_TYPE!r} or "
                     f"{RESPONSE_TYPE!r})")


def request_columns(body: dict[str, Any], features: list[str], n_numeric: int,
                    where: str = "request", extras: Sequence[str] = (),
                    id_column: str = "id") -> tuple[int, dict[str, Any]]:
    """Rows of a V1 or V2 request body as ``(row count, {feature: values})``.

    Records and named V2 inputs also give the ``extras`` columns when present; the ``id_column`` input
    of a V2 request is accepted and left out.

    Raises:
        EventError: When the layout is not V1/V2 or does not match the model's features.
    """
    if "instances" in body:
        inst = body["instances"]
        if not isinstance(inst, list):
            raise EventError(f"{where}: 'instances' must be a list")
        if not inst:
            return 0, {}
        if all(isinstance(r, dict) for r in inst):
            if len(inst) <= SMALL_RECORDS:  # a frame costs more than it saves on a few rows
                cols = {c: [r.get(c) for r in inst] for c in features}
                for c in extras:
                    if c in inst[0]:
                        cols[c] = [r.get(c) for r in inst]
                return len(inst), cols
            frame = pd.DataFrame.from_records(inst)
            return len(inst), {c: frame[c].to_numpy() for c in [*features, *extras] if c in frame.columns}
        if all(isinstance(r, list) for r in inst):
            return _rows(inst, features, where)
        raise EventError(f"{where}: 'instances' must be all objects (records) or all lists (rows)")
    if "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
            raise EventError(f"{where}: V2 'inputs' must be a list of tensors "
                             "({'name', 'shape', 'datatype', 'data'})")
        named = {str(t.get("name")): t for t in inputs if t.get("name") != id_column}
        allowed = {*features, *extras}
        if named and set(named) <= allowed:
            tensors: dict[str, Any] = {}
            rows = None
            for name, t in named.items():
                arr = _tensor(t, where)
                if arr.ndim == 2 and arr.shape[1] == 1:
                    arr = arr[:, 0]
                if arr.ndim != 1:
                    raise EventError(f"{where}: V2 input {name!r} must have shape [rows] or [rows, 1]")
                if rows is not None and arr.shape[0] != rows:
                    raise EventError(f"{where}: V2 input {name!r} has {arr.shape[0]} rows, others {rows}")
                rows = arr.shape[0]
                tensors[name] = arr
            return int(rows or 0), tensors
        if len(named) == 1:
            only = next(iter(named.values()))
            arr = _tensor(only, where)
            if arr.ndim == 2 and arr.shape[1] == len(features):
                return _rows(arr, features, where)
            raise EventError(f"{where}: V2 input {only.get('name')!r} must have shape "
                             f"[rows, {len(features)}] (features {features})")
        unknown = sorted(set(named) - set(features))
        raise EventError(f"{where}: V2 inputs {unknown} are not model features {features}")
    raise EventError(f"{where}: body has neither V1 'instances' nor V2 'inputs'")


def response_predictions(body: dict[str, Any], where: str = "response") -> np.ndarray:
    """Positive-class scores of a V1 or V2 response body (1-D float array).

    Raises:
        EventError: When the layout is not V1/V2 or the predictions are not numbers.
    """
    if "predictions" in body:
        raw = body["predictions"]
        if not isinstance(raw, list):
            raise EventError(f"{where}: 'predictions' must be a list")
        arr = _numbers(raw, where, "predictions")
    elif "outputs" in body:
        outs = body["outputs"]
        if not isinstance(outs, list) or not outs or not all(isinstance(t, dict) for t in outs):
            raise EventError(f"{where}: V2 'outputs' must be a non-empty list of tensors")
        chosen = next((t for n in PROBABILITY_OUTPUTS for t in outs if t.get("name") == n), outs[0])
        arr = _tensor(chosen, where)
        if arr.dtype.kind not in "fiub":
            arr = _numbers(arr.tolist(), where, f"output {chosen.get('name')!r}")
    else:
        raise EventError(f"{where}: body has neither V1 'predictions' nor V2 'outputs'")
    if arr.ndim == 2 and arr.shape[1] in (1, 2):
        arr = arr[:, -1]
    if arr.ndim != 1:
        raise EventError(f"{where}: predictions must be one score per row (or [p0, p1] pairs)")
    return arr.astype(float)


def response_extras(body: dict[str, Any], rows: int,
                    where: str = "response") -> tuple[list[str] | None, np.ndarray | None, int | None]:
    """Prediction ids, predicted labels and model version of a V1/V2 response, each ``None`` when absent.

    Raises:
        EventError: When ids or labels are present but do not hold one value per row.
    """
    ids: Any = None
    labels: Any = None
    if "predictions" in body:
        ids, labels = body.get("ids"), body.get("labels")
    else:
        for t in body.get("outputs") or []:
            if isinstance(t, dict) and t.get("name") == "id":
                ids = t.get("data")
            elif isinstance(t, dict) and t.get("name") == "label":
                labels = t.get("data")
    if ids is not None:
        if not isinstance(ids, list) or len(ids) != rows:
            raise EventError(f"{where}: 'ids' must hold one id per prediction ({rows})")
        ids = [str(i) for i in ids]
    if labels is not None:
        if not isinstance(labels, list) or len(labels) != rows:
            raise EventError(f"{where}: 'labels' must hold one label per prediction ({rows})")
        labels = _numbers(labels, where, "labels").astype("int64")
    raw = body.get("model_version")
    version = int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None
    return ids, labels, version


def _rows(rows: Any, features: list[str], where: str) -> tuple[int, dict[str, Any]]:
    try:
        arr = np.asarray(rows, dtype=object)
    except ValueError as exc:
        raise EventError(f"{where}: rows have different lengths ({exc})") from exc
    if arr.ndim != 2 or arr.shape[1] != len(features):
        raise EventError(f"{where}: each row must hold {len(features)} values in the model's feature "
                         f"order {features}")
    return int(arr.shape[0]), {f: arr[:, j] for j, f in enumerate(features)}


def _tensor(t: dict[str, Any], where: str) -> np.ndarray:
    name, shape, data = t.get("name"), t.get("shape"), t.get("data")
    if not (isinstance(data, list) and isinstance(shape, list) and all(isinstance(s, int) for s in shape)):
        raise EventError(f"{where}: V2 tensor {name!r} needs an integer 'shape' list and a 'data' list")
    numeric = str(t.get("datatype", "")).upper() not in ("BYTES", "")
    try:
        arr = np.asarray(data, dtype=float if numeric else object)
        return arr.reshape(shape)
    except (ValueError, TypeError) as exc:
        raise EventError(f"{where}: V2 tensor {name!r}: data does not fit shape {shape} "
                         f"with datatype {t.get('datatype')!r} ({exc})") from exc


def _numbers(raw: list[Any], where: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray(raw, dtype=float)
    except (ValueError, TypeError) as exc:
        raise EventError(f"{where}: {what} must be numbers ({exc})") from exc
    return arr
