"""Watcher fleet on a cluster (``drift.replicas`` > 1, fleet mode): N stateless watcher replicas behind the
watcher Service, and the trigger controller as its own single-replica Deployment.

The replicas only count payload events and export bin counters (``--no-triggers``: no ledger, no token,
no state volume), so they roll and scale freely; a PodDisruptionBudget keeps all but one up during node
drains. The trigger controller keeps the SQLite ledger on the ReadWriteOnce volume, so it stays at one
replica (``Recreate``) behind its own Service, which Alertmanager and the schedule CronJob post to.
The ServiceMonitor selects the watcher Service, so Prometheus scrapes every replica behind it; a second
one scrapes the trigger controller.
"""

from __future__ import annotations

import copy
from typing import Any

from ctloop.config import ProjectConfig
from ctloop.manifests.base import WATCHER, _meta, deployment, dump, watcher_labels

TRIGGERS = "ctloop-triggers"
_TRIGGER_ONLY_VOLUMES = ("token", "state")


def fleet_enabled(cfg: ProjectConfig) -> bool:
    """Whether the watcher runs as several replicas (its trigger routes then move to their own Deployment)."""
    return cfg.drift.replicas > 1


def trigger_labels(cfg: ProjectConfig) -> dict[str, str]:
    """Selector labels of the trigger controller pod."""
    return {"app.kubernetes.io/name": TRIGGERS, "app.kubernetes.io/instance": cfg.name}


def watcher_fleet_deployment(cfg: ProjectConfig) -> dict[str, Any]:
    """The watcher Deployment with ``drift.replicas`` stateless replicas (no trigger routes)."""
    dep = copy.deepcopy(deployment(cfg))
    spec = dep["spec"]
    spec["replicas"] = cfg.drift.replicas
    spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    c["args"] = [*c["args"], "--no-triggers"]
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] not in _TRIGGER_ONLY_VOLUMES]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] not in _TRIGGER_ONLY_VOLUMES]
    pod["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                         "whenUnsatisfiable": "ScheduleAnyway",
                                         "labelSelector": {"matchLabels": watcher_labels(cfg)}}]
    return dep


def trigger_deployment(cfg: ProjectConfig) -> dict[str, Any]:
    """The trigger controller: one replica owning the ledger, serving ``/alerts`` and ``/trigger``."""
    dep = copy.deepcopy(deployment(cfg))
    dep["metadata"] = _meta(cfg, TRIGGERS, "triggers")
    spec = dep["spec"]
    spec["selector"] = {"matchLabels": trigger_labels(cfg)}
    spec["template"]["metadata"]["labels"] = {**trigger_labels(cfg),
                                              "app.kubernetes.io/part-of": "ctloop"}
    c = spec["template"]["spec"]["containers"][0]
    c["name"] = "triggers"
    c["args"] = [*c["args"], "--triggers"]
    return dep


def trigger_service(cfg: ProjectConfig) -> dict[str, Any]:
    """``http://ctloop-triggers.<namespace>.svc`` on port 80: /alerts, /trigger, /metrics."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cfg, TRIGGERS, "triggers"),
            "spec": {"selector": trigger_labels(cfg),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def trigger_network_policy(cfg: ProjectConfig) -> dict[str, Any]:
    """Ingress to the trigger controller only from the schedule CronJob, Alertmanager and Prometheus."""
    d = cfg.deploy
    monitoring = {"kubernetes.io/metadata.name": d.monitoring_namespace}
    sources = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": f"{cfg.name}-schedule"}}},
        {"namespaceSelector": {"matchLabels": monitoring},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}},
        {"namespaceSelector": {"matchLabels": monitoring},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
    ]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(cfg, TRIGGERS, "triggers"),
            "spec": {"podSelector": {"matchLabels": trigger_labels(cfg)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": d.watcher_port}]}]}}


def trigger_service_monitor(cfg: ProjectConfig) -> dict[str, Any]:
    """ServiceMonitor for the trigger controller's /metrics (run and decision counters)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": _meta(cfg, TRIGGERS, "triggers"),
            "spec": {"selector": {"matchLabels": trigger_labels(cfg)},
                     "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]}}


def watcher_pdb(cfg: ProjectConfig) -> dict[str, Any]:
    """Voluntary disruptions (drains, upgrades) take down at most one watcher replica at a time."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(cfg, WATCHER, "watcher"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": watcher_labels(cfg)}}}


def render_fleet(cfg: ProjectConfig) -> dict[str, str]:
    """The fleet's ``base/`` files (replacing the single-replica watcher Deployment)."""
    return {
        "base/deployment.yaml": dump(watcher_fleet_deployment(cfg)),
        "base/triggers.yaml": dump(trigger_deployment(cfg), trigger_service(cfg), trigger_network_policy(cfg),
                                   trigger_service_monitor(cfg)),
        "base/pdb.yaml": dump(watcher_pdb(cfg)),
    }
