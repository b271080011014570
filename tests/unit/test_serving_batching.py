"""The micro-batcher on a real event loop: shared calls, each request gets its own rows, no mixing."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from ctloop.serving.batching import MicroBatcher, concat_columns

pytestmark = pytest.mark.unit


class Recorder:
    """A column-wise predictor that records every call (P = x / 100)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    def __call__(self, cols: dict[str, Any]) -> np.ndarray:
        self.calls.append(len(cols["x"]))
        if self.fail:
            raise ValueError("boom")
        return np.asarray(cols["x"], dtype="float64") / 100


def cols(*xs: float) -> dict[str, Any]:
    return {"x": np.asarray(xs, dtype="float64"), "c": [f"k{x}" for x in xs]}


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    rec = Recorder()

    async def main() -> list[np.ndarray]:
        b = MicroBatcher(max_batch_size=100, max_wait_us=20_000)
        key = object()
        return list(await asyncio.gather(b.predict(key, rec, cols(1), 1), b.predict(key, rec, cols(2, 3), 2),
                                         b.predict(key, rec, cols(4), 1)))

    out = asyncio.run(main())
    assert rec.calls == [4]
    assert [o.tolist() for o in out] == [[0.01], [0.02, 0.03], [0.04]]


def test_batch_closes_at_max_batch_size_and_keys_never_mix() -> None:
    rec = Recorder()

    async def main() -> list[np.ndarray]:
        b = MicroBatcher(max_batch_size=2, max_wait_us=1_000_000)
        k1, k2 = object(), object()
        res = await asyncio.gather(b.predict(k1, rec, cols(1), 1), b.predict(k1, rec, cols(2), 1),
                                   b.predict(k1, rec, cols(3), 1), b.predict(k2, rec, cols(4), 1),
                                   b.predict(k2, rec, cols(5), 1))
        assert b.batches == 3 and b.rows == 5
        return list(res)

    out = asyncio.run(main())
    assert rec.calls == [2, 1, 2]  # full batch; k1's lone row closed by k2; k2's full batch
    assert [o.tolist() for o in out] == [[0.01], [0.02], [0.03], [0.04], [0.05]]


def test_a_failing_batch_fails_each_of_its_requests() -> None:
    rec = Recorder(fail=True)

    async def main() -> list[Any]:
        b = MicroBatcher(max_batch_size=10, max_wait_us=1000)
        key = object()
        return list(await asyncio.gather(b.predict(key, rec, cols(1), 1), b.predict(key, rec, cols(2), 1),
                                         return_exceptions=True))

    out = asyncio.run(main())
    assert rec.calls == [2]
    assert all(isinstance(e, ValueError) and str(e) == "boom" for e in out)


def test_concat_columns() -> None:
    joined = concat_columns([cols(1, 2), cols(3)])
    assert joined["x"].tolist() == [1, 2, 3] and joined["c"] == ["k1", "k2", "k3"]
