"""The watcher's Prometheus metrics, on an injected registry, with bounded label sets.

Labels are only ``model`` (the configured model), ``feature`` (the champion's features), ``method``
(``psi``/``js``) and ``outcome`` (a fixed set). The reference version is a gauge value, not a label,
so a champion change never leaves stale series behind.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ctloop.drift.monitor import METHODS, Evaluation, FeatureScore
from ctloop.watcher.fleet import FleetCounts

OUTCOMES = ("accepted", "malformed", "oversize", "unknown_model", "no_reference", "joined",
            "unjoined_evicted")


class WatcherMetrics:
    """Gauges and counters of one watcher."""

    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.model = model
        self.score = Gauge("ctloop_drift_score", "Drift score of a feature in the last window.",
                           ["model", "feature", "method"], registry=registry)
        self.threshold = Gauge("ctloop_drift_threshold", "Decision threshold of a feature (window size).",
                               ["model", "feature", "method"], registry=registry)
        self.detected = Gauge("ctloop_drift_detected",
                              "1 when the feature is drifted (above threshold K windows in a row).",
                              ["model", "feature"], registry=registry)
        self.unseen = Gauge("ctloop_unseen_category_ratio",
                            "Share of a categorical feature's window values outside the vocabulary.",
                            ["model", "feature"], registry=registry)
        self.missing = Gauge("ctloop_missing_share_change",
                             "Window missing share minus the reference missing share.",
                             ["model", "feature"], registry=registry)
        self.share = Gauge("ctloop_drift_share", "Share of the model's features that are drifted.",
                           ["model"], registry=registry)
        self.prediction = Gauge("ctloop_prediction_drift_score",
                                "Drift of the model's output distribution vs the reference label balance.",
                                ["model", "method"], registry=registry)
        self.prediction_detected = Gauge("ctloop_prediction_drift_detected",
                                         "1 when the model's output distribution is drifted.",
                                         ["model"], registry=registry)
        self.window_rows = Gauge("ctloop_window_rows", "Rows in the last evaluated window.", ["model"],
                                 registry=registry)
        self.last_eval = Gauge("ctloop_last_evaluation_timestamp_seconds",
                               "Unix time of the last window evaluation.", ["model"], registry=registry)
        self.windows = Counter("ctloop_drift_windows", "Windows evaluated.", ["model"], registry=registry)
        self.version = Gauge("ctloop_drift_reference_version",
                             "Registry version whose reference profile the windows are scored against.",
                             ["model"], registry=registry)
        self.events = Counter("ctloop_watcher_events", "Payload events received, by outcome.", ["outcome"],
                              registry=registry)
        self.rows = Counter("ctloop_watcher_rows", "Rows ingested, by kind (request/response).", ["kind"],
                            registry=registry)
        self.reloads = Counter("ctloop_watcher_reloads", "Reference reloads, by outcome.", ["outcome"],
                               registry=registry)
        for o in OUTCOMES:
            self.events.labels(o)
        for k in ("request", "response"):
            self.rows.labels(k)
        for o in ("loaded", "failed"):
            self.reloads.labels(o)
        self.fleet = FleetCounts(registry, model)

    def reset(self, version: int, features: list[str]) -> None:
        """Drop per-feature series (a new reference may have other features) and set the version."""
        for g in (self.score, self.threshold, self.detected, self.unseen, self.missing):
            g.clear()
        m = self.model
        for f in features:
            self.detected.labels(m, f).set(0)
        self.share.labels(m).set(0)
        self.prediction_detected.labels(m).set(0)
        self.window_rows.labels(m).set(0)
        self.version.labels(m).set(version)

    def observe(self, ev: Evaluation) -> None:
        """Publish one window's evaluation."""
        m = self.model
        for s in ev.features:
            self._feature(s, ev.method)
        self.share.labels(m).set(ev.drift_share)
        self.window_rows.labels(m).set(ev.rows)
        self.last_eval.labels(m).set(ev.timestamp)
        self.windows.labels(m).inc()

    def observe_prediction(self, s: FeatureScore) -> None:
        """Publish one window's prediction-drift score."""
        m = self.model
        for method in METHODS:
            self.prediction.labels(m, method).set(getattr(s, method))
        self.prediction_detected.labels(m).set(int(s.drifted))

    def _feature(self, s: FeatureScore, method_used: str) -> None:
        m = self.model
        for method in METHODS:
            self.score.labels(m, s.feature, method).set(getattr(s, method))
        self.threshold.labels(m, s.feature, method_used).set(s.threshold)
        self.detected.labels(m, s.feature).set(int(s.drifted))
        if s.unseen_share is not None:
            self.unseen.labels(m, s.feature).set(s.unseen_share)
        self.missing.labels(m, s.feature).set(s.missing_share_change)
