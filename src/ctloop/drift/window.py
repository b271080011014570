"""Ring buffer of count vectors: sliding and tumbling windows at O(bins) per step.

Rows arrive in batches of any size. They fill an open *chunk* of ``step_rows`` rows; when it is full it
is closed into a ring of ``slots`` chunks, the running window sum is updated (add the new chunk,
subtract the evicted one) and the closed window is reported. ``slots == 1`` gives tumbling windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClosedWindow:
    """A window that just closed: its summed counts and how many chunks/rows it holds."""

    counts: np.ndarray
    rows: int
    chunks: int


class WindowRing:
    """Sliding window over per-chunk count arrays of a fixed shape."""

    def __init__(self, shape: tuple[int, ...], step_rows: int, slots: int) -> None:
        if step_rows < 1 or slots < 1:
            raise ValueError("step_rows and slots must be >= 1")
        self.step_rows = step_rows
        self.slots = slots
        self._ring = np.zeros((slots, *shape))
        self._sum = np.zeros(shape)
        self._open = np.zeros(shape)
        self._open_rows = 0
        self._head = 0
        self._filled = 0
        self.windows = 0

    @property
    def window_rows(self) -> int:
        """Rows in the closed window (not counting the open chunk)."""
        return self._filled * self.step_rows

    @property
    def pending_rows(self) -> int:
        """Rows in the open chunk."""
        return self._open_rows

    @property
    def current(self) -> ClosedWindow:
        """The closed window as of now."""
        return ClosedWindow(self._sum.copy(), self.window_rows, self._filled)

    def add(self, rows: int, counts_of: Callable[[int, int], np.ndarray]) -> Iterator[ClosedWindow]:
        """Add ``rows`` rows; ``counts_of(a, b)`` returns the counts of rows ``a:b`` of the batch.

        Yields every window that closes while the batch is consumed.
        """
        pos = 0
        while pos < rows:
            take = min(self.step_rows - self._open_rows, rows - pos)
            self._open += counts_of(pos, pos + take)
            self._open_rows += take
            pos += take
            if self._open_rows == self.step_rows:
                yield self._close()

    def _close(self) -> ClosedWindow:
        if self._filled == self.slots:
            self._sum -= self._ring[self._head]
        else:
            self._filled += 1
        self._ring[self._head] = self._open
        self._sum += self._open
        self._head = (self._head + 1) % self.slots
        self._open = np.zeros_like(self._open)
        self._open_rows = 0
        self.windows += 1
        return ClosedWindow(self._sum.copy(), self.window_rows, self._filled)
