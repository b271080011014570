"""Model quality in the loop, end to end: pure concept drift with delayed labels through POST /labels.

The inputs never drift (the drift share stays under its threshold); the clean days' labels fire
nothing; once the concept-drifted day's labels arrive the realized accuracy falls, CtloopPerformanceDrop
fires and exactly one retrain runs (real KFP local runner), passes the gate and serves. Once with real
Prometheus + Alertmanager, once with the embedded evaluator. Small data (400 rows a day).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.demo.concept import ConceptResult, ConceptSettings, run_concept_episode
from ctloop.demo.record import iso_epoch
from tests.conftest import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _assert_episode(r: ConceptResult, mode: str) -> None:
    assert r.mode == mode
    fired = [x for x in r.ledger if x["decision"] == "fired"]
    assert len(fired) == 1, r.ledger  # exactly one retrain, and it came from the performance alert
    run = fired[0]
    assert run["source"] == "performance" and run["run_status"] == "succeeded" and run["version"] == 2
    assert "CtloopPerformanceDrop" in run["reason"]
    assert ("embedded evaluator" in run["reason"]) == (mode == "embedded")
    assert not [x for x in r.ledger if x["source"] == "alert" and not x["reason"].endswith("resolved")]
    assert r.max_drift_share < 0.25  # the drift watcher stayed quiet: the inputs never moved
    # the clean days' labels were joined (>= min_labelled rows) and fired nothing
    concept = {d["day"]: d["concept"] for d in r.days}
    clean = [d for d in r.days if d.get("labels_for") and not concept[d["labels_for"]]]
    assert clean and all(d["labels"]["matched"] == 400 for d in clean)
    assert all(d["realized_accuracy"] > 0.7 for d in clean)
    crossed = next(d for d in r.days if d.get("realized_accuracy") is not None and d["realized_accuracy"] < 0.6)
    assert crossed["estimated_accuracy"] > 0.7  # the estimate cannot see concept drift; labels can
    assert concept[crossed["labels_for"]] and crossed.get("events")
    # a clean stream fires no performance alert: nothing reached the policy before the crossing labels
    perf = [x for x in r.ledger if x["source"] == "performance"]
    assert perf and all(iso_epoch(x["received_at"]) >= crossed["labels_at"] for x in perf)
    v2 = next(v for v in r.versions if v["version"] == 2)
    assert v2["trigger"]["cause"] == "performance" and v2["trigger"]["trigger_id"] == run["id"]
    assert v2["parent"] == 1 and r.champion == 2 and r.served_version == 2
    assert r.timings["closed_loop_s"] >= r.timings["alert_s"] > 0


def test_concept_drift_fires_the_performance_alert_with_real_prometheus(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    _assert_episode(run_concept_episode(tmp_path / "p", ConceptSettings(prometheus="on")), "prometheus")


def test_concept_drift_fires_the_performance_alert_with_the_embedded_evaluator(tmp_path: Path) -> None:
    _assert_episode(run_concept_episode(tmp_path / "e", ConceptSettings(prometheus="off")), "embedded")
