"""The performance-drop alert: rules from ``monitoring.performance`` (one source of truth) and the
embedded evaluator of the same conditions.

``CtloopPerformanceDrop`` fires when the realized ``monitoring.performance.metric`` of the serving version
is below ``min``, or more than ``max_drop`` below that version's own gate value on its holdout; either
needs at least ``min_labelled`` labelled rows. ``CtloopEstimatedPerformanceLow`` (only when
``estimated_min`` is set) fires on the label-free estimate. Both carry the drift alert's routing labels
(``ctloop="retrain"``, ``model``), so Alertmanager sends them to the watcher, plus ``trigger="performance"``,
which makes them trigger source ``performance`` there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctloop.config import ProjectConfig
from ctloop.quality.types import PerformanceSnapshot
from ctloop.triggers.policy import Trigger

PERFORMANCE_ALERT = "CtloopPerformanceDrop"
ESTIMATED_ALERT = "CtloopEstimatedPerformanceLow"
PERFORMANCE_METRIC = "ctloop_model_performance"
LABELLED_METRIC = "ctloop_labelled_predictions"
REFERENCE_METRIC = "ctloop_model_reference_performance"
TRIGGER_LABEL = "trigger"
SOURCE = "performance"


@dataclass(frozen=True)
class PerformanceRule:
    """The performance alerts of one model (thresholds straight from ``monitoring.performance``)."""

    model: str
    metric: str
    min: float | None
    max_drop: float | None
    min_labelled: int
    for_: str
    estimated_min: float | None = None
    namespace: str = "ctloop"

    def _series(self, name: str, **match: str) -> str:
        sel = ",".join(f'{k}="{v}"' for k, v in {"model": self.model, **match}.items())
        return f"max by (model, version) ({name}{{{sel}}})"

    @property
    def realized_expr(self) -> str | None:
        """PromQL of ``CtloopPerformanceDrop`` (``None`` when neither ``min`` nor ``max_drop`` is set)."""
        realized = self._series(PERFORMANCE_METRIC, metric=self.metric, source="realized")
        conds = []
        if self.min is not None:
            conds.append(f"{realized} < {self.min:g}")
        if self.max_drop is not None:
            ref = self._series(REFERENCE_METRIC, metric=self.metric)
            conds.append(f"{realized} < on (model, version) ({ref} - {self.max_drop:g})")
        if not conds:
            return None
        labelled = self._series(LABELLED_METRIC)
        return f"({' or '.join(conds)}) and on (model, version) ({labelled} >= {self.min_labelled})"

    @property
    def estimated_expr(self) -> str | None:
        """PromQL of ``CtloopEstimatedPerformanceLow`` (``None`` unless ``estimated_min`` is set)."""
        if self.estimated_min is None:
            return None
        est = self._series(PERFORMANCE_METRIC, metric=self.metric, source="estimated")
        return f"{est} < {self.estimated_min:g}"

    def _labels(self) -> dict[str, str]:
        return {"severity": "warning", "ctloop": "retrain", "model": self.model, TRIGGER_LABEL: SOURCE,
                "metric": self.metric, "namespace": self.namespace}  # the operator's OnNamespace route matches

    def _thresholds(self) -> str:
        parts = [f"< {self.min:g}"] if self.min is not None else []
        if self.max_drop is not None:
            parts.append(f"more than {self.max_drop:g} below the gate value")
        return " or ".join(parts)

    def rules(self) -> list[dict[str, Any]]:
        """The alerting rules as they appear in a Prometheus rule group."""
        out = []
        if (expr := self.realized_expr) is not None:
            out.append({
                "alert": PERFORMANCE_ALERT,
                "expr": expr,
                "for": self.for_,
                "labels": self._labels(),
                "annotations": {
                    "summary": f"realized {self.metric} of {self.model} v{{{{ $labels.version }}}} is "
                    f"{{{{ $value | printf \"%.3f\" }}}} ({self._thresholds()})",
                    "description": f"The realized {self.metric} ({PERFORMANCE_METRIC}, source=realized) of the "
                    f"serving version stayed {self._thresholds()} for {self.for_} with at least "
                    f"{self.min_labelled} labelled rows; ctloop retrains {self.model}.",
                },
            })
        if (eexpr := self.estimated_expr) is not None:
            out.append({
                "alert": ESTIMATED_ALERT,
                "expr": eexpr,
                "for": self.for_,
                "labels": self._labels(),
                "annotations": {
                    "summary": f"estimated {self.metric} of {self.model} v{{{{ $labels.version }}}} is "
                    f"{{{{ $value | printf \"%.3f\" }}}} (< {self.estimated_min:g})",
                    "description": f"The label-free estimate of {self.metric} stayed below "
                    f"{self.estimated_min:g} for {self.for_}; ctloop retrains {self.model}.",
                },
            })
        return out


def performance_rule(cfg: ProjectConfig) -> PerformanceRule:
    """The performance rule from ``monitoring.performance``."""
    p = cfg.monitoring.performance
    return PerformanceRule(cfg.name, p.metric, p.min, p.max_drop, p.min_labelled, p.alert_for, p.estimated_min,
                           cfg.deploy.namespace)


def performance_group(cfg: ProjectConfig) -> dict[str, Any] | None:
    """The rule group of the performance alerts (``None`` when no threshold is configured)."""
    rules = performance_rule(cfg).rules()
    if not rules:
        return None
    return {"name": f"ctloop-{cfg.name}-performance", "interval": cfg.triggers.evaluation_interval,
            "rules": rules}


def realized_breach(rule: PerformanceRule, snap: PerformanceSnapshot) -> str | None:
    """Why the realized condition holds for ``snap`` (``None`` when it does not): the same test as
    :attr:`PerformanceRule.realized_expr`."""
    value = snap.realized.get(rule.metric)
    if value is None or snap.labelled < rule.min_labelled:
        return None
    if rule.min is not None and value < rule.min:
        return f"realized {rule.metric} {value:.3f} < {rule.min:g} ({snap.labelled} labelled rows)"
    ref = snap.reference.get(rule.metric)
    if rule.max_drop is not None and ref is not None and value < ref - rule.max_drop:
        return (f"realized {rule.metric} {value:.3f} is {ref - value:.3f} below the gate value {ref:.3f} "
                f"(max_drop {rule.max_drop:g}, {snap.labelled} labelled rows)")
    return None


def estimated_breach(rule: PerformanceRule, snap: PerformanceSnapshot) -> str | None:
    """Why the estimated condition holds for ``snap`` (``None`` when it does not or is not configured)."""
    value = snap.estimated.get(rule.metric)
    if rule.estimated_min is None or value is None or not value < rule.estimated_min:
        return None
    return f"estimated {rule.metric} {value:.3f} < {rule.estimated_min:g}"


@dataclass
class _ForState:
    """Prometheus ``for`` semantics of one alert: pending since, firing."""

    since: dt.datetime | None = None
    firing: bool = False
    version: int | None = None


class PerformanceEvaluator:
    """Evaluates the performance alerts in-process (no Prometheus), with Prometheus semantics, from the
    watcher's :class:`~ctloop.quality.types.PerformanceSnapshot`."""

    def __init__(self, rule: PerformanceRule, read: Callable[[], PerformanceSnapshot | None]) -> None:
        from ctloop.triggers.rules import duration_seconds

        self.rule = rule
        self.read = read
        self.for_seconds = duration_seconds(rule.for_)
        self.states = {PERFORMANCE_ALERT: _ForState(), ESTIMATED_ALERT: _ForState()}

    def evaluate(self, now: dt.datetime) -> list[Trigger]:
        """One evaluation: a firing trigger per alert that fires (again each time it keeps firing, with
        the same episode, so the policy dedupes it) and a resolved one per alert that resolves."""
        snap = self.read()
        out = []
        for name, check in ((PERFORMANCE_ALERT, realized_breach), (ESTIMATED_ALERT, estimated_breach)):
            why = check(self.rule, snap) if snap is not None else None
            trig = self._step(name, self.states[name], why, snap, now)
            if trig is not None:
                out.append(trig)
        return out

    def _step(self, name: str, st: _ForState, why: str | None, snap: PerformanceSnapshot | None,
              now: dt.datetime) -> Trigger | None:
        version = snap.version if snap is not None else None
        if why is not None and (st.since is None or st.version == version):
            if st.since is None:
                st.since, st.version = now, version
            if (now - st.since).total_seconds() < self.for_seconds:
                return None
            st.firing = True
            return self._trigger(name, st, f"alert {name} firing (embedded evaluator): {why}", False, snap)
        trig = None
        if st.firing:
            trig = self._trigger(name, st, f"alert {name} resolved (embedded evaluator)", True, snap)
        st.since, st.firing, st.version = None, False, None
        return trig

    def _trigger(self, name: str, st: _ForState, reason: str, resolved: bool,
                 snap: PerformanceSnapshot | None) -> Trigger:
        start = st.since.isoformat() if st.since else ""
        detail: dict[str, Any] = {"evaluator": "embedded", "alertnames": [name], "version": st.version}
        if snap is not None:
            detail |= {"realized": dict(snap.realized), "estimated": dict(snap.estimated),
                       "reference": dict(snap.reference), "labelled": snap.labelled}
        return Trigger(SOURCE, self.rule.model,
                       episode=f"embedded:{{alertname={name},model={self.rule.model}}}|{start}",
                       reason=reason, resolved=resolved, detail=detail)
