"""Value types shared by the prediction store, the performance trackers, the rules and the watcher."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PerformanceSnapshot:
    """Model quality of one model's serving version, as the watcher last computed it.

    Attributes:
        model: Model name.
        version: Serving (champion) version the numbers are for; ``None`` before a champion loads.
        realized: Metric name (``accuracy``, ``roc_auc``, ``log_loss``, ``positive_rate``) → value over the
            last ``monitoring.performance.window_rows`` labelled predictions of ``version``.
        labelled: Labelled predictions of ``version`` in that window.
        estimated: Metric name (``accuracy``, ``roc_auc``) → estimate from calibrated probabilities over the
            last ``monitoring.performance.estimated_window_rows`` predictions, without labels.
        estimated_band: Metric name → (low, high) band of the estimate.
        reference: Metric name → the serving version's gate value on its holdout.
        slices: ``"column=value"`` → metric name → realized value, for slices with enough labelled rows.
    """

    model: str
    version: int | None
    realized: dict[str, float] = field(default_factory=dict)
    labelled: int = 0
    estimated: dict[str, float] = field(default_factory=dict)
    estimated_band: dict[str, tuple[float, float]] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
