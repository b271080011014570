"""The trigger service: policy + ledger + submitter, and the background loop (schedule, volume,
embedded evaluators of the drift and performance alerts, run outcomes, crash recovery). The watcher
owns one and mounts its routes."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig
from ctloop.errors import CancelConflictError, ConfigError, CtloopError, SubmitError
from ctloop.quality.types import PerformanceSnapshot
from ctloop.triggers.ledger import Ledger, LedgerRow, iso, utcnow
from ctloop.triggers.orchestrators import ORCHESTRATORS, orchestrator_submitter
from ctloop.triggers.performance import PerformanceEvaluator, performance_rule
from ctloop.triggers.policy import Decision, Policy, Trigger
from ctloop.triggers.rules import (
    DETECTED_METRIC,
    DRIFT_METRIC,
    EmbeddedEvaluator,
    alert_rule,
    duration_seconds,
)
from ctloop.triggers.sources import next_slot, volume_trigger
from ctloop.triggers.submitters import (
    FINAL_STATUSES,
    KfpSubmitter,
    LocalSubmitter,
    RunRequest,
    RunUpdate,
    Submitter,
)

log = logging.getLogger("ctloop.triggers")


def read_token(path: str | Path) -> str:
    """The bearer token from its file (a mounted Secret on a cluster).

    Raises:
        ConfigError: When the file is missing or empty.
    """
    p = Path(path)
    try:
        token = p.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"triggers.token_file {p}: cannot read the trigger token ({exc}); create it, e.g. "
            f"`openssl rand -hex 32 > {p}`"
        ) from exc
    if not token:
        raise ConfigError(f"triggers.token_file {p}: the token file is empty")
    return token


def drifted_features(registry: CollectorRegistry, model: str) -> list[str]:
    """Features whose ``ctloop_drift_detected{model, feature}`` is set in the watcher's registry."""
    out = set()
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == DETECTED_METRIC and s.labels.get("model") == model and s.value > 0:
                out.add(s.labels.get("feature", ""))
    return sorted(out - {""})


def _kept_from(status: str) -> tuple[str, ...]:
    """The recorded statuses a report of ``status`` must not overwrite."""
    if status not in FINAL_STATUSES:
        return FINAL_STATUSES  # a finished run stays finished
    if status == "succeeded":
        return ()  # a registered version is the truth, even over a cancel
    return ("canceled",)  # a cancel and its reason stand against a later failed/canceled report


def default_pipeline_file() -> Path:
    """The compiled training pipeline shipped with ctloop."""
    import pipelines.training

    return Path(pipelines.training.__file__).with_name("pipeline.yaml")


@dataclass
class TriggerService:
    """Everything the trigger endpoints and loops need.

    Build one with :meth:`create` at the service's entry point and call :meth:`start`/:meth:`stop`
    from its lifespan.
    """

    cfg: ProjectConfig
    ledger: Ledger
    policy: Policy
    submitter: Submitter
    registry: CollectorRegistry
    clock: Callable[[], dt.datetime] = utcnow
    drift_registry: CollectorRegistry | None = None
    tick_seconds: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    evaluator: EmbeddedEvaluator | None = None
    _next_schedule: dt.datetime | None = None
    _next_volume: dt.datetime | None = None
    _next_eval: dt.datetime | None = None
    performance_evaluator: PerformanceEvaluator | None = None

    @classmethod
    def create(
        cls,
        cfg: ProjectConfig,
        registry: CollectorRegistry,
        submitter: Submitter | Callable[[TriggerService], Submitter] | None = None,
        drift_registry: CollectorRegistry | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        performance: Callable[[], PerformanceSnapshot | None] | None = None,
    ) -> TriggerService:
        """Open the ledger, check the token file, and pick the submitter from ``triggers.submitter``.

        Args:
            cfg: The project config.
            registry: Where the trigger metrics go.
            submitter: A submitter, or a factory taking the service (default: from the config).
            drift_registry: The watcher's registry holding ``ctloop_drift_share`` (embedded evaluator).
            clock: Time source (tests).
            performance: The watcher's performance snapshot (embedded evaluator of the performance alerts).
        """
        read_token(cfg.triggers.token_file)
        ledger = Ledger(cfg.triggers.ledger)
        policy = Policy(cfg.triggers, ledger, {cfg.name}, registry, clock=clock)
        svc = cls(
            cfg,
            ledger,
            policy,
            submitter=None,  # type: ignore[arg-type]
            registry=registry,
            clock=clock,
            drift_registry=drift_registry,
        )
        if submitter is None:
            if cfg.triggers.submitter == "kfp":
                svc.submitter = KfpSubmitter.from_config(cfg)  # the pipeline as this config places it
            elif cfg.triggers.submitter in ORCHESTRATORS:
                svc.submitter = orchestrator_submitter(cfg)
            else:
                svc.submitter = LocalSubmitter(cfg, svc.record_update)
        elif callable(submitter) and not hasattr(submitter, "submit"):
            svc.submitter = submitter(svc)
        else:
            svc.submitter = submitter  # type: ignore[assignment]
        # fleet mode (drift.aggregation: prometheus): only Prometheus sees every replica's counts
        if not cfg.triggers.prometheus and cfg.drift.aggregation != "local":
            log.warning("drift.aggregation is prometheus but triggers.prometheus is false: no drift alerts "
                        "until Prometheus evaluates the rendered rules (set triggers.prometheus: true)")
        if not cfg.triggers.prometheus and cfg.drift.aggregation == "local" and drift_registry is not None:
            reg = drift_registry
            svc.evaluator = EmbeddedEvaluator(
                alert_rule(cfg),
                lambda: reg.get_sample_value(DRIFT_METRIC, {"model": cfg.name}),
                lambda: drifted_features(reg, cfg.name),
            )
        if not cfg.triggers.prometheus and performance is not None:
            rule = performance_rule(cfg)
            if rule.rules():
                svc.performance_evaluator = PerformanceEvaluator(rule, performance)
        return svc

    # -- triggers ------------------------------------------------------------------------------
    def handle(self, trigger: Trigger) -> Decision:
        """Run one trigger through the policy; submit it when it fires."""
        decision = self.policy.decide(trigger)
        if decision.fired:
            self._submit(self.ledger.get(decision.trigger_id))
        return decision

    def _request(self, row: LedgerRow) -> RunRequest:
        lineage = dict(row.detail.get("lineage") or {"cause": row.source})
        lineage["trigger_id"] = row.id
        lineage["run_id"] = row.run_id
        return RunRequest(row.id, str(row.run_id), lineage)

    def _submit(self, row: LedgerRow) -> None:
        req = self._request(row)
        try:
            update = self.submitter.submit(req)
        except SubmitError as exc:
            log.error("trigger #%s: %s", row.id, exc)
            self.ledger.set_run(row.id, run_status="submit_failed", error=str(exc), now=self.clock(),
                                unless=("canceled",))
            return
        self.record_update(req, update, only_if_pending=True)
        if self.ledger.get(row.id).run_status == "canceled":
            self._stop_late(req)

    def _stop_late(self, req: RunRequest) -> None:
        """The trigger was canceled while its submission was in flight: stop the run it started."""
        try:
            after = self.submitter.cancel(req)
        except SubmitError as exc:
            log.error("trigger #%s was canceled during its submission, but its run %s could not be stopped: %s",
                      req.trigger_id, req.run_id, exc)
            return
        if after is not None and after.run_status == "succeeded":
            self.record_update(req, after)  # it finished (and registered) first: the ledger says so

    def record_update(self, req: RunRequest, update: RunUpdate, only_if_pending: bool = False) -> None:
        """Write a run's status/outcome to its trigger row (submitter callback).

        A finished run stays finished (a late or stale report of an earlier state is dropped), and a
        canceled row keeps its cancel and reason unless the run turns out to have succeeded (it
        registered a version before it was stopped): the ledger then says ``succeeded``.
        """
        self.ledger.set_run(
            req.trigger_id,
            run_status=update.run_status,
            external_id=update.external_id,
            version=update.version,
            error=update.error,
            now=self.clock(),
            unless=FINAL_STATUSES if only_if_pending else _kept_from(update.run_status),
        )

    def cancel(self, trigger_id: int, reason: str) -> LedgerRow:
        """Cancel a fired trigger's run and record ``canceled`` with ``reason``; return the updated row.

        A trigger still ``pending`` or ``submit_failed`` has no run: it is marked ``canceled`` without
        asking the submitter, so neither recovery nor :meth:`retry_failed_submits` submits it again. Any
        other run is stopped through the submitter. A canceled run is no longer the model's active run;
        like any finished run it still counts for ``triggers.cooldown_minutes`` and
        ``triggers.daily_budget``.

        Raises:
            TriggerNotFoundError: No trigger with this id.
            CancelConflictError: The trigger was suppressed (no run), or its run already ended (the run
                may end on its own just before the submitter stops it: that outcome is recorded).
            SubmitError: The orchestrator could not be asked to stop the run (the row is unchanged).
        """
        row = self._cancellable(self.ledger.get(trigger_id))
        note: dict[str, Any] = {"cancel": {"reason": reason, "at": iso(self.clock())}}
        if row.run_status in ("pending", "submit_failed"):
            # only while it has no run: a submission that lands meanwhile makes it `submitted`
            if self._mark_canceled(row, reason, note, unless=(*FINAL_STATUSES, "submitted", "running")):
                return self.ledger.get(trigger_id)
            row = self._cancellable(self.ledger.get(trigger_id))  # submitted meanwhile: stop its run
        req = self._request(row)
        after = self.submitter.cancel(req)
        if after is not None and after.run_status in FINAL_STATUSES and after.run_status != "canceled":
            self.record_update(req, after)  # it ended on its own first
            raise CancelConflictError(self._ended(row, after.run_status))
        if after is None:
            note["cancel"]["note"] = f"{self.submitter.name} has no run {row.run_id}: nothing to stop"
        ext = after.external_id if after is not None else None
        if not self._mark_canceled(row, reason, note, unless=("succeeded",), external_id=ext):
            raise CancelConflictError(self._ended(row, "succeeded"))
        log.info("trigger #%s: run %s canceled (%s)", row.id, row.run_id, reason)
        return self.ledger.get(trigger_id)

    def _cancellable(self, row: LedgerRow) -> LedgerRow:
        """The row, when it has a run that may still be stopped; else CancelConflictError."""
        if row.decision != "fired":
            raise CancelConflictError(
                f"trigger #{row.id} was {row.decision} ({row.reason_code}: {row.reason}); it has no run to cancel"
            )
        if row.run_status in FINAL_STATUSES:
            raise CancelConflictError(self._ended(row, str(row.run_status)))
        return row

    @staticmethod
    def _ended(row: LedgerRow, status: str) -> str:
        return f"trigger #{row.id}: run {row.run_id} is already {status}; nothing to cancel"

    def _mark_canceled(self, row: LedgerRow, reason: str, note: dict[str, Any], unless: tuple[str, ...],
                       external_id: str | None = None) -> bool:
        return self.ledger.set_run(row.id, run_status="canceled", external_id=external_id,
                                   error=f"canceled: {reason}", now=self.clock(), unless=unless, detail=note)

    def recover(self) -> None:
        """After a restart: for fired triggers still ``pending`` ask the submitter whether the run
        exists (it may have been submitted just before the crash) and submit only when it does not;
        ask about runs that were in flight."""
        for row in self.ledger.active_rows():
            if row.run_status == "pending":
                req = self._request(row)
                try:
                    found = self.submitter.lookup(req)
                except SubmitError as exc:
                    log.error("trigger #%s: cannot tell whether run %s exists: %s", row.id, req.run_id, exc)
                    self.ledger.set_run(row.id, run_status="submit_failed", error=str(exc), now=self.clock())
                    continue
                if found is None:
                    self._submit(row)
                else:
                    self.record_update(req, found, only_if_pending=True)
            else:
                self._poll(row)

    def _poll(self, row: LedgerRow) -> None:
        req = self._request(row)
        update = self.submitter.poll(req, row.external_id)
        if update is not None and update.run_status != row.run_status:
            self.record_update(req, update)

    # -- background loop -------------------------------------------------------------------------
    def tick(self) -> list[Decision]:
        """One pass of the loop: schedule, volume, embedded evaluator, run outcomes."""
        now = self.clock()
        out: list[Decision] = []
        t = self.cfg.triggers
        if t.schedule and t.schedule_by == "watcher":
            if self._next_schedule is None:
                self._next_schedule = next_slot(t.schedule, now)
            elif now >= self._next_schedule:
                from ctloop.triggers.sources import schedule_trigger

                out.append(self.handle(schedule_trigger(self.cfg, self._next_schedule)))
                self._next_schedule = next_slot(t.schedule, now)
        if t.volume_rows is not None and (self._next_volume is None or now >= self._next_volume):
            self._next_volume = now + dt.timedelta(seconds=t.volume_check_seconds)
            try:
                trig = volume_trigger(self.cfg)
            except CtloopError as exc:
                log.warning("volume check failed: %s", exc)
                trig = None
            if trig is not None:
                out.append(self.handle(trig))
        due = self._next_eval is None or now >= self._next_eval
        if due and (self.evaluator is not None or self.performance_evaluator is not None):
            self._next_eval = now + dt.timedelta(seconds=duration_seconds(t.evaluation_interval))
            trig = self.evaluator.evaluate(now) if self.evaluator is not None else None
            if trig is not None:
                out.append(self.handle(trig))
            if self.performance_evaluator is not None:
                out.extend(self.handle(p) for p in self.performance_evaluator.evaluate(now))
        for row in self.ledger.active_rows():
            if row.run_status != "pending":
                self._poll(row)
        self.retry_failed_submits(now)
        return out

    def retry_failed_submits(self, now: dt.datetime) -> None:
        """Submit again (idempotently) the fired triggers whose submission failed (orchestrator down,
        auth refused) once ``triggers.submit_retry_seconds`` have passed since the last attempt."""
        wait = dt.timedelta(seconds=self.cfg.triggers.submit_retry_seconds)
        for row in self.ledger.rows_with_status("submit_failed"):
            last = dt.datetime.fromisoformat(row.outcome_at) if row.outcome_at else None
            if last is None or now - last >= wait:
                self._submit(row)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:  # keep the loop alive; the error is logged with its traceback
                log.exception("trigger loop tick failed")

    def start(self) -> None:
        """Recover unfinished submissions and start the background loop."""
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ctloop-triggers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and the submitter; close the ledger."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.submitter.close()
        self.ledger.close()

    def status(self, limit: int = 50) -> dict[str, Any]:
        """The ``GET /triggers/status`` document (bearer token): policy state and the newest ledger rows."""
        return {
            **self.public_status(),
            "ledger": str(self.ledger.path),
            "triggers": [r.to_dict() for r in self.ledger.rows(limit=limit)],
        }

    def public_status(self) -> dict[str, Any]:
        """What an unauthenticated ``GET /status`` shows: policy state, no ledger path, rows or keys."""
        return {
            **self.policy.status(self.cfg.name),
            "submitter": self.submitter.name,
            "embedded_evaluator": self.evaluator is not None,
            "embedded_performance_evaluator": self.performance_evaluator is not None,
        }
