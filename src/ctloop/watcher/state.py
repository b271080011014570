"""Watcher state: the champion being followed, its drift monitor, pending joins and counters.

One :class:`WatcherState` lives in the ASGI app (``app.state.watcher``); routes mounted by other
features (the trigger controller's ``/alerts`` and ``/trigger``) read it from there.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctloop.config import ProjectConfig
from ctloop.drift import DriftMonitor, Evaluation, FeatureScore, Reference
from ctloop.errors import CtloopError, DriftError
from ctloop.profile import Profile
from ctloop.quality.calibration import Calibration
from ctloop.quality.monitor import QualityMonitor
from ctloop.quality.types import PerformanceSnapshot
from ctloop.registry import Registry
from ctloop.watcher.derived import Derived
from ctloop.watcher.events import PayloadEvent
from ctloop.watcher.metrics import WatcherMetrics

log = logging.getLogger("ctloop.watcher")


@dataclass(frozen=True)
class Champion:
    """The registry version whose reference profile is in use."""

    version: int
    alias_id: str | None
    model_dir: str


def load_reference(model_dir: str | Path) -> Reference:
    """Build the drift reference from a model folder (``profile.json`` + the features in ``model.json``).

    Raises:
        DriftError: When the profile or manifest is missing, corrupt or does not match.
    """
    d = Path(model_dir)
    try:
        profile = Profile.load(d)
    except CtloopError as exc:
        raise DriftError(f"{d}: cannot load the reference profile ({exc})") from exc
    numeric = categorical = None
    man = d / "model.json"
    if man.is_file():
        try:
            doc = json.loads(man.read_text())
        except json.JSONDecodeError as exc:
            raise DriftError(f"{man}: corrupt model manifest ({exc})") from exc
        numeric, categorical = doc.get("numeric_features"), doc.get("categorical_features")
    return Reference.from_profile(profile, numeric, categorical)


def _calibration(model_dir: str | Path) -> Calibration | None:
    """The holdout calibration in the version's profile (``None`` for v1 profiles: raw scores are used)."""
    try:
        return Profile.load(model_dir).calibration
    except CtloopError:
        return None


class WatcherState:
    """Everything the watcher's routes share. Thread-safe: one lock guards the monitor."""

    def __init__(self, cfg: ProjectConfig, metrics: WatcherMetrics, registry: Registry | None = None,
                 quality: QualityMonitor | None = None) -> None:
        self.cfg = cfg
        self.quality = quality
        self.metrics = metrics
        self.registry = registry or Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
        self.lock = threading.RLock()
        self.champion: Champion | None = None
        self.monitor: DriftMonitor | None = None
        self.derived = Derived()
        self.last_reload_error: str | None = None
        self.started_at = time.time()
        self._pending: OrderedDict[str, tuple[int, dict[str, Sequence[Any]]]] = OrderedDict()
        self.counts: dict[str, int] = {}

    @property
    def model(self) -> str:
        """The model this watcher follows."""
        return self.cfg.name

    @property
    def version(self) -> int | None:
        """The champion version in use (``None`` before the first champion)."""
        return self.champion.version if self.champion else None

    @property
    def drifted_features(self) -> list[str]:
        """Features drifted in the last evaluated window."""
        last = self.monitor.last if self.monitor else None
        return list(last.drifted) if last else []

    @property
    def drift_share(self) -> float:
        """Share of features drifted in the last evaluated window."""
        last = self.monitor.last if self.monitor else None
        return last.drift_share if last else 0.0

    def count(self, outcome: str, n: int = 1) -> None:
        """Count events by outcome (metric and status)."""
        self.metrics.events.labels(outcome).inc(n)
        self.counts[outcome] = self.counts.get(outcome, 0) + n

    def refresh(self) -> bool:
        """Follow the champion alias; rebuild the monitor (windows restart) when it changed.

        Returns whether a new reference was loaded. A failing load keeps the old reference, is
        logged and counted, and is retried on the next call.
        """
        try:
            doc = self.registry.alias_doc("champion")
        except CtloopError as exc:
            self._failed(f"champion alias unreadable: {exc}")
            return False
        if doc is None or not isinstance(doc.get("version"), int):
            return False
        version, alias_id = int(doc["version"]), doc.get("id")
        if self.champion and self.champion.version == version and self.champion.alias_id == alias_id:
            return False
        try:
            model_dir = self.registry.local_model_dir(version)
            monitor = DriftMonitor(load_reference(model_dir), self.cfg.drift)
            derived = Derived.load(model_dir)
        except (CtloopError, ValueError) as exc:
            self._failed(f"version {version}: {exc}")
            return False
        with self.lock:
            self.champion = Champion(version, alias_id, str(model_dir))
            self.monitor = monitor
            self.derived = derived
            self._pending.clear()
            self.last_reload_error = None
            self.metrics.reset(version, list(monitor.reference.features))
        self.metrics.reloads.labels("loaded").inc()
        if self.quality is not None:
            self.quality.set_version(version, self._reference_metrics(version), _calibration(model_dir))
        log.info("watching %s version %d (%d features)", self.model, version, len(monitor.reference.features))
        return True

    def _reference_metrics(self, version: int) -> dict[str, float]:
        try:
            metrics = self.registry.get(version).metadata.get("metrics") or {}
        except CtloopError as exc:
            log.warning("version %d: no holdout metrics for the reference performance (%s)", version, exc)
            return {}
        return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}

    def performance_snapshot(self) -> PerformanceSnapshot:
        """Model quality of the serving version (realized, estimated, reference); empty without a store."""
        if self.quality is None:
            return PerformanceSnapshot(model=self.model, version=self.version)
        return self.quality.snapshot()

    def _failed(self, message: str) -> None:
        self.last_reload_error = message
        self.metrics.reloads.labels("failed").inc()
        log.error("reference reload failed: %s", message)

    def ingest(self, events: list[PayloadEvent]) -> dict[str, Any]:
        """Feed parsed events to the monitor; returns a small summary for the HTTP response.

        Raises:
            EventError: When an event's values do not fit the reference (nothing of it is counted).
        """
        out = {"accepted": 0, "dropped": 0, "windows": 0, "rows": 0}
        with self.lock:
            mon = self.monitor
            # validate every event of the delivery first, so a bad one rejects it whole
            todo: list[tuple[PayloadEvent, Any]] = []
            for ev in events:
                if ev.model is not None and ev.model != self.model:
                    todo.append((ev, "unknown_model"))
                elif mon is None:
                    todo.append((ev, "no_reference"))
                elif ev.kind == "request":
                    todo.append((ev, mon.reference.prepare(self.derived.add(ev.columns, ev.rows), ev.rows)))
                else:
                    assert ev.predictions is not None
                    todo.append((ev, mon.check_predictions(ev.predictions)))
            for ev, item in todo:
                if isinstance(item, str):
                    self.count(item)
                    out["dropped"] += 1
                    continue
                assert mon is not None
                if ev.kind == "request":
                    evals = mon.add(item)
                    self.metrics.rows.labels("request").inc(ev.rows)
                    for e in evals:
                        self.metrics.observe(e)
                    out["windows"] += len(evals)
                    self._remember(ev.id, ev.rows, self._slices_of(ev))
                else:
                    for s in mon.ingest_predictions(item):
                        self.metrics.observe_prediction(s)
                    self.metrics.rows.labels("response").inc(ev.rows)
                    pending = self._pending.pop(ev.id, None)
                    if pending is not None:
                        self.count("joined")
                    self._store(ev, pending)
                out["rows"] += ev.rows
                out["accepted"] += 1
                self.count("accepted")
        return out

    def _slices_of(self, ev: PayloadEvent) -> dict[str, Sequence[Any]]:
        if self.quality is None:
            return {}
        return {c: ev.columns[c] for c in self.quality.slice_columns if c in ev.columns}

    def _store(self, ev: PayloadEvent, pending: tuple[int, dict[str, Sequence[Any]]] | None) -> None:
        """Store a response's predictions (ids from the response, else ``<event id>-<row>``)."""
        if self.quality is None or ev.predictions is None or self.version is None:
            return
        n = ev.rows
        ids = ev.ids if ev.ids is not None else [f"{ev.id}-{i}" for i in range(n)]
        predicted = ev.labels if ev.labels is not None else (
            ev.predictions >= self.cfg.serving.threshold).astype("int64")
        slices = pending[1] if pending is not None and pending[0] == n else {}
        self.quality.record(ids, ev.version or self.version, ev.predictions, predicted, slices)

    def _remember(self, event_id: str, rows: int, slices: dict[str, Sequence[Any]]) -> None:
        self._pending[event_id] = (rows, slices)
        while len(self._pending) > self.cfg.drift.max_pending_joins:
            self._pending.popitem(last=False)
            self.count("unjoined_evicted")

    def status(self) -> dict[str, Any]:
        """The JSON document behind ``GET /status``."""
        with self.lock:
            mon = self.monitor
            doc: dict[str, Any] = {
                "model": self.model,
                "version": self.version,
                "reference_error": self.last_reload_error,
                "events": dict(self.counts),
                "pending_joins": len(self._pending),
            }
            if self.quality is not None:
                doc["quality"] = self.quality.status()
            if mon is None:
                doc["state"] = "waiting for a champion"
                return doc
            last: Evaluation | None = mon.last
            pred: FeatureScore | None = mon.last_prediction
            doc.update({
                "state": "watching",
                "method": self.cfg.drift.method,
                "windows": {"evaluated": mon.windows, "window_rows": self.cfg.drift.window_rows,
                            "slide_rows": self.cfg.drift.slide_rows or self.cfg.drift.window_rows,
                            "current_rows": mon.window_rows, "rows_seen": mon.rows_seen,
                            "predictions_seen": mon.predictions_seen},
                "thresholds": mon.thresholds,
                "last_window": last.to_dict() if last else None,
                "prediction": pred.__dict__ if pred else None,
                "drifted_features": list(last.drifted) if last else [],
                "drift_share": last.drift_share if last else 0.0,
            })
            return doc
