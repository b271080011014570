"""The performance-drop alert: rendered from monitoring.performance, evaluated in-process with the same
conditions, and turned into trigger source ``performance`` recorded as the run's cause."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from ctloop.config import load_config
from ctloop.quality.types import PerformanceSnapshot
from ctloop.render import render_all
from ctloop.triggers.payloads import parse_webhook, webhook_triggers
from ctloop.triggers.performance import (
    ESTIMATED_ALERT,
    PERFORMANCE_ALERT,
    PerformanceEvaluator,
    PerformanceRule,
    estimated_breach,
    performance_rule,
    realized_breach,
)
from tests.helpers_performance import performance_project
from tests.helpers_triggers import RecordingSubmitter, build_service, webhook

pytestmark = pytest.mark.unit
T0 = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)
RULE = PerformanceRule("churn", "accuracy", 0.7, 0.05, 100, "10s", estimated_min=0.6)


def snap(acc: float | None, labelled: int = 500, ref: float | None = 0.8, est: float | None = None,
         version: int = 3) -> PerformanceSnapshot:
    return PerformanceSnapshot(
        "churn", version, realized={} if acc is None else {"accuracy": acc}, labelled=labelled,
        estimated={} if est is None else {"accuracy": est}, reference={} if ref is None else {"accuracy": ref})


# -- conditions -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("s", "fires", "why"),
    [
        (snap(0.69, ref=None), True, "< 0.7"),  # below min
        (snap(0.74), True, "below the gate value 0.800"),  # 0.06 below the gate value
        (snap(0.76), False, None),  # within max_drop and above min
        (snap(0.5, labelled=99), False, None),  # min_labelled guard
        (snap(0.5, labelled=100), True, "< 0.7"),
        (snap(None), False, None),  # nothing realized yet
    ],
)
def test_realized_conditions(s: PerformanceSnapshot, fires: bool, why: str | None) -> None:
    got = realized_breach(RULE, s)
    assert (got is not None) == fires
    if why:
        assert why in str(got)


def test_estimated_condition_only_when_configured() -> None:
    assert estimated_breach(RULE, snap(0.9, est=0.55)) == "estimated accuracy 0.550 < 0.6"
    assert estimated_breach(RULE, snap(0.9, est=0.65)) is None
    off = PerformanceRule("churn", "accuracy", 0.7, None, 100, "10s")
    assert estimated_breach(off, snap(0.9, est=0.1)) is None


# -- rendering -------------------------------------------------------------------------------------
def _perf_rules(cfg_path: Path, out: Path) -> list[dict]:
    render_all(load_config(cfg_path), out)
    groups = yaml.safe_load((out / "monitoring" / "rules.yml").read_text())["groups"]
    crd = yaml.safe_load((out / "base" / "prometheusrule.yaml").read_text())
    assert crd["spec"]["groups"] == groups  # one document for the cluster and the local Prometheus
    assert groups[0]["rules"][0]["alert"] == "CtloopDriftShareHigh"
    return [r for g in groups[1:] for r in g["rules"]]


def test_rules_follow_monitoring_performance(tmp_path: Path) -> None:
    rules = _perf_rules(performance_project(tmp_path / "a"), tmp_path / "oa")
    (rule,) = rules
    assert rule["alert"] == PERFORMANCE_ALERT and rule["for"] == "2s"
    assert rule["labels"] == {"severity": "warning", "ctloop": "retrain", "model": "churn",
                              "trigger": "performance", "metric": "accuracy",
                              "namespace": "ctloop"}
    assert '< 0.7' in rule["expr"] and '- 0.05)' in rule["expr"] and ">= 100" in rule["expr"]
    assert 'source="realized"' in rule["expr"] and "ctloop_model_reference_performance" in rule["expr"]
    only_min = _perf_rules(performance_project(tmp_path / "b", {"max_drop": None, "metric": "roc_auc"}),
                           tmp_path / "ob")
    assert "reference" not in only_min[0]["expr"] and 'metric="roc_auc"' in only_min[0]["expr"]
    both = _perf_rules(performance_project(tmp_path / "c", {"estimated_min": 0.6}), tmp_path / "oc")
    assert [r["alert"] for r in both] == [PERFORMANCE_ALERT, ESTIMATED_ALERT]
    assert 'source="estimated"' in both[1]["expr"] and "< 0.6" in both[1]["expr"]
    assert _perf_rules(performance_project(tmp_path / "d", {"min": None, "max_drop": None}), tmp_path / "od") == []


# -- embedded evaluator ----------------------------------------------------------------------------
def test_embedded_evaluator_follows_for_resolves_and_restarts_per_version() -> None:
    cur = {"s": snap(0.9)}
    ev = PerformanceEvaluator(RULE, lambda: cur["s"])
    assert ev.evaluate(T0) == []
    cur["s"] = snap(0.6)
    assert ev.evaluate(T0 + dt.timedelta(seconds=1)) == []  # pending (for: 10s)
    (fired,) = ev.evaluate(T0 + dt.timedelta(seconds=12))
    assert fired.source == "performance" and not fired.resolved
    assert PERFORMANCE_ALERT in fired.reason and "realized accuracy 0.600 < 0.7" in fired.reason
    assert fired.detail["version"] == 3 and fired.detail["labelled"] == 500
    (again,) = ev.evaluate(T0 + dt.timedelta(seconds=20))
    assert again.idempotency_key == fired.idempotency_key  # same episode: the policy dedupes
    cur["s"] = snap(0.6, version=4)  # a new champion that is still bad: a new episode, pending again
    (resolved,) = ev.evaluate(T0 + dt.timedelta(seconds=21))
    assert resolved.resolved
    assert ev.evaluate(T0 + dt.timedelta(seconds=22)) == []
    (second,) = ev.evaluate(T0 + dt.timedelta(seconds=33))
    assert second.idempotency_key != fired.idempotency_key and second.detail["version"] == 4
    cur["s"] = snap(0.6, labelled=10, version=4)  # the guard: too few labels resolves it
    (res2,) = ev.evaluate(T0 + dt.timedelta(seconds=34))
    assert res2.resolved
    cur["s"] = None
    assert ev.evaluate(T0 + dt.timedelta(seconds=50)) == []


def test_embedded_estimated_alert_is_its_own_episode() -> None:
    ev = PerformanceEvaluator(RULE, lambda: snap(0.9, est=0.5))
    assert ev.evaluate(T0) == []
    (fired,) = ev.evaluate(T0 + dt.timedelta(seconds=10))
    assert ESTIMATED_ALERT in fired.reason and fired.source == "performance"


# -- alert → policy → ledger → run, with the cause in the lineage ----------------------------------
def test_webhook_performance_alert_becomes_source_performance() -> None:
    body = webhook(group_key='{}:{alertname="CtloopPerformanceDrop", model="churn"}')
    for a in [body["alerts"][0]]:
        a["labels"] = {**a["labels"], "alertname": PERFORMANCE_ALERT, "trigger": "performance"}
    drift = webhook()["alerts"][0]
    body["alerts"].append({**drift, "fingerprint": "d1"})
    trigs = webhook_triggers(parse_webhook(json.dumps(body).encode()), "churn")
    assert sorted(t.source for t in trigs) == ["alert", "performance"]
    perf = next(t for t in trigs if t.source == "performance")
    assert perf.detail["alertnames"] == [PERFORMANCE_ALERT]
    assert perf.lineage()["cause"] == "performance"
    assert next(t for t in trigs if t.source == "alert").lineage()["cause"] == "drift"


def test_service_embedded_performance_alert_fires_exactly_one_run(tmp_path: Path) -> None:
    cfg = load_config(performance_project(tmp_path / "p", evaluation_interval="1s"))
    clock = {"now": T0}
    cur = {"s": snap(0.9)}
    from prometheus_client import CollectorRegistry

    from ctloop.triggers.service import TriggerService

    subs = tmp_path / "subs.sqlite"
    svc = TriggerService.create(cfg, CollectorRegistry(), submitter=RecordingSubmitter(subs),
                                clock=lambda: clock["now"], performance=lambda: cur["s"])
    try:
        assert svc.performance_evaluator is not None and svc.status()["embedded_performance_evaluator"]
        assert performance_rule(cfg).min_labelled == 100
        for i in range(5):  # a healthy model: nothing fires
            clock["now"] = T0 + dt.timedelta(seconds=2 * i)
            assert svc.tick() == []
        cur["s"] = snap(0.6)
        for i in range(5, 20):  # condition held well past for: 2s; fires once, then dedupes
            clock["now"] = T0 + dt.timedelta(seconds=2 * i)
            svc.tick()
        (sub,) = RecordingSubmitter(subs).submissions()
        assert sub["trigger"]["cause"] == "performance"
        assert "CtloopPerformanceDrop" in sub["trigger"]["reason"]
        fired = svc.ledger.rows(decision="fired")
        assert len(fired) == 1 and fired[0].source == "performance"
        assert {r.reason_code for r in svc.ledger.rows()} - {"fired"} <= {"duplicate", "active_run"}
    finally:
        svc.stop()


def test_prometheus_mode_and_no_snapshot_leave_the_embedded_evaluator_off(tmp_path: Path) -> None:
    cfg = load_config(performance_project(tmp_path / "p", prometheus=True))
    svc = build_service(cfg, tmp_path / "s.sqlite")
    try:
        assert svc.performance_evaluator is None
    finally:
        svc.stop()
    cfg2 = load_config(performance_project(tmp_path / "q"))
    svc2 = build_service(cfg2, tmp_path / "s2.sqlite")  # the caller passed no snapshot reader
    try:
        assert svc2.performance_evaluator is None
    finally:
        svc2.stop()
