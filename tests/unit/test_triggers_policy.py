"""Trigger policy and ledger: dedupe, cooldown, one active run, budget, resolved; reasons in the ledger."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.errors import ConfigError
from ctloop.triggers.ledger import Ledger
from ctloop.triggers.payloads import PayloadError, parse_trigger_request, parse_webhook, webhook_triggers
from ctloop.triggers.policy import Trigger
from ctloop.triggers.rules import AlertRule, EmbeddedEvaluator, duration_seconds
from ctloop.triggers.sources import schedule_slot, schedule_trigger
from tests.helpers_triggers import Clock, RecordingSubmitter, build_service, trigger_project, webhook

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = Clock()
    cfg = load_config(trigger_project(tmp_path / "p", cooldown_minutes=30, daily_budget=2))
    svc = build_service(cfg, tmp_path / "subs.sqlite", clock=clock)
    yield svc, clock, RecordingSubmitter(tmp_path / "subs.sqlite")
    svc.stop()


def manual(key: str) -> Trigger:
    return Trigger("manual", "churn", episode=key, reason=f"test {key}")


def finish(svc, decision) -> None:  # type: ignore[no-untyped-def]
    svc.ledger.set_run(decision.trigger_id, run_status="succeeded", version=1)


def test_duplicate_active_cooldown_budget_each_recorded_with_reason(setup) -> None:  # type: ignore[no-untyped-def]
    svc, clock, rec = setup
    d1 = svc.handle(manual("a"))
    assert d1.fired and d1.run_id == manual("a").run_id
    # same episode again: duplicate, even after the run finished and the cooldown passed
    assert svc.handle(manual("a")).reason_code == "duplicate"
    # another episode while the run is active
    d = svc.handle(manual("b"))
    assert (d.fired, d.reason_code) == (False, "active_run")
    assert d1.run_id in d.reason
    finish(svc, d1)
    clock.advance(minutes=10)
    d = svc.handle(manual("c"))
    assert d.reason_code == "cooldown" and "triggers.cooldown_minutes=30" in d.reason
    clock.advance(minutes=25)
    d2 = svc.handle(manual("d"))
    assert d2.fired
    finish(svc, d2)
    clock.advance(minutes=31)
    d = svc.handle(manual("e"))
    assert d.reason_code == "budget" and "2 of 2" in d.reason
    assert svc.handle(manual("a")).reason_code == "duplicate"
    # a new UTC day resets the budget
    clock.now = clock.now.replace(hour=0, minute=5) + dt.timedelta(days=1)
    assert svc.handle(manual("f")).fired
    counts = svc.ledger.counts()
    assert counts == {
        "fired:fired": 3,
        "suppressed:duplicate": 2,
        "suppressed:active_run": 1,
        "suppressed:cooldown": 1,
        "suppressed:budget": 1,
    }
    assert [s["run_id"] for s in rec.submissions()] == [manual(k).run_id for k in "adf"]
    rows = svc.ledger.rows()
    assert all(r.reason for r in rows)
    assert (
        svc.registry.get_sample_value(
            "ctloop_triggers_total",
            {"model": "churn", "source": "manual", "decision": "suppressed", "reason": "cooldown"},
        )
        == 1.0
    )


def test_resolved_and_unknown_model_are_recorded_not_fired(setup) -> None:  # type: ignore[no-untyped-def]
    svc, _clock, rec = setup
    for t in webhook_triggers(parse_webhook(_json(webhook("resolved"))), "churn"):
        assert svc.handle(t).reason_code == "resolved"
    (t,) = webhook_triggers(parse_webhook(_json(webhook(model="other"))), "churn")
    d = svc.handle(t)
    assert d.reason_code == "unknown_model" and "'other'" in d.reason
    assert rec.submissions() == []


def test_alert_resends_share_a_key_new_episode_does_not() -> None:
    a = webhook_triggers(parse_webhook(_json(webhook())), "churn")[0]
    b = webhook_triggers(parse_webhook(_json(webhook())), "churn")[0]
    c = webhook_triggers(parse_webhook(_json(webhook(starts_at="2026-11-29T12:00:00Z"))), "churn")[0]
    assert a.idempotency_key == b.idempotency_key != c.idempotency_key
    assert a.lineage()["cause"] == "drift"


@pytest.mark.parametrize(
    "body,needle",
    [
        (b"{not json", "not valid JSON"),
        (b'{"version": "3", "groupKey": "g", "status": "firing", "alerts": []}', "version"),
        (b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": []}', "alerts"),
        (b'{"version": "4", "groupKey": "g", "status": "burning", "alerts": [{}]}', "status"),
    ],
)
def test_malformed_webhook_names_the_problem(body: bytes, needle: str) -> None:
    with pytest.raises(PayloadError, match=needle):
        parse_webhook(body)


def test_trigger_request_rejects_unknown_fields() -> None:
    with pytest.raises(PayloadError, match="bogus"):
        parse_trigger_request(b'{"reason": "x", "bogus": 1}')
    assert parse_trigger_request(b"").source == "manual"


def test_ledger_unique_fired_key_and_survives_reopen(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    now = dt.datetime.now(dt.UTC)
    with led.transaction() as c:
        led.insert(
            c,
            received_at=now,
            source="manual",
            model="m",
            decision="fired",
            reason_code="fired",
            reason="r",
            idempotency_key="k",
            run_id="m-1",
            run_status="pending",
        )
    with pytest.raises(sqlite3.IntegrityError), led.transaction() as c:
        led.insert(
            c,
            received_at=now,
            source="manual",
            model="m",
            decision="fired",
            reason_code="fired",
            reason="r",
            idempotency_key="k",
            run_id="m-2",
            run_status="pending",
        )
    led.close()
    led2 = Ledger(tmp_path / "l.sqlite")
    assert [r.run_id for r in led2.rows()] == ["m-1"]
    assert led2.active_rows()[0].run_status == "pending"
    mode = sqlite3.connect(tmp_path / "l.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_embedded_evaluator_follows_for_and_resolves() -> None:
    value = {"v": 0.1}
    ev = EmbeddedEvaluator(AlertRule("churn", 0.3, "10s"), lambda: value["v"])
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert ev.evaluate(t0) is None
    value["v"] = 0.5
    assert ev.evaluate(t0 + dt.timedelta(seconds=1)) is None  # pending
    assert ev.evaluate(t0 + dt.timedelta(seconds=5)) is None
    fired = ev.evaluate(t0 + dt.timedelta(seconds=11))
    assert fired is not None and not fired.resolved
    again = ev.evaluate(t0 + dt.timedelta(seconds=20))
    assert again is not None and again.idempotency_key == fired.idempotency_key
    value["v"] = 0.0
    res = ev.evaluate(t0 + dt.timedelta(seconds=30))
    assert res is not None and res.resolved
    assert ev.evaluate(t0 + dt.timedelta(seconds=31)) is None
    assert duration_seconds("1m30s") == 90


def test_schedule_slot_is_shared_by_watcher_and_cronjob(tmp_path: Path) -> None:
    cfg = load_config(trigger_project(tmp_path / "p", schedule="0 */6 * * *"))
    a = schedule_trigger(cfg, dt.datetime(2026, 11, 29, 7, 59, tzinfo=dt.UTC))
    b = schedule_trigger(cfg, dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.UTC))
    c = schedule_trigger(cfg, dt.datetime(2026, 11, 29, 12, 0, 1, tzinfo=dt.UTC))
    assert a.idempotency_key == b.idempotency_key != c.idempotency_key
    assert schedule_slot("0 */6 * * *", dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)).hour == 12


def test_bad_trigger_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="triggers.schedule"):
        load_config(trigger_project(tmp_path / "a", schedule="every day"))
    with pytest.raises(ConfigError, match="triggers.group_wait"):
        load_config(trigger_project(tmp_path / "b", group_wait="soon"))
    cfg = load_config(trigger_project(tmp_path / "c"))
    Path(cfg.triggers.token_file).unlink()
    with pytest.raises(ConfigError, match="token_file"):
        build_service(cfg, tmp_path / "s.sqlite")


def _json(doc: object) -> bytes:
    import json

    return json.dumps(doc).encode()


def test_embedded_evaluator_in_the_service_fires_once_through_the_policy(tmp_path: Path) -> None:
    from prometheus_client import Gauge

    drift = CollectorRegistry()
    gauge = Gauge("ctloop_drift_share", "drift share", ["model"], registry=drift)
    detected = Gauge("ctloop_drift_detected", "drifted", ["model", "feature"], registry=drift)
    detected.labels("churn", "age").set(1)
    detected.labels("churn", "income").set(0)
    detected.labels("other", "tenure").set(1)
    clock = Clock()
    cfg = load_config(trigger_project(tmp_path / "p", evaluation_interval="5s"))  # alert_for: 2s
    svc = build_service(cfg, tmp_path / "subs.sqlite", drift_registry=drift, clock=clock)
    try:
        assert svc.evaluator is not None
        gauge.labels("churn").set(0.6)
        decisions = []
        for _ in range(6):
            decisions += svc.tick()
            clock.advance(seconds=5)
        assert [d.reason_code for d in decisions] == [
            "fired",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
        ]
        first = svc.ledger.get(decisions[0].trigger_id)
        assert first.detail["drifted_features"] == ["age"] and "drifted: age" in first.reason
        gauge.labels("churn").set(0.0)
        (res,) = svc.tick()
        assert res.reason_code == "resolved"
        assert len(RecordingSubmitter(tmp_path / "subs.sqlite").submissions()) == 1
    finally:
        svc.stop()
    on = load_config(trigger_project(tmp_path / "q", prometheus=True))
    svc2 = build_service(on, tmp_path / "subs2.sqlite", drift_registry=drift)
    assert svc2.evaluator is None  # Prometheus in use: the embedded evaluator is off
    svc2.stop()


def test_crash_between_decision_and_submission_is_recovered_once(tmp_path: Path) -> None:
    cfg = load_config(trigger_project(tmp_path / "p"))
    subs = tmp_path / "subs.sqlite"
    svc = build_service(cfg, subs)
    d = svc.policy.decide(manual("crash"))  # decided and committed, then "killed" before submitting
    assert d.fired and svc.ledger.get(d.trigger_id).run_status == "pending"
    svc.ledger.close()
    for _ in range(2):  # restart twice: the pending run is submitted exactly once
        again = build_service(cfg, subs)
        again.recover()
        assert again.ledger.get(d.trigger_id).run_status == "submitted"
        assert again.handle(manual("crash")).reason_code == "duplicate"
        again.stop()
    assert [s["run_id"] for s in RecordingSubmitter(subs).submissions()] == [d.run_id]
