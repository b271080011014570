"""Drift monitor: windows of live rows scored against the reference, with the K-consecutive rule."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ctloop.config import DriftConfig
from ctloop.drift.calibrate import bootstrap_threshold
from ctloop.drift.reference import Batch, Reference
from ctloop.drift.stats import js_distance, missing_share_change, psi, unseen_share
from ctloop.drift.window import ClosedWindow, WindowRing
from ctloop.errors import DriftError, EventError

METHODS = ("psi", "js")
PREDICTION = "prediction"


@dataclass(frozen=True)
class FeatureScore:
    """One feature's scores in one window."""

    feature: str
    kind: str
    psi: float
    js: float
    unseen_share: float | None
    missing_share_change: float
    threshold: float
    above: bool
    streak: int
    drifted: bool


@dataclass(frozen=True)
class Evaluation:
    """The scores of one closed window."""

    window: int
    rows: int
    timestamp: float
    method: str
    features: list[FeatureScore]
    drifted: list[str]
    drift_share: float
    prediction: FeatureScore | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class _Rule:
    thresholds: np.ndarray  # (slots, features)
    streak: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.streak = np.zeros(self.thresholds.shape[1], dtype=int)

    def apply(self, scores: np.ndarray, chunks: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        thr = self.thresholds[chunks - 1]
        above = scores > thr
        self.streak = np.where(above, self.streak + 1, 0)
        return above, self.streak >= k


def _statistic(method: str):  # type: ignore[no-untyped-def]
    return psi if method == "psi" else js_distance


def _thresholds(ref_counts: np.ndarray, ref_rows: int, names: Sequence[str], cfg: DriftConfig,
                step: int, slots: int) -> np.ndarray:
    """Thresholds of the decision method, shape ``(slots, features)`` (one row per window size)."""
    out = np.zeros((slots, len(names)))
    for f, name in enumerate(names):
        for s in range(slots):
            if name in cfg.feature_thresholds:
                out[s, f] = cfg.feature_thresholds[name]
            elif cfg.thresholds == "fixed":
                out[s, f] = cfg.psi_threshold if cfg.method == "psi" else cfg.js_threshold
            else:
                cal = bootstrap_threshold(ref_counts[f], ref_rows, step * (s + 1), _statistic(cfg.method),
                                          cfg.false_alarm_rate, cfg.bootstrap_samples,
                                          cfg.seed + 7919 * f + s)
                out[s, f] = max(cal, cfg.min_effect)
    return out


def _tee(counts_of: Callable[[int, int], np.ndarray],
         listen: Callable[[np.ndarray], None]) -> Callable[[int, int], np.ndarray]:
    """``counts_of`` that also hands every counted chunk to ``listen``."""
    def counts(a: int, b: int) -> np.ndarray:
        c = counts_of(a, b)
        listen(c)
        return c
    return counts


def _prediction_reference(balance: Mapping[str, float], rows: int) -> np.ndarray | None:
    if len(balance) != 2:
        return None
    keys = sorted(balance)
    return np.array([[balance[keys[0]], balance[keys[1]]]]) * max(rows, 1)


class DriftMonitor:
    """Windows of live rows and predictions, scored against a :class:`Reference`."""

    def __init__(self, reference: Reference, cfg: DriftConfig) -> None:
        unknown = sorted(set(cfg.feature_thresholds) - set(reference.features) - {PREDICTION})
        if unknown:
            raise DriftError(f"drift.feature_thresholds: unknown feature(s) {unknown}; "
                             f"the model's features are {list(reference.features)}")
        self.reference = reference
        self.cfg = cfg
        step = cfg.slide_rows or cfg.window_rows
        slots = cfg.window_rows // step
        names = reference.features
        self._step, self._slots = step, slots
        self._rule = _Rule(_thresholds(reference.counts, reference.rows, names, cfg, step, slots))
        self._cat = np.arange(len(reference.numeric), len(names))
        self._other_bin = reference.n_bins[self._cat] - 2
        self._pred_ref = _prediction_reference(reference.label_balance, reference.rows)
        self._pred_rule = (_Rule(_thresholds(self._pred_ref, reference.rows, [PREDICTION], cfg, step, slots))
                           if self._pred_ref is not None else None)
        self.on_counts: Callable[[np.ndarray], None] | None = None  # sees every counted chunk (fleet counters)
        self.restart()

    def restart(self) -> None:
        """Empty the windows and the consecutive-window streaks (calibrated thresholds are kept)."""
        self._ring = WindowRing((len(self.reference.features), self.reference.width), self._step, self._slots)
        self._pred_ring = WindowRing((1, 2), self._step, self._slots)
        self._rule.streak[:] = 0
        if self._pred_rule is not None:
            self._pred_rule.streak[:] = 0
        self.last: Evaluation | None = None
        self.last_prediction: FeatureScore | None = None
        self.rows_seen = 0
        self.predictions_seen = 0

    @property
    def thresholds(self) -> dict[str, float]:
        """Each feature's threshold at the full window size."""
        return dict(zip(self.reference.features, self._rule.thresholds[-1].tolist(), strict=True))

    @property
    def window_rows(self) -> int:
        """Rows in the current (closed) window."""
        return self._ring.window_rows

    @property
    def windows(self) -> int:
        """Windows closed so far."""
        return self._ring.windows

    def ingest(self, columns: Mapping[str, Any], rows: int) -> list[Evaluation]:
        """Bin a batch of rows (columns by feature name) and return the windows it closed.

        Raises:
            EventError: When a column holds values of the wrong type or length (nothing is counted).
        """
        return self.add(self.reference.prepare(columns, rows))

    def add(self, batch: Batch) -> list[Evaluation]:
        """Add a batch already validated by :meth:`Reference.prepare`; return the windows it closed."""
        if batch.rows <= 0:
            return []
        self.rows_seen += batch.rows
        out = []
        counts_of = batch.counts if self.on_counts is None else _tee(batch.counts, self.on_counts)
        for win in self._ring.add(batch.rows, counts_of):
            ev = self._evaluate(win)
            if ev is not None:
                out.append(ev)
        return out

    @staticmethod
    def check_predictions(predictions: np.ndarray) -> np.ndarray:
        """Model outputs as a flat float array.

        Raises:
            EventError: When a prediction is not a number in [0, 1].
        """
        p = np.asarray(predictions, dtype=float).ravel()
        if not np.all((p >= 0) & (p <= 1)):
            raise EventError("predictions: expected positive-class probabilities or 0/1 labels in [0, 1]")
        return p

    def ingest_predictions(self, predictions: np.ndarray) -> list[FeatureScore]:
        """Add model outputs (positive-class probabilities or 0/1 labels); return closed-window scores.

        Raises:
            EventError: When a prediction is not a number in [0, 1] (nothing is counted).
        """
        p = self.check_predictions(predictions)
        if p.size == 0 or self._pred_rule is None or self._pred_ref is None:
            return []
        self.predictions_seen += p.size
        cs = np.concatenate([[0.0], np.cumsum(p)])

        def counts(a: int, b: int) -> np.ndarray:
            pos = cs[b] - cs[a]
            return np.array([[(b - a) - pos, pos]])

        out = []
        for win in self._pred_ring.add(p.size, counts):
            if win.rows < self.cfg.min_rows:
                continue
            s_psi = float(psi(self._pred_ref[0], win.counts[0]))
            s_js = float(js_distance(self._pred_ref[0], win.counts[0]))
            above, drifted = self._pred_rule.apply(np.array([s_psi if self.cfg.method == "psi" else s_js]),
                                                   win.chunks, self.cfg.consecutive_windows)
            score = FeatureScore(PREDICTION, "prediction", s_psi, s_js, None, 0.0,
                                 float(self._pred_rule.thresholds[win.chunks - 1, 0]), bool(above[0]),
                                 int(self._pred_rule.streak[0]), bool(drifted[0]))
            self.last_prediction = score
            out.append(score)
        return out

    def _evaluate(self, win: ClosedWindow) -> Evaluation | None:
        if win.rows < self.cfg.min_rows:
            return None
        ref = self.reference
        s_psi = np.asarray(psi(ref.counts, win.counts))
        s_js = np.asarray(js_distance(ref.counts, win.counts))
        decision = s_psi if self.cfg.method == "psi" else s_js
        above, drifted = self._rule.apply(decision, win.chunks, self.cfg.consecutive_windows)
        miss = win.counts[np.arange(len(ref.features)), ref.missing_bin]
        miss_change = np.asarray(missing_share_change(ref.missing_share, miss, win.rows))
        unseen = np.full(len(ref.features), np.nan)
        if self._cat.size:
            unseen[self._cat] = unseen_share(win.counts[self._cat], self._other_bin)
        thr = self._rule.thresholds[win.chunks - 1]
        scores = [
            FeatureScore(name, "numeric" if i < len(ref.numeric) else "categorical", float(s_psi[i]),
                         float(s_js[i]), None if np.isnan(unseen[i]) else float(unseen[i]),
                         float(miss_change[i]), float(thr[i]), bool(above[i]), int(self._rule.streak[i]),
                         bool(drifted[i]))
            for i, name in enumerate(ref.features)
        ]
        names = [s.feature for s in scores if s.drifted]
        ev = Evaluation(self._ring.windows, win.rows, time.time(), self.cfg.method, scores, names,
                        len(names) / max(len(scores), 1), self.last_prediction)
        self.last = ev
        return ev
