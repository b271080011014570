"""Request decoding: V1 ``instances`` and V2 named inputs into typed columns (or a frame), with errors
naming fields.

Every client mistake raises :class:`kserve.errors.InvalidInput`, which KServe maps to HTTP 400.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ctloop.serving._kserve import import_kserve

import_kserve()

from kserve.errors import InvalidInput  # noqa: E402

_NUMBER = (int, float)
V2_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
              "UINT64"}


def _describe(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text[:40]}"


def _check_numeric(values: list[Any], where: str) -> np.ndarray:
    """``where`` is a template with ``{i}`` for the row index, e.g. ``instances[{i}].age``."""
    for i, v in enumerate(values):
        if v is not None and (type(v) not in _NUMBER):
            raise InvalidInput(f"{where.format(i=i)}: expected a number, got {_describe(v)}")
    return np.asarray(values, dtype="float64")


def _check_categorical(values: list[Any], where: str) -> list[Any]:
    for i, v in enumerate(values):
        if v is not None and type(v) is not str:
            raise InvalidInput(f"{where.format(i=i)}: expected a string, got {_describe(v)}")
    return values


def frame_from_v1(payload: Any, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Turn a V1 body (``instances`` as records or as rows in feature order) into a frame."""
    return pd.DataFrame(columns_from_v1(payload, numeric, categorical))


def columns_from_v1(payload: Any, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """Turn a V1 body into typed columns without pandas: numeric float64 arrays, categorical lists."""
    if isinstance(payload, bytes | str):  # KServe passes non-JSON content types through as bytes
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"body: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"body: expected a JSON object with 'instances', got {type(payload).__name__}")
    if "instances" not in payload:
        raise InvalidInput("instances: missing (a V1 body is {\"instances\": [...]})")
    inst = payload["instances"]
    if not isinstance(inst, list) or not inst:
        raise InvalidInput("instances: expected a non-empty list of records or rows")
    features = numeric + categorical
    cols: dict[str, list[Any]] = {f: [] for f in features}
    if isinstance(inst[0], dict):
        for i, rec in enumerate(inst):
            if not isinstance(rec, dict):
                raise InvalidInput(f"instances[{i}]: expected an object (a record like instances[0]), "
                                   f"got {type(rec).__name__}")
            for f in features:
                try:
                    cols[f].append(rec[f])
                except KeyError:
                    raise InvalidInput(f"instances[{i}].{f}: missing feature") from None
        names = {f: f"instances[{{i}}].{f}" for f in features}
    elif isinstance(inst[0], list):
        n = len(features)
        for i, row in enumerate(inst):
            if not isinstance(row, list) or len(row) != n:
                got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
                raise InvalidInput(f"instances[{i}]: wrong shape: expected a row of {n} values in feature "
                                   f"order {features}, got {got}")
            for f, v in zip(features, row, strict=True):
                cols[f].append(v)
        names = {f: f"instances[{{i}}][{j}] ({f})" for j, f in enumerate(features)}
    else:
        raise InvalidInput(f"instances[0]: expected an object (record) or a list (row), "
                           f"got {type(inst[0]).__name__}")
    data: dict[str, Any] = {}
    for f in numeric:
        data[f] = _check_numeric(cols[f], names[f])
    for f in categorical:
        data[f] = _check_categorical(cols[f], names[f])
    return data


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).tolist()
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item) if isinstance(item, list) else [item])
        return out
    return list(data)


def request_id_of(headers: dict[str, str] | None) -> str:
    """The request id: the ``ce-id`` or ``x-request-id`` header, else a fresh UUID (hex)."""
    h = {k.lower(): v for k, v in (headers or {}).items()}
    return h.get("ce-id") or h.get("x-request-id") or uuid.uuid4().hex


def _id_text(v: Any, where: str) -> str:
    if isinstance(v, bytes):
        v = v.decode()
    if type(v) is str and v:
        return v
    if type(v) is int:
        return str(v)
    raise InvalidInput(f"{where}: expected a non-empty string or integer id, got {_describe(v)}")


def ids_from_v1(payload: Any, id_column: str, request_id: str, rows: int) -> list[str]:
    """Row ids of a V1 body: each record's ``id_column`` when present, else ``<request id>-<row index>``."""
    inst = payload.get("instances") if isinstance(payload, dict) else None
    out = []
    for i in range(rows):
        rec = inst[i] if isinstance(inst, list) and i < len(inst) else None
        v = rec.get(id_column) if isinstance(rec, dict) else None
        out.append(f"{request_id}-{i}" if v is None else _id_text(v, f"instances[{i}].{id_column}"))
    return out


def ids_from_v2(request: Any, id_column: str, request_id: str, rows: int) -> list[str]:
    """Row ids of a V2 request: the ``id_column`` input when present, else ``<request id>-<row index>``."""
    for inp in request.inputs:
        if inp.name == id_column:
            values = _flatten(inp.data if inp.data is not None else [])
            if len(values) != rows:
                raise InvalidInput(f"inputs.{id_column}: {len(values)} ids for {rows} rows")
            return [_id_text(v, f"inputs.{id_column}.data[{i}]") for i, v in enumerate(values)]
    return [f"{request_id}-{i}" for i in range(rows)]


def frame_from_v2(request: Any, numeric: list[str], categorical: list[str],
                  id_column: str | None = None) -> pd.DataFrame:
    """Turn a V2 :class:`~kserve.InferRequest` with one named input per feature into a frame.

    An input named ``id_column`` (the row ids) is allowed and left out of the frame.
    """
    return pd.DataFrame(columns_from_v2(request, numeric, categorical, id_column))


def columns_from_v2(request: Any, numeric: list[str], categorical: list[str],
                    id_column: str | None = None) -> dict[str, Any]:
    """Turn a V2 request into typed columns without pandas: numeric float64 arrays, categorical lists.

    An input named ``id_column`` (the row ids) is allowed and left out.
    """
    by_name: dict[str, Any] = {}
    for inp in request.inputs:
        if id_column is not None and inp.name == id_column:
            continue
        if inp.name in by_name:
            raise InvalidInput(f"inputs.{inp.name}: given twice")
        by_name[inp.name] = inp
    features = numeric + categorical
    unknown = sorted(set(by_name) - set(features))
    if unknown:
        raise InvalidInput(f"inputs.{unknown[0]}: unknown input (the model takes {features})")
    rows: int | None = None
    first = ""
    data: dict[str, Any] = {}
    for f in features:
        inp = by_name.get(f)
        if inp is None:
            raise InvalidInput(f"inputs.{f}: missing feature")
        dtype = str(inp.datatype).upper()
        if f in numeric and dtype not in V2_NUMERIC:
            raise InvalidInput(f"inputs.{f}: wrong datatype {dtype}: expected a numeric type (e.g. FP64)")
        if f in categorical and dtype != "BYTES":
            raise InvalidInput(f"inputs.{f}: wrong datatype {dtype}: expected BYTES")
        values = _flatten(inp.data if inp.data is not None else [])
        if f in categorical:
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        shape = [int(s) for s in inp.shape]
        if (len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1)
                or int(np.prod(shape)) != len(values)):
            raise InvalidInput(f"inputs.{f}: wrong shape {shape} for {len(values)} values "
                               "(expected [rows] or [rows, 1])")
        if rows is None:
            rows, first = len(values), f
        elif len(values) != rows:
            raise InvalidInput(f"inputs.{f}: wrong shape: {len(values)} rows but inputs.{first} has {rows}")
        where = f"inputs.{f}.data[{{i}}]"
        data[f] = _check_numeric(values, where) if f in numeric else _check_categorical(values, where)
    if not rows:
        raise InvalidInput("inputs: no rows")
    return data
