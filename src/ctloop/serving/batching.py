"""Adaptive micro-batching: concurrent requests share one call of the model.

Requests that arrive while a batch is open join it; the batch runs when it holds
``serving.batching.max_batch_size`` rows or ``max_wait_us`` after its first request, whichever comes
first. Everything runs on the server's event loop (no threads): one ``predict_proba`` call per batch,
then each request gets back exactly its own rows. A batch never mixes two served models: a hot-swap
closes the open batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Batch:
    key: object
    predict: Callable[[dict[str, Any]], np.ndarray]
    items: list[tuple[dict[str, Any], int, asyncio.Future[np.ndarray]]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


def concat_columns(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Join typed columns of several requests (numeric arrays concatenated, categorical lists chained)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for name, first in parts[0].items():
        if isinstance(first, np.ndarray):
            out[name] = np.concatenate([p[name] for p in parts])
        else:
            out[name] = [v for p in parts for v in p[name]]
    return out


class MicroBatcher:
    """Collects requests on the running event loop and predicts them together.

    Args:
        max_batch_size: Rows that close a batch at once.
        max_wait_us: Microseconds a batch stays open after its first request.
        counter: A Prometheus counter incremented per batch (optional).
    """

    def __init__(self, max_batch_size: int, max_wait_us: int, counter: Any = None) -> None:
        self.max_batch_size = max_batch_size
        self.counter = counter
        self.max_wait = max_wait_us / 1e6
        self._open: _Batch | None = None
        self.batches = 0
        self.rows = 0

    async def predict(self, key: object, predict: Callable[[dict[str, Any]], np.ndarray],
                      columns: dict[str, Any], rows: int) -> np.ndarray:
        """P(class 1) for ``columns`` (``rows`` rows), computed in a batch with concurrent requests.

        ``key`` identifies the model (requests with another key never share a batch); ``predict`` is its
        column-wise predictor. Its exceptions reach every request of the batch.
        """
        loop = asyncio.get_running_loop()
        batch = self._open
        if batch is not None and batch.key is not key:
            self._run(batch)
            batch = None
        if batch is None:
            batch = self._open = _Batch(key, predict)
            batch.timer = loop.call_later(self.max_wait, self._run, batch)
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        batch.items.append((columns, rows, fut))
        batch.rows += rows
        if batch.rows >= self.max_batch_size:
            self._run(batch)
        return await fut

    def _run(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        items, batch.items = batch.items, []
        if not items:
            return
        self.batches += 1
        self.rows += batch.rows
        if self.counter is not None:
            self.counter.inc()
        try:
            proba = batch.predict(concat_columns([c for c, _, _ in items]))
            if proba.shape != (batch.rows,):
                raise ValueError(f"batch predicted {proba.shape} values for {batch.rows} rows")
        except Exception as exc:  # every request of the batch gets the error (mapped to 400/500 upstream)
            for _, _, fut in items:
                if not fut.done():
                    fut.set_exception(exc)
            return
        start = 0
        for _, n, fut in items:
            if not fut.done():
                fut.set_result(proba[start:start + n])
            start += n
