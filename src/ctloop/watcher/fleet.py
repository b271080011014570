"""Mergeable drift counts: each watcher replica exports its per-bin counts so Prometheus can add them up.

Windows are histograms over bins fixed by the champion's reference profile, so the counts of several
replicas add up exactly. Every replica exports, for the champion version it follows:

* ``ctloop_drift_bin_rows_total{model,version,feature,bin}`` (counter): rows counted in each bin;
* ``ctloop_drift_rows_total{model,version}`` (counter): rows counted;
* ``ctloop_drift_reference_share{model,version,feature,bin}`` (gauge): the reference profile's shares;
* ``ctloop_drift_reference_rows{model,version}`` (gauge): rows behind the reference profile;
* ``ctloop_drift_threshold_coefficient{model,version,feature,method}`` and
  ``ctloop_drift_threshold_floor{...}`` (gauges): the row-count-scaled threshold (see
  :func:`threshold_terms`).

``bin`` is the bin's position in the profile's layout (``0`` .. ``n-1``: numeric value bins then the
missing bin; categorical vocabulary, OTHER, then missing), the same in every replica, so the label set is
bounded by features x bins. When the champion changes the old version's series are no longer exported
(they go stale in Prometheus) and the new version's start at zero: versions never mix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ctloop.config import DriftConfig
from ctloop.drift.monitor import DriftMonitor
from ctloop.drift.stats import proportions

BIN_ROWS = "ctloop_drift_bin_rows"
ROWS = "ctloop_drift_rows"
REFERENCE_SHARE = "ctloop_drift_reference_share"
REFERENCE_ROWS = "ctloop_drift_reference_rows"
THRESHOLD_COEFFICIENT = "ctloop_drift_threshold_coefficient"
THRESHOLD_FLOOR = "ctloop_drift_threshold_floor"


def threshold_terms(monitor: DriftMonitor) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(coefficient, floor)`` of the threshold at any window row count ``n``.

    The threshold is ``max(floor, coefficient * g(1/n + 1/N))`` with ``N`` the reference rows and
    ``g`` the identity for PSI and the square root for JS distance: under no drift PSI (like a
    chi-square over rows) shrinks as ``1/n + 1/N`` and the JS distance as its square root. A calibrated
    feature's coefficient is its bootstrap threshold at ``drift.window_rows`` divided by
    ``g(1/window_rows + 1/N)``, so at that row count the fleet threshold equals the single watcher's;
    its floor is ``drift.min_effect``. Fixed thresholds (``drift.thresholds: fixed`` or
    ``drift.feature_thresholds``) have coefficient 0 and the fixed value as floor.
    """
    cfg: DriftConfig = monitor.cfg
    names = monitor.reference.features
    at_window = monitor.thresholds
    x0 = 1.0 / cfg.window_rows + 1.0 / max(monitor.reference.rows, 1)
    g0 = x0 if cfg.method == "psi" else float(np.sqrt(x0))
    coef, floor = np.zeros(len(names)), np.zeros(len(names))
    for i, name in enumerate(names):
        if name in cfg.feature_thresholds or cfg.thresholds == "fixed":
            floor[i] = at_window[name]
        else:
            coef[i], floor[i] = at_window[name] / g0, cfg.min_effect
    return coef, floor


@dataclass
class _Version:
    version: str
    features: tuple[str, ...]
    n_bins: np.ndarray
    counts: np.ndarray  # (features, width)
    rows: float
    shares: np.ndarray
    reference_rows: int
    method: str
    coefficient: np.ndarray
    floor: np.ndarray


class FleetCounts(Collector):
    """The champion version's bin counters and reference gauges, as a collector on an injected registry."""

    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._v: _Version | None = None
        registry.register(self)

    def follow(self, version: int, monitor: DriftMonitor) -> None:
        """Start counting for ``version`` (from zero) and hook into ``monitor``; the old version stops."""
        ref = monitor.reference
        coef, floor = threshold_terms(monitor)
        v = _Version(str(version), ref.features, ref.n_bins.copy(), np.zeros_like(ref.counts), 0.0,
                     proportions(ref.counts), ref.rows, monitor.cfg.method, coef, floor)
        with self._lock:
            self._v = v
        monitor.on_counts = self._adder(v)

    def _adder(self, v: _Version):  # type: ignore[no-untyped-def]
        def add(counts: np.ndarray) -> None:
            with self._lock:
                v.counts += counts
                v.rows += float(counts[0].sum()) if counts.shape[0] else 0.0
        return add

    def snapshot(self) -> tuple[str, np.ndarray, float] | None:
        """``(version, counts, rows)`` of the version being counted (``None`` before a champion)."""
        with self._lock:
            v = self._v
            return None if v is None else (v.version, v.counts.copy(), v.rows)

    def describe(self) -> list[Metric]:
        """No fixed families: series appear once a champion is followed."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The current version's series."""
        with self._lock:
            v = self._v
            if v is None:
                return
            counts, rows = v.counts.copy(), v.rows
        m = self.model
        bins = CounterMetricFamily(BIN_ROWS, "Rows counted in each reference bin (add up across replicas).",
                                   labels=["model", "version", "feature", "bin"])
        share = GaugeMetricFamily(REFERENCE_SHARE, "Reference profile share of each bin.",
                                  labels=["model", "version", "feature", "bin"])
        for f, name in enumerate(v.features):
            for b in range(int(v.n_bins[f])):
                bins.add_metric([m, v.version, name, str(b)], float(counts[f, b]))
                share.add_metric([m, v.version, name, str(b)], float(v.shares[f, b]))
        total = CounterMetricFamily(ROWS, "Rows counted for drift (add up across replicas).",
                                    labels=["model", "version"])
        total.add_metric([m, v.version], rows)
        ref_rows = GaugeMetricFamily(REFERENCE_ROWS, "Rows behind the reference profile.",
                                     labels=["model", "version"])
        ref_rows.add_metric([m, v.version], float(v.reference_rows))
        coef = GaugeMetricFamily(THRESHOLD_COEFFICIENT,
                                 "Threshold coefficient: threshold = max(floor, coefficient * g(1/rows + "
                                 "1/reference_rows)), g = identity (psi) or sqrt (js).",
                                 labels=["model", "version", "feature", "method"])
        floor = GaugeMetricFamily(THRESHOLD_FLOOR, "Threshold floor (min_effect, or the fixed threshold).",
                                  labels=["model", "version", "feature", "method"])
        for f, name in enumerate(v.features):
            coef.add_metric([m, v.version, name, v.method], float(v.coefficient[f]))
            floor.add_metric([m, v.version, name, v.method], float(v.floor[f]))
        yield from (bins, total, share, ref_rows, coef, floor)
