"""The trigger policy: every trigger (alert, schedule, volume, manual) becomes at most one run per episode.

Checks, in order: ``resolved`` alerts are ignored; a model this service does not serve is ignored; a
trigger whose idempotency key already fired is a duplicate; a model with an active run gets no second
one; the cooldown since the model's last fired run; the daily budget (UTC day). Whatever the answer,
the trigger is written to the ledger with its reason, in the same transaction as the checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from ctloop.config import TriggersConfig
from ctloop.triggers.ledger import Ledger, utcnow

SOURCES = ("alert", "schedule", "volume", "manual", "performance")


@dataclass(frozen=True)
class Trigger:
    """One request to retrain.

    Attributes:
        source: ``alert`` (drift), ``performance``, ``schedule``, ``volume`` or ``manual``.
        model: The model it is for.
        episode: What identifies the episode (alert group key + start, schedule slot, ...); the
            idempotency key is derived from it deterministically.
        reason: Human-readable cause, recorded in the ledger and the model's lineage.
        resolved: An alert that resolved (ignored by the policy, but recorded).
        detail: Extra facts for the ledger (labels, counts, ...).
    """

    source: str
    model: str
    episode: str
    reason: str
    resolved: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """``sha256(model|source|episode)``, shortened: the same episode always gives the same key."""
        return hashlib.sha256(f"{self.model}|{self.source}|{self.episode}".encode()).hexdigest()[:24]

    @property
    def run_id(self) -> str:
        """The deterministic run id (also the KFP run name) a fired trigger gets."""
        return f"{self.model}-{self.source}-{self.idempotency_key[:12]}"

    def lineage(self) -> dict[str, Any]:
        """The trigger as recorded in the registered model's metadata."""
        return {
            "cause": {"alert": "drift"}.get(self.source, self.source),
            "source": self.source,
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "episode": self.episode,
        }


@dataclass(frozen=True)
class Decision:
    """What the policy did with a trigger."""

    trigger_id: int
    fired: bool
    reason_code: str
    reason: str
    run_id: str | None
    idempotency_key: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "trigger_id": self.trigger_id,
            "decision": "fired" if self.fired else "suppressed",
            "reason_code": self.reason_code,
            "reason": self.reason,
            "run_id": self.run_id,
            "idempotency_key": self.idempotency_key,
        }


class Policy:
    """Decides and records; does not submit (the service submits fired triggers after the commit)."""

    def __init__(
        self,
        settings: TriggersConfig,
        ledger: Ledger,
        models: set[str],
        registry: CollectorRegistry,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.models = models
        self.clock = clock
        self.counter = Counter(
            "ctloop_triggers_total",
            "Triggers by source and policy decision.",
            ["model", "source", "decision", "reason"],
            registry=registry,
        )

    def _check(self, conn: Any, t: Trigger, now: dt.datetime) -> tuple[str, str]:
        s = self.settings
        if t.resolved:
            return "resolved", "alert resolved: nothing to do"
        if t.model not in self.models:
            return "unknown_model", f"model {t.model!r} is not served here (serving {sorted(self.models)})"
        if dup := self.ledger.fired_with_key(conn, t.idempotency_key):
            return "duplicate", (
                f"duplicate of trigger #{dup.id} (same {t.source} episode, "
                f"key {t.idempotency_key}), run {dup.run_id}"
            )
        if active := self.ledger.active_run(conn, t.model):
            return "active_run", (
                f"run {active.run_id} (trigger #{active.id}) is still {active.run_status}; "
                "one run per model at a time"
            )
        last = self.ledger.last_fired(conn, t.model)
        if last is not None and s.cooldown_minutes > 0:
            until = dt.datetime.fromisoformat(last.received_at) + dt.timedelta(minutes=s.cooldown_minutes)
            if now < until:
                return "cooldown", (
                    f"cooldown: last run {last.run_id} fired at {last.received_at}; "
                    f"next allowed after {until.isoformat(timespec='seconds')} "
                    f"(triggers.cooldown_minutes={s.cooldown_minutes:g})"
                )
        midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        used = self.ledger.fired_since(conn, t.model, midnight)
        if used >= s.daily_budget:
            return "budget", (
                f"daily budget spent: {used} of {s.daily_budget} runs fired since "
                f"{midnight.date()} 00:00 UTC (triggers.daily_budget)"
            )
        return "fired", f"{t.source}: {t.reason}"

    def decide(self, t: Trigger) -> Decision:
        """Apply the policy to one trigger and record it; return the decision."""
        with self.ledger.transaction() as conn:
            now = self.clock()
            code, reason = self._check(conn, t, now)
            fired = code == "fired"
            detail = {**t.detail, "episode": t.episode, "trigger_reason": t.reason}
            if fired:
                detail["lineage"] = t.lineage()
            tid = self.ledger.insert(
                conn,
                received_at=now,
                source=t.source,
                model=t.model,
                decision="fired" if fired else "suppressed",
                reason_code=code,
                reason=reason,
                idempotency_key=t.idempotency_key,
                run_id=t.run_id if fired else None,
                run_status="pending" if fired else None,
                detail=detail,
            )
        self.counter.labels(t.model, t.source, "fired" if fired else "suppressed", code).inc()
        return Decision(tid, fired, code, reason, t.run_id if fired else None, t.idempotency_key)

    def status(self, model: str) -> dict[str, Any]:
        """Where the model stands: active run, cooldown end, budget left."""
        now = self.clock()
        active = self.ledger.active_run(None, model)
        last = self.ledger.last_fired(None, model)
        until = None
        if last is not None:
            u = dt.datetime.fromisoformat(last.received_at) + dt.timedelta(
                minutes=self.settings.cooldown_minutes
            )
            until = u.isoformat(timespec="seconds") if u > now else None
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        used = self.ledger.fired_since(None, model, midnight)
        return {
            "model": model,
            "active_run": active.run_id if active else None,
            "active_status": active.run_status if active else None,
            "last_run": last.run_id if last else None,
            "cooldown_until": until,
            "budget_used_today": used,
            "daily_budget": self.settings.daily_budget,
            "counts": self.ledger.counts(),
        }
