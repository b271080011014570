"""Request bodies: the Alertmanager webhook (version 4) and ``POST /trigger``, parsed into triggers."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctloop.errors import TriggerError
from ctloop.triggers.policy import Trigger


class PayloadError(TriggerError, ValueError):
    """A request body is malformed (HTTP 400 with this message)."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class AlertItem(_Loose):
    """One alert of a webhook notification."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = ""
    fingerprint: str = ""


class WebhookV4(_Loose):
    """Alertmanager webhook payload, version 4."""

    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    alerts: list[AlertItem] = Field(min_length=1)


class TriggerRequest(BaseModel):
    """Body of ``POST /trigger``."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["manual", "schedule", "volume"] = "manual"
    reason: str = Field("", max_length=2000)
    key: str | None = Field(
        None, min_length=1, max_length=200, description="idempotency key (default: derived from the request)"
    )
    model: str | None = None


class CancelRequest(BaseModel):
    """Body of ``POST /triggers/{trigger_id}/cancel`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000, description="who cancels and why; recorded on the ledger row")


MAX_TRIGGER_ID_DIGITS = 18  # SQLite's INTEGER is 64-bit


def _errors(exc: ValidationError, what: str) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "<body>"
        parts.append(f"{loc}: {e['msg']}")
    return f"{what}: " + "; ".join(parts)


def parse_json(body: bytes, what: str) -> Any:
    """Decode a JSON body (nesting depth bounded by orjson's parser) or raise :class:`PayloadError`."""
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"{what}: body is not valid JSON or is nested too deeply ({exc})") from None


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], raw: Any, what: str) -> M:
    """``raw`` as ``model``, or a :class:`PayloadError` naming ``what`` and each bad field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise PayloadError(_errors(exc, what)) from exc


def parse_webhook(body: bytes) -> WebhookV4:
    """Validate an Alertmanager webhook v4 body."""
    return _validate(WebhookV4, parse_json(body, "alertmanager webhook"), "alertmanager webhook (version 4)")


def parse_trigger_request(body: bytes) -> TriggerRequest:
    """Validate a ``POST /trigger`` body (an empty body means a manual trigger)."""
    raw = parse_json(body, "trigger request") if body.strip() else {}
    return _validate(TriggerRequest, raw, "trigger request")


def parse_cancel_request(body: bytes) -> CancelRequest:
    """Validate a ``POST /triggers/{trigger_id}/cancel`` body (an empty body: no reason given)."""
    raw = parse_json(body, "cancel request") if body.strip() else {}
    return _validate(CancelRequest, raw, "cancel request")


def parse_trigger_id(text: str, where: str) -> int:
    """A ledger row id from a URL path segment: a positive decimal integer, else :class:`PayloadError`."""
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_TRIGGER_ID_DIGITS or int(text) < 1:
        raise PayloadError(f"{where}: trigger id {text[:40]!r} is not a positive integer (see `ctloop triggers`)")
    return int(text)


def webhook_triggers(hook: WebhookV4, default_model: str) -> list[Trigger]:
    """One trigger per model (and per source) in the notification.

    Alerts labelled ``trigger="performance"`` (the performance alerts) become source ``performance``;
    the others (the drift alert) source ``alert``.

    The episode is the group key plus the earliest ``startsAt`` of the model's alerts: Alertmanager's
    re-sends and regroupings of the same firing alert keep both, so they get the same idempotency key;
    an alert that resolves and fires again starts a new episode.
    """
    by_model: dict[tuple[str, str], list[AlertItem]] = {}
    for a in hook.alerts:
        model = a.labels.get("model") or hook.commonLabels.get("model") or default_model
        source = "performance" if a.labels.get("trigger") == "performance" else "alert"
        by_model.setdefault((model, source), []).append(a)
    out = []
    for (model, source), alerts in sorted(by_model.items()):
        firing = [a for a in alerts if a.status == "firing"]
        resolved = hook.status == "resolved" or not firing
        pick = firing or alerts
        start = min(a.startsAt for a in pick)
        names = sorted({a.labels.get("alertname", "?") for a in pick})
        summary = next((a.annotations.get("summary") for a in pick if a.annotations.get("summary")), "")
        features = sorted({f for a in pick for f in a.annotations.get("drifted_features", "").split()})
        reason = f"alert {','.join(names)} {'resolved' if resolved else 'firing'}" + (
            f": {summary}" if summary else ""
        )
        if features and not resolved:
            reason += f" (drifted: {', '.join(features)})"
        out.append(
            Trigger(
                source=source,
                model=model,
                episode=f"{hook.groupKey}|{start}",
                reason=reason,
                resolved=resolved,
                detail={
                    "group_key": hook.groupKey,
                    "receiver": hook.receiver,
                    "alerts": len(alerts),
                    "alertnames": names,
                    "drifted_features": features,
                    "starts_at": start,
                    "fingerprints": sorted(a.fingerprint for a in pick if a.fingerprint)[:20],
                },
            )
        )
    return out
