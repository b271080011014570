"""Realized performance: one pure function per metric, checked on small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctloop.quality.realized import accuracy, log_loss, positive_rate, realized_metrics, roc_auc, slice_metrics

pytestmark = pytest.mark.unit


def test_accuracy_and_positive_rate_by_hand() -> None:
    yhat, y = np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1])
    assert accuracy(yhat, y) == 0.75
    assert positive_rate(yhat) == 0.75
    assert math.isnan(accuracy(np.array([]), np.array([])))


def test_roc_auc_by_hand_with_ties_and_one_class() -> None:
    # positives {0.8, 0.4}, negatives {0.4, 0.1}: pairs (0.8>0.4)=1, (0.8>0.1)=1, (0.4=0.4)=0.5, (0.4>0.1)=1
    p, y = np.array([0.8, 0.4, 0.4, 0.1]), np.array([1, 1, 0, 0])
    assert roc_auc(p, y) == pytest.approx(3.5 / 4)
    assert roc_auc(np.array([0.1, 0.9]), np.array([1, 0])) == 0.0
    assert math.isnan(roc_auc(np.array([0.3, 0.6]), np.array([1, 1])))


def test_log_loss_by_hand_and_clipped() -> None:
    p, y = np.array([0.9, 0.2]), np.array([1, 0])
    assert log_loss(p, y) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    assert math.isfinite(log_loss(np.array([0.0]), np.array([1])))  # clipped, not inf


def test_realized_metrics_and_slices_with_min_rows() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    y = np.array([1, 0, 0, 0, 1, 1])
    yhat = (p >= 0.5).astype(int)
    m = realized_metrics(p, yhat, y)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["positive_rate"] == 0.5
    slices = [{"plan": "basic"}] * 4 + [{"plan": "plus"}] * 2
    out = slice_metrics(p, yhat, y, slices, min_rows=3)
    assert list(out) == ["plan=basic"]  # plus has 2 rows < 3
    assert out["plan=basic"]["accuracy"] == pytest.approx(3 / 4)
