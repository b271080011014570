"""Delayed labels in: the ``POST /labels`` body, label files, and the client that posts them in batches.

Body: ``{"model": "churn", "labels": [{"id": "...", "label": 0|1, "time": "...optional ISO-8601"}]}``.
A label that is not 0/1, a missing or empty id, or a bad time is a :class:`~ctloop.errors.LabelError`
naming the row index, and nothing of the batch is recorded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ctloop.errors import ConfigError, LabelError
from ctloop.quality.store import OUTCOMES, LabelBatch


def parse_time(value: Any, where: str) -> float:
    """An ISO-8601 time (a zone-less time is UTC) as Unix seconds."""
    if not isinstance(value, str):
        raise LabelError(f"{where}: time must be an ISO-8601 string, got {type(value).__name__}")
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise LabelError(f"{where}: time {value[:40]!r} is not ISO-8601 ({exc})") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def parse_label_rows(rows: Any, now: float | None = None, where: str = "labels") -> LabelBatch:
    """Validate label rows (``[{"id", "label", "time"?}]``) into columns.

    An int id becomes its string, a 0.0/1.0 label its int; a row without a time gets ``now``.

    Raises:
        LabelError: Naming the first bad row's index and field.
    """
    if not isinstance(rows, list):
        raise LabelError(f"{where}: must be a list of {{'id', 'label', 'time'?}} objects")
    now = time.time() if now is None else now
    fast = _plain_rows(rows, now)
    return fast if fast is not None else _checked_rows(rows, now, where)


def _plain_rows(rows: list[Any], now: float) -> LabelBatch | None:
    """The common batch checked a column at a time: every row a dict of exactly a non-empty string ``id``
    and an int 0/1 ``label``. ``None`` for anything else (the row-by-row path decides)."""
    if not rows or set(map(type, rows)) != {dict} or sum(map(len, rows)) != 2 * len(rows):
        return None
    try:
        ids = [r["id"] for r in rows]
        labels = [r["label"] for r in rows]
    except KeyError:
        return None
    if set(map(type, ids)) != {str} or "" in ids or set(map(type, labels)) != {int} or not set(labels) <= {0, 1}:
        return None
    return LabelBatch(ids, labels, [now] * len(rows))


def _checked_rows(rows: list[Any], now: float, where: str) -> LabelBatch:
    """Rows validated one at a time (times to parse, ids or labels to convert, or an error to name)."""
    ids: list[str] = []
    labels: list[int] = []
    times: list[float] = []
    for i, row in enumerate(rows):
        if type(row) is not dict:
            raise LabelError(f"{where}[{i}]: must be an object with 'id' and 'label', got {type(row).__name__}")
        pid = row.get("id")
        if type(pid) is not str or not pid:
            if type(pid) is int:
                pid = str(pid)
            else:
                raise LabelError(f"{where}[{i}].id: missing or empty (a prediction id as returned by the model server)")
        lab = row.get("label")
        if lab.__class__ is not int or (lab != 0 and lab != 1):
            if type(lab) is float and lab in (0.0, 1.0):
                lab = int(lab)
            else:
                raise LabelError(f"{where}[{i}].label: must be 0 or 1, got {lab!r}")
        t = row.get("time")
        ids.append(pid)
        labels.append(lab)
        times.append(now if t is None else parse_time(t, f"{where}[{i}].time"))
    return LabelBatch(ids, labels, times)


def parse_labels_body(body: bytes, model: str, now: float | None = None) -> LabelBatch:
    """Parse and validate a ``POST /labels`` body for ``model``.

    Raises:
        LabelError: Not JSON, wrong layout, another model, or a bad row (its index named).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LabelError(f"body: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or "labels" not in doc:
        raise LabelError('body: expected {"model": "...", "labels": [{"id": "...", "label": 0|1}]}')
    if doc.get("model") != model:
        raise LabelError(f"model: {doc.get('model')!r} is not the model this watcher follows ({model!r})")
    return parse_label_rows(doc["labels"], now)


def read_label_file(path: str | Path, id_column: str = "id", label_column: str = "label",
                    time_column: str | None = "time") -> list[dict[str, Any]]:
    """Label rows from a CSV or Parquet file, a path or an fsspec URI (``s3://...``); ``time`` is used
    when the file has that column.

    Raises:
        ConfigError: The file is missing, unreadable, or lacks the id or label column.
    """
    import pandas as pd

    p = str(path)
    if "://" not in p and not Path(p).is_file():
        raise ConfigError(f"{p}: label file not found")
    try:
        frame = pd.read_parquet(p) if p.endswith(".parquet") else pd.read_csv(p, dtype={id_column: str})
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"{p}: cannot read labels ({exc}); expected .csv or .parquet") from exc
    for col, opt in ((id_column, "--id-column"), (label_column, "--label-column")):
        if col not in frame.columns:
            raise ConfigError(f"{p}: column {col!r} ({opt}) not found; columns: {sorted(map(str, frame.columns))}")
    rows: list[dict[str, Any]] = []
    has_time = time_column is not None and time_column in frame.columns
    ids = frame[id_column].astype("string").tolist()
    labels = frame[label_column].tolist()
    times = frame[time_column].tolist() if has_time else [None] * len(frame)
    for pid, lab, t in zip(ids, labels, times, strict=True):
        row: dict[str, Any] = {"id": None if pid is None or pid is pd.NA else str(pid),
                               "label": int(lab) if isinstance(lab, float) and lab.is_integer() else lab}
        if t is not None and not (isinstance(t, float) and t != t):
            row["time"] = t.isoformat() if hasattr(t, "isoformat") else str(t)
        rows.append(row)
    return rows


def batches(rows: list[dict[str, Any]], size: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """``(offset, rows)`` chunks of at most ``size`` rows."""
    for i in range(0, len(rows), size):
        yield i, rows[i:i + size]


def push_labels(rows: list[dict[str, Any]], model: str, endpoint: str, token: str, batch_size: int = 1000,
                timeout: float = 30.0, on_batch: Callable[[int], None] | None = None) -> dict[str, int]:
    """POST label rows to ``{endpoint}/labels`` in batches; return the summed counts.

    Raises:
        LabelError: A batch was refused as malformed (the row index is made file-wide).
        ConfigError: The watcher refused the token or could not be reached.
    """
    import httpx

    total = dict.fromkeys(OUTCOMES, 0)
    url = endpoint.rstrip("/") + "/labels"
    with httpx.Client(timeout=timeout) as client:
        for offset, chunk in batches(rows, batch_size):
            try:
                r = client.post(url, content=orjson.dumps({"model": model, "labels": chunk}),
                                headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
            except httpx.HTTPError as exc:
                raise ConfigError(f"{url}: cannot reach the watcher ({exc})") from exc
            if r.status_code == 400:
                msg = str(r.json().get("error", r.text))
                raise LabelError(f"rows {offset}..{offset + len(chunk) - 1} refused (row indexes below count from "
                                 f"{offset}): {msg}; earlier batches were recorded")
            if r.status_code in (401, 403):
                raise ConfigError(f"{url}: {r.status_code} {r.text} (check triggers.token_file)")
            if r.status_code >= 300:
                raise ConfigError(f"{url}: {r.status_code} {r.text}")
            for k, v in r.json().items():
                if k in total:
                    total[k] += int(v)
            if on_batch is not None:
                on_batch(len(chunk))
    return total
