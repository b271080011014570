"""``TriggerService.cancel``: which rows can be canceled, what the submitter is asked (every call counted
by the recording submitter), what the ledger keeps, and what the policy does with a canceled run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.errors import CancelConflictError, TriggerNotFoundError
from ctloop.triggers.payloads import PayloadError, parse_cancel_request, parse_trigger_id
from ctloop.triggers.policy import Trigger
from ctloop.triggers.submitters import RunUpdate
from tests.helpers_triggers import Clock, RecordingSubmitter, build_service, trigger_project, wait_for

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = Clock()
    cfg = load_config(trigger_project(tmp_path / "p", cooldown_minutes=30, daily_budget=3))
    svc = build_service(cfg, tmp_path / "subs.sqlite", clock=clock)
    yield svc, clock, svc.submitter
    svc.stop()


def manual(key: str) -> Trigger:
    return Trigger("manual", "churn", episode=key, reason=f"test {key}")


def test_pending_and_submit_failed_are_canceled_without_asking_the_submitter(setup) -> None:  # type: ignore[no-untyped-def]
    svc, clock, rec = setup
    pending = svc.policy.decide(manual("a"))  # fired and recorded, not yet submitted (a crash here)
    row = svc.cancel(pending.trigger_id, "ops: wrong data window")
    assert row.run_status == "canceled" and row.detail["error"] == "canceled: ops: wrong data window"
    assert row.detail["cancel"]["reason"] == "ops: wrong data window"
    assert row.reason.startswith("manual: ")  # the policy's reason stays as recorded
    svc.recover()  # a restart does not submit it
    assert rec.submissions() == [] and rec.cancels() == []
    assert svc.policy.status("churn")["active_run"] is None

    clock.advance(minutes=31)
    failed = svc.policy.decide(manual("b"))
    svc.ledger.set_run(failed.trigger_id, run_status="submit_failed", error="kfp down", now=clock())
    svc.cancel(failed.trigger_id, "not needed any more")
    clock.advance(hours=1)
    svc.retry_failed_submits(clock())  # a canceled submission is never retried
    svc.tick()
    assert svc.ledger.get(failed.trigger_id).run_status == "canceled"
    assert rec.submissions() == [] and rec.cancels() == []


def test_a_submitted_run_is_stopped_through_the_submitter_once(setup) -> None:  # type: ignore[no-untyped-def]
    svc, _clock, rec = setup
    d = svc.handle(manual("a"))
    assert svc.ledger.get(d.trigger_id).run_status == "submitted"
    row = svc.cancel(d.trigger_id, "by alice: bad labels")
    assert [(c["run_id"], c["trigger_id"]) for c in rec.cancels()] == [(d.run_id, d.trigger_id)]
    assert row.run_status == "canceled" and row.external_id == f"rec-{d.run_id}"
    assert row.detail["cancel"]["reason"] == "by alice: bad labels"
    assert svc.policy.status("churn")["active_run"] is None


def test_refusals_say_why_and_ask_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    svc, clock, rec = setup
    with pytest.raises(TriggerNotFoundError, match="no trigger #99"):
        svc.cancel(99, "x")
    d = svc.handle(manual("a"))
    dup = svc.handle(manual("a"))
    with pytest.raises(CancelConflictError, match=rf"trigger #{dup.trigger_id} was suppressed \(duplicate"):
        svc.cancel(dup.trigger_id, "x")
    svc.ledger.set_run(d.trigger_id, run_status="succeeded", version=1)
    before = svc.ledger.get(d.trigger_id)
    with pytest.raises(CancelConflictError, match=rf"run {d.run_id} is already succeeded"):
        svc.cancel(d.trigger_id, "x")
    assert svc.ledger.get(d.trigger_id) == before  # recorded state intact
    clock.advance(minutes=31)
    d2 = svc.handle(manual("b"))
    svc.cancel(d2.trigger_id, "first")
    with pytest.raises(CancelConflictError, match="already canceled"):
        svc.cancel(d2.trigger_id, "second")
    assert svc.ledger.get(d2.trigger_id).detail["cancel"]["reason"] == "first"
    assert len(rec.cancels()) == 1


def test_a_run_that_ended_first_keeps_its_outcome(setup) -> None:  # type: ignore[no-untyped-def]
    svc, _clock, rec = setup
    d = svc.handle(manual("a"))
    rec.cancel_answer = "succeeded"  # the orchestrator reports the run finished before the stop
    with pytest.raises(CancelConflictError, match="already succeeded"):
        svc.cancel(d.trigger_id, "too late")
    row = svc.ledger.get(d.trigger_id)
    assert row.run_status == "succeeded" and "cancel" not in row.detail
    assert len(rec.cancels()) == 1


def test_late_reports_do_not_reopen_a_canceled_row_but_a_success_is_the_truth(setup) -> None:  # type: ignore[no-untyped-def]
    svc, _clock, _rec = setup
    d = svc.handle(manual("a"))
    row = svc.cancel(d.trigger_id, "stop")
    req = svc._request(row)
    for stale in ("running", "submitted", "failed", "canceled"):  # a poll that raced the cancel
        svc.record_update(req, RunUpdate(stale, external_id="x", error="stale"))
        kept = svc.ledger.get(d.trigger_id)
        assert (kept.run_status, kept.detail["error"]) == ("canceled", "canceled: stop"), stale
    svc.record_update(req, RunUpdate("succeeded", external_id="x", version=4))
    row = svc.ledger.get(d.trigger_id)
    assert (row.run_status, row.version) == ("succeeded", 4)  # it registered v4 before it was stopped
    svc.record_update(req, RunUpdate("running"))
    assert svc.ledger.get(d.trigger_id).run_status == "succeeded"  # a finished run stays finished


def test_canceled_counts_for_cooldown_and_budget_like_any_finished_run(setup) -> None:  # type: ignore[no-untyped-def]
    svc, clock, _rec = setup
    fired = []
    for key in ("a", "b", "c"):
        d = svc.handle(manual(key))
        assert d.fired, d.reason
        fired.append(d)
        svc.cancel(d.trigger_id, "stop")
        nxt = svc.handle(manual(f"{key}-next"))  # no longer the active run, but the cooldown holds
        assert nxt.reason_code == "cooldown", nxt.reason
        clock.advance(minutes=31)
    assert svc.handle(manual("d")).reason_code == "budget"  # 3 runs fired today, canceled or not
    clock.advance(days=1)
    assert svc.handle(manual("e")).fired


def test_a_cancel_during_the_submission_stops_the_run_it_started(tmp_path: Path) -> None:
    """The row is canceled while ``submit`` is in flight (no run yet): once ``submit`` returns, the run
    it started is stopped, once, and the row stays canceled with its reason."""
    cfg = load_config(trigger_project(tmp_path / "p"))
    svc = build_service(cfg, tmp_path / "subs.sqlite", submit_delay=1.5)
    rec = RecordingSubmitter(tmp_path / "subs.sqlite")
    try:
        out: list[object] = []
        th = threading.Thread(target=lambda: out.append(svc.handle(manual("a"))))
        th.start()
        wait_for(lambda: rec.submissions(), 10, "the submit call")  # recorded, its answer 1.5 s away
        (sub,) = rec.submissions()
        row = svc.ledger.get(sub["trigger_id"])
        assert row.run_status == "pending"
        svc.cancel(row.id, "changed my mind")
        assert rec.cancels() == []  # no run yet: nothing to ask
        th.join(10)
        assert [c["run_id"] for c in rec.cancels()] == [row.run_id]
        after = svc.ledger.get(row.id)
        assert after.run_status == "canceled" and after.detail["cancel"]["reason"] == "changed my mind"
    finally:
        svc.stop()


@pytest.mark.parametrize("text", ["abc", "0", "-1", "1.5", "", "1" * 19, "١٢"])
def test_bad_trigger_ids(text: str) -> None:
    with pytest.raises(PayloadError, match="is not a positive integer"):
        parse_trigger_id(text, "POST /triggers/x/cancel")


def test_cancel_body() -> None:
    assert parse_cancel_request(b"").reason == ""
    assert parse_cancel_request(b'{"reason": "bad data"}').reason == "bad data"
    with pytest.raises(PayloadError, match="by: Extra inputs"):
        parse_cancel_request(b'{"reason": "x", "by": "me"}')
    with pytest.raises(PayloadError, match="reason: String should have at most 2000"):
        parse_cancel_request(b'{"reason": "' + b"x" * 2001 + b'"}')
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse_cancel_request(b"{reason")
