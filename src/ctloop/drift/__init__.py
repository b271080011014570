"""Drift core (pure numpy): reference bins, statistics, window ring buffer, calibration, monitor."""

from ctloop.drift.calibrate import bootstrap_threshold
from ctloop.drift.monitor import DriftMonitor, Evaluation, FeatureScore
from ctloop.drift.reference import Reference
from ctloop.drift.stats import js_distance, missing_share_change, proportions, psi, unseen_share
from ctloop.drift.window import ClosedWindow, WindowRing

__all__ = [
    "ClosedWindow", "DriftMonitor", "Evaluation", "FeatureScore", "Reference", "WindowRing",
    "bootstrap_threshold", "js_distance", "missing_share_change", "proportions", "psi", "unseen_share",
]
