"""Bounds on what payload events can do to the drift windows: replayed ids, per-source rate, sources.

* A ``(ce-id, kind)`` seen within the last ``drift.replay_window`` accepted events is a duplicate: counted
  as such, never counted again.
* ``drift.max_rows_per_second`` caps the request rows one event source (``ce-source``) adds: a token
  bucket refilled at that rate, holding at most one window (``drift.window_rows``). An event that does not
  fit is dropped whole (``rate_limited``).
* ``drift.min_sources``: a closed window whose rows came from fewer distinct sources is published as not
  drifted (``insufficient_sources``), so one client cannot raise the drift alert on its own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from ctloop.config import DriftConfig
from ctloop.drift import Evaluation
from ctloop.watcher.events import PayloadEvent

MAX_TRACKED_SOURCES = 10_000


class EventGuard:
    """Replay window, per-source token buckets and the distinct sources of the open window."""

    def __init__(self, cfg: DriftConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._window_sources: set[str] = set()

    def check(self, ev: PayloadEvent) -> str | None:
        """Why ``ev`` must be dropped (``duplicate``, ``rate_limited``), or ``None`` to accept it.

        Accepting records its id and takes its rows from its source's bucket.
        """
        key = (ev.id, ev.kind)
        if key in self._seen:
            return "duplicate"
        if ev.kind == "request" and ev.source is not None and not self._take(ev.source, ev.rows):
            return "rate_limited"
        self._seen[key] = None
        while len(self._seen) > self.cfg.replay_window:
            self._seen.popitem(last=False)
        if ev.kind == "request" and ev.source is not None and ev.rows > 0:
            self._window_sources.add(ev.source)
        return None

    def _take(self, source: str, rows: int) -> bool:
        rate = self.cfg.max_rows_per_second
        if rate is None:
            return True
        burst = float(self.cfg.window_rows)
        now = self.clock()
        tokens, last = self._buckets.pop(source, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        ok = rows <= tokens
        self._buckets[source] = (tokens - rows if ok else tokens, now)
        while len(self._buckets) > MAX_TRACKED_SOURCES:
            self._buckets.popitem(last=False)
        return ok

    def close_window(self, ev: Evaluation) -> tuple[Evaluation, bool]:
        """The evaluation to publish for a closed window, and whether it was neutralised for too few sources.

        Sources are those of the rows added since the previous closed window.
        """
        sources = len(self._window_sources)
        self._window_sources = set()
        if sources == 0 or sources >= self.cfg.min_sources or not ev.drifted:
            return ev, False
        features = [replace(s, drifted=False) for s in ev.features]
        return replace(ev, features=features, drifted=[], drift_share=0.0), True
