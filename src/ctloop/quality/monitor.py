"""The watcher's model-quality side: stores predictions, joins labels, computes realized performance.

Metrics go to an injected registry. The counters (``ctloop_labels_total``) and the label-delay histogram
(bucketed a batch at a time with numpy) are updated as labels arrive; the performance gauges are computed
when scraped (a collector), so a stream of label batches pays for the join only, not for recomputing
ROC AUC after every batch.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ctloop.config import ProjectConfig
from ctloop.quality.calibration import Calibration
from ctloop.quality.estimate import Estimate, estimate_window
from ctloop.quality.realized import realized_metrics, slice_metrics
from ctloop.quality.store import OUTCOMES, Label, LabelResult, PredictionStore
from ctloop.quality.types import PerformanceSnapshot

DELAY_BUCKETS = (60, 600, 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400)
REFERENCE_METRICS = ("accuracy", "roc_auc", "log_loss")


def duration_seconds(text: str) -> float:
    """Seconds of a Prometheus-style duration such as ``30d`` or ``1h30m``."""
    import re

    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)))


def slice_columns(cfg: ProjectConfig) -> list[str]:
    """The gate's slice columns, each once, in config order."""
    return list(dict.fromkeys(s.column for s in cfg.gate.slices))


def open_store(cfg: ProjectConfig) -> PredictionStore:
    """The prediction store named by ``monitoring.labels``."""
    lab = cfg.monitoring.labels
    return PredictionStore(lab.store, max_predictions=lab.max_predictions,
                           max_age_seconds=duration_seconds(lab.max_delay))


class QualityMonitor:
    """Predictions in, labels in, realized performance of the serving version out. Thread-safe."""

    def __init__(self, cfg: ProjectConfig, store: PredictionStore, registry: CollectorRegistry) -> None:
        self.cfg = cfg
        self.model = cfg.name
        self.store = store
        self.slice_columns = slice_columns(cfg)
        self.version: int | None = None
        self.reference: dict[str, float] = {}
        self.calibration: Calibration | None = None
        # the serving version's newest scores, for the label-free estimate (no store scan per scrape)
        self._recent: deque[float] = deque(maxlen=cfg.monitoring.performance.estimated_window_rows)
        self._window: deque[tuple[float, int, int, int | None]] = deque(maxlen=cfg.monitoring.performance.window_rows)
        self._lock = threading.Lock()
        self._cached: PerformanceSnapshot | None = None
        self.totals = dict.fromkeys(OUTCOMES, 0)
        self.labels_total = Counter("ctloop_labels", "Labels received, by outcome.", ["outcome"], registry=registry)
        for o in OUTCOMES:
            self.labels_total.labels(o)
        self._delay_counts = np.zeros(len(DELAY_BUCKETS) + 1, dtype="int64")  # per bucket, last is +Inf
        self._delay_sum = 0.0
        registry.register(_PerformanceCollector(self))

    def set_version(self, version: int, reference: dict[str, float], calibration: Calibration | None = None) -> None:
        """Follow a new serving version: reload its labelled window from the store; ``calibration`` (from
        its profile) turns its scores into the estimated performance."""
        n = self.cfg.monitoring.performance.window_rows
        p, yhat, y, s = self.store.labelled_window(version, n)
        recent = self.store.recent_predictions(version, self.cfg.monitoring.performance.estimated_window_rows)
        with self._lock:
            self._recent.clear()
            self._recent.extend(recent[::-1].tolist())  # oldest first
            self.version = version
            self.reference = {k: float(v) for k, v in reference.items() if k in REFERENCE_METRICS
                              and isinstance(v, int | float) and math.isfinite(v)}
            self._window.clear()
            self._window.extend(zip(p.tolist(), yhat.tolist(), y.tolist(), s, strict=True))
            self.calibration = calibration
            self._cached = None

    def record(self, ids: Sequence[str], version: int, proba: np.ndarray, predicted: np.ndarray,
               slices: dict[str, Sequence[Any]] | None = None, when: float | None = None) -> int:
        """Store one response's predictions (committed on return); returns how many were new."""
        added = self.store.add(ids, version, proba, predicted, when, slices)
        if added:
            with self._lock:
                if version == self.version:
                    self._recent.extend(np.asarray(proba, dtype="float64")[-added:].tolist())
                self._cached = None  # the estimated performance moves with every prediction
        return added

    def apply_labels(self, labels: Sequence[Label], now: float | None = None) -> LabelResult:
        """Join a batch of labels (all or nothing), count outcomes, feed the realized window."""
        res = self.store.apply_labels(labels, now)
        for o, n in res.counts.items():
            if n:
                self.labels_total.labels(o).inc(n)
        if res.delays:
            d = np.asarray(res.delays, dtype="float64")
            counts = np.bincount(np.searchsorted(DELAY_BUCKETS, d, side="left"), minlength=len(DELAY_BUCKETS) + 1)
            with self._lock:
                self._delay_counts += counts
                self._delay_sum += float(d.sum())
        with self._lock:
            for o, n in res.counts.items():
                self.totals[o] += n
            version = self.version
            self._window.extend(r[1:] for r in res.matched_rows if r[0] == version)
            if res.counts["matched"]:
                self._cached = None
        return res

    def snapshot(self) -> PerformanceSnapshot:
        """Realized performance of the serving version over its last labelled window (cached until new labels)."""
        with self._lock:
            if self._cached is not None:
                return self._cached
            rows = list(self._window)
            version, reference, calibration = self.version, dict(self.reference), self.calibration
        realized: dict[str, float] = {}
        slices: dict[str, dict[str, float]] = {}
        if rows:
            p = np.fromiter((r[0] for r in rows), "float64", len(rows))
            yhat = np.fromiter((r[1] for r in rows), "int64", len(rows))
            y = np.fromiter((r[2] for r in rows), "int64", len(rows))
            realized = realized_metrics(p, yhat, y)
            if self.slice_columns:
                per_row = [self.store.slice_values(r[3]) for r in rows]
                slices = slice_metrics(p, yhat, y, per_row, self.cfg.monitoring.performance.min_slice_rows)
        est = self._estimate(version, calibration)
        snap = PerformanceSnapshot(model=self.model, version=version, realized=realized, labelled=len(rows),
                                   reference=reference, slices=slices,
                                   estimated=dict(est.values) if est else {},
                                   estimated_band=dict(est.bands) if est else {})
        with self._lock:
            if self.version == version:
                self._cached = snap
        return snap

    def _estimate(self, version: int | None, calibration: Calibration | None) -> Estimate | None:
        """Label-free estimate over the last ``estimated_window_rows`` predictions of ``version`` (needs at
        least ``min_labelled`` of them, or that window when smaller)."""
        perf = self.cfg.monitoring.performance
        if version is None:
            return None
        with self._lock:
            scores = np.asarray(self._recent, dtype="float64") if version == self.version else np.zeros(0)
        if scores.size < min(perf.min_labelled, perf.estimated_window_rows):
            return None
        return estimate_window(scores, calibration)

    def delay_histogram(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` buckets and the sum of the label delays (seconds)."""
        with self._lock:
            cum = np.cumsum(self._delay_counts).tolist()
            total = self._delay_sum
        les = [str(float(b)) for b in DELAY_BUCKETS] + ["+Inf"]
        return list(zip(les, [float(c) for c in cum], strict=True)), total

    def coverage(self) -> float:
        """Labelled share of the stored predictions (0 when none are stored)."""
        stored, labelled = self.store.count()
        return labelled / stored if stored else 0.0

    def status(self) -> dict[str, Any]:
        """The ``quality`` section of ``GET /status``."""
        snap = self.snapshot()
        stored, labelled = self.store.count()
        return {
            "version": snap.version,
            "stored_predictions": stored,
            "labelled_predictions": labelled,
            "label_coverage": self.coverage(),
            "labels": dict(self.totals),
            "window_rows": self.cfg.monitoring.performance.window_rows,
            "labelled_in_window": snap.labelled,
            "realized": _finite(snap.realized),
            "reference": snap.reference,
            "slices": {k: _finite(v) for k, v in snap.slices.items()},
            "estimated": _finite(snap.estimated),
            "estimated_band": {k: list(v) for k, v in snap.estimated_band.items()},
        }


def _finite(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in d.items()}


class _PerformanceCollector(Collector):
    """Performance gauges computed at scrape time from :meth:`QualityMonitor.snapshot`."""

    def __init__(self, monitor: QualityMonitor) -> None:
        self.monitor = monitor

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        snap = m.snapshot()
        perf = GaugeMetricFamily("ctloop_model_performance",
                                 "Model performance of the serving version (realized over labelled predictions, "
                                 "or estimated without labels).", labels=["model", "version", "metric", "source"])
        band = GaugeMetricFamily("ctloop_model_performance_band", "Band of the estimated performance.",
                                 labels=["model", "version", "metric", "bound"])
        ref = GaugeMetricFamily("ctloop_model_reference_performance",
                                "The serving version's gate value on its holdout.",
                                labels=["model", "version", "metric"])
        labelled = GaugeMetricFamily("ctloop_labelled_predictions",
                                     "Labelled predictions of the serving version in the realized window.",
                                     labels=["model", "version"])
        slice_perf = GaugeMetricFamily("ctloop_model_slice_performance",
                                       "Realized performance per gate slice (slices with enough labelled rows).",
                                       labels=["model", "version", "slice", "metric"])
        buckets, total = m.delay_histogram()
        delay = HistogramMetricFamily("ctloop_label_delay_seconds",
                                      "Label time minus prediction time of matched labels.",
                                      buckets=buckets, sum_value=total)
        cov = GaugeMetricFamily("ctloop_label_coverage", "Labelled share of stored predictions.", labels=["model"])
        cov.add_metric([m.model], m.coverage())
        if snap.version is not None:
            v = str(snap.version)
            for k, val in snap.realized.items():
                if math.isfinite(val):
                    perf.add_metric([m.model, v, k, "realized"], val)
            for k, val in snap.estimated.items():
                if math.isfinite(val):
                    perf.add_metric([m.model, v, k, "estimated"], val)
            for k, (lo, hi) in snap.estimated_band.items():
                band.add_metric([m.model, v, k, "low"], lo)
                band.add_metric([m.model, v, k, "high"], hi)
            for k, val in snap.reference.items():
                ref.add_metric([m.model, v, k], val)
            for key, metrics in snap.slices.items():
                for k, val in metrics.items():
                    if math.isfinite(val):
                        slice_perf.add_metric([m.model, v, key, k], val)
            labelled.add_metric([m.model, v], snap.labelled)
        yield from (perf, band, ref, labelled, slice_perf, cov, delay)
