"""Alert rules from the config (one source of truth), their rendered files, and the embedded evaluator.

The drift alert fires when the watcher's ``ctloop_drift_share{model}`` gauge stays at or above
``drift.drift_share_alert`` for ``drift.alert_for``. The same :class:`AlertRule` renders the
PrometheusRule (cluster) and ``monitoring/rules.yml`` (local Prometheus / promtool), and drives the
:class:`EmbeddedEvaluator` when no Prometheus is in use.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ctloop.config import ProjectConfig
from ctloop.triggers.policy import Trigger

ALERT_NAME = "CtloopDriftShareHigh"
DRIFT_METRIC = "ctloop_drift_share"
DETECTED_METRIC = "ctloop_drift_detected"
RECEIVER = "ctloop-watcher"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``1m30s``."""
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


@dataclass(frozen=True)
class AlertRule:
    """The drift alert for one model."""

    model: str
    threshold: float
    for_: str
    namespace: str = "ctloop"

    @property
    def expr(self) -> str:
        """The PromQL expression; it keeps ``namespace`` so that the Prometheus Operator's
        ``OnNamespace`` matcher on the AlertmanagerConfig's route matches the alert."""
        return f'max by (namespace, model) ({DRIFT_METRIC}{{model="{self.model}"}}) >= {self.threshold:g}'

    def rule(self) -> dict[str, Any]:
        """The rule as it appears in a Prometheus rule group."""
        return {
            "alert": ALERT_NAME,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": "warning", "ctloop": "retrain", "model": self.model,
                       "namespace": self.namespace},
            "annotations": {
                "summary": f"drift share of {self.model} is {{{{ $value | humanizePercentage }}}} "
                f"(threshold {self.threshold:g})",
                "description": f"The share of drifted features ({DRIFT_METRIC}) stayed at or above "
                f"{self.threshold:g} for {self.for_}; ctloop retrains {self.model}.",
                "drifted_features": (
                    f'{{{{ range query "{DETECTED_METRIC}{{model=\\"{self.model}\\"}} > 0" }}}}'
                    "{{ .Labels.feature }} {{ end }}"
                ),
            },
        }


def alert_rule(cfg: ProjectConfig) -> AlertRule:
    """The drift alert rule from ``drift.drift_share_alert`` and ``drift.alert_for``."""
    return AlertRule(cfg.name, cfg.drift.drift_share_alert, cfg.drift.alert_for, cfg.deploy.namespace)


def rule_groups(cfg: ProjectConfig) -> dict[str, Any]:
    """The ``groups:`` document shared by the PrometheusRule and the plain rules file: the drift alert,
    then the performance alerts of :mod:`ctloop.triggers.performance` (their own group)."""
    from ctloop.triggers.performance import performance_group

    groups = [
        {
            "name": f"ctloop-{cfg.name}",
            "interval": cfg.triggers.evaluation_interval,
            "rules": [alert_rule(cfg).rule()],
        }
    ]
    if (perf := performance_group(cfg)) is not None:
        groups.append(perf)
    return {"groups": groups}


def _cluster_endpoint(cfg: ProjectConfig) -> str:
    from ctloop.manifests.base import watcher_endpoint

    return cfg.triggers.cluster_endpoint or watcher_endpoint(cfg)


def _route(cfg: ProjectConfig) -> dict[str, Any]:
    t = cfg.triggers
    return {
        "receiver": RECEIVER,
        "group_by": ["alertname", "model"],
        "group_wait": t.group_wait,
        "group_interval": t.group_interval,
        "repeat_interval": t.repeat_interval,
    }


def alertmanager_config(cfg: ProjectConfig) -> dict[str, Any]:
    """Plain Alertmanager config: route ctloop alerts to the watcher's ``/alerts`` with the token file."""
    route = _route(cfg)
    return {
        "route": {
            **route,
            "routes": [{"receiver": RECEIVER, "matchers": ['ctloop="retrain"', f'model="{cfg.name}"']}],
        },
        "receivers": [
            {
                "name": RECEIVER,
                "webhook_configs": [
                    {
                        "url": cfg.triggers.endpoint.rstrip("/") + "/alerts",
                        "send_resolved": True,
                        "max_alerts": 0,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": cfg.triggers.token_file}
                        },
                    }
                ],
            }
        ],
    }


def _labels(cfg: ProjectConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ctloop",
        "app.kubernetes.io/component": "triggers",
        "ctloop/model": cfg.name,
    }


def prometheus_rule_crd(cfg: ProjectConfig) -> dict[str, Any]:
    """``monitoring.coreos.com/v1`` PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": f"{cfg.name}-drift", "namespace": cfg.deploy.namespace, "labels": _labels(cfg)},
        "spec": rule_groups(cfg),
    }


def alertmanager_config_crd(cfg: ProjectConfig) -> dict[str, Any]:
    """``monitoring.coreos.com/v1alpha1`` AlertmanagerConfig; the token comes from a Secret."""
    r = _route(cfg)
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {"name": f"{cfg.name}-triggers", "namespace": cfg.deploy.namespace, "labels": _labels(cfg)},
        "spec": {
            "route": {
                "receiver": RECEIVER,
                "groupBy": r["group_by"],
                "groupWait": r["group_wait"],
                "groupInterval": r["group_interval"],
                "repeatInterval": r["repeat_interval"],
                "matchers": [
                    {"name": "ctloop", "value": "retrain", "matchType": "="},
                    {"name": "model", "value": cfg.name, "matchType": "="},
                ],
            },
            "receivers": [
                {
                    "name": RECEIVER,
                    "webhookConfigs": [
                        {
                            "url": _cluster_endpoint(cfg) + "/alerts",
                            "sendResolved": True,
                            "httpConfig": {
                                "authorization": {
                                    "type": "Bearer",
                                    "credentials": {"name": cfg.triggers.token_secret, "key": "token"},
                                }
                            },
                        }
                    ],
                }
            ],
        },
    }


def schedule_cronjob(cfg: ProjectConfig) -> dict[str, Any]:
    """A CronJob that posts a schedule trigger to the watcher (used when ``schedule_by: cronjob``):
    the hardened one from :mod:`ctloop.manifests.base`."""
    from ctloop.manifests.base import cron_job

    return cron_job(cfg, _cluster_endpoint(cfg) + "/trigger")


def _dump(doc: dict[str, Any], header: str) -> str:
    return (
        f"# {header}\n# Generated by `ctloop manifests render` from ctloop.yaml; do not edit.\n"
        + yaml.safe_dump(doc, sort_keys=False, width=200)
    )


def render_trigger_files(cfg: ProjectConfig) -> dict[str, str]:
    """The renderer registered in :mod:`ctloop.render`."""
    out = {
        "base/prometheusrule.yaml": _dump(prometheus_rule_crd(cfg), "Drift alert (Prometheus Operator)"),
        "base/alertmanagerconfig.yaml": _dump(alertmanager_config_crd(cfg), "Alert route to the watcher"),
        "monitoring/rules.yml": _dump(rule_groups(cfg), "Drift alert rules (prometheus --config, promtool)"),
        "monitoring/alertmanager.yml": _dump(alertmanager_config(cfg), "Alertmanager config (amtool)"),
    }
    if cfg.triggers.schedule and cfg.triggers.schedule_by == "cronjob":
        out["base/schedule-cronjob.yaml"] = _dump(schedule_cronjob(cfg), "Schedule trigger")
    return out


class EmbeddedEvaluator:
    """Evaluates the drift rule in-process (laptops without Prometheus), with Prometheus semantics:
    the condition must hold at every evaluation for ``for`` before the alert fires; it resolves when
    the condition is false."""

    def __init__(
        self,
        rule: AlertRule,
        read_value: Callable[[], float | None],
        read_features: Callable[[], list[str]] | None = None,
    ) -> None:
        self.rule = rule
        self.read_value = read_value
        self.read_features = read_features or (lambda: [])
        self.for_seconds = duration_seconds(rule.for_)
        self.active_since: dt.datetime | None = None
        self.firing = False

    def evaluate(self, now: dt.datetime) -> Trigger | None:
        """One evaluation; returns a firing trigger when the alert fires (and each time it keeps firing,
        with the same episode, so the policy dedupes it), or a resolved trigger when it resolves."""
        value = self.read_value()
        if value is not None and value >= self.rule.threshold:
            if self.active_since is None:
                self.active_since = now
            if (now - self.active_since).total_seconds() >= self.for_seconds:
                self.firing = True
                features = sorted(self.read_features())
                reason = (
                    f"alert {ALERT_NAME} firing (embedded evaluator): drift share "
                    f"{value:.3f} >= {self.rule.threshold:g} for {self.rule.for_}"
                )
                return Trigger(
                    "alert",
                    self.rule.model,
                    episode=self._episode(),
                    resolved=False,
                    reason=reason + (f" (drifted: {', '.join(features)})" if features else ""),
                    detail={"value": value, "evaluator": "embedded", "drifted_features": features},
                )
            return None
        trig = None
        if self.firing:
            trig = Trigger(
                "alert",
                self.rule.model,
                episode=self._episode(),
                resolved=True,
                reason=f"alert {ALERT_NAME} resolved (embedded evaluator)",
                detail={"value": value, "evaluator": "embedded"},
            )
        self.active_since, self.firing = None, False
        return trig

    def _episode(self) -> str:
        start = self.active_since.isoformat() if self.active_since else ""
        return f"embedded:{{alertname={ALERT_NAME},model={self.rule.model}}}|{start}"
