"""The kustomize base: namespace, watcher (Deployment, Service, ServiceAccount, PVC, NetworkPolicy,
monitors), the deployer RBAC, the project ConfigMap and the schedule CronJob.

Objects are plain dicts built from the config and dumped as YAML, one file per concern.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import yaml

from ctloop.config import ProjectConfig
from ctloop.manifests.storage import storage_env

WATCHER = "ctloop-watcher"
CONFIG_MAP = "ctloop-config"
CONFIG_MOUNT = "/etc/ctloop"
STATE_PVC = "ctloop-state"
STATE_MOUNT = "/var/lib/ctloop"
TOKEN_MOUNT = "/var/run/secrets/ctloop"
PART_OF = {"app.kubernetes.io/part-of": "ctloop"}
UID = 10001
DEFAULT_SCHEDULE = "0 3 * * *"
HEADER = "# Rendered by `ctloop manifests render` from ctloop.yaml. Do not edit: change the config.\n"


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes shared sub-objects out in full (no ``&id001`` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(*docs: dict[str, Any]) -> str:
    """YAML documents with the rendered-file header."""
    return HEADER + yaml.dump_all(list(docs), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def watcher_labels(cfg: ProjectConfig) -> dict[str, str]:
    """Selector labels of the watcher pods."""
    return {"app.kubernetes.io/name": WATCHER, "app.kubernetes.io/instance": cfg.name}


def _meta(cfg: ProjectConfig, name: str, component: str, **extra: Any) -> dict[str, Any]:
    labels = {**watcher_labels(cfg), **PART_OF, "app.kubernetes.io/component": component}
    labels["app.kubernetes.io/name"] = name
    return {"name": name, "namespace": cfg.deploy.namespace, "labels": labels, **extra}


def watcher_endpoint(cfg: ProjectConfig) -> str:
    """In-cluster base URL of the Service that Alertmanager and the CronJob post to: the watcher's, or
    the trigger controller's when the watcher runs as several replicas (``drift.replicas`` > 1)."""
    name = "ctloop-triggers" if cfg.drift.replicas > 1 else WATCHER
    return f"http://{name}.{cfg.deploy.namespace}.svc.cluster.local"


def token_mount(cfg: ProjectConfig) -> tuple[str, str]:
    """(folder the token Secret is mounted at, file the watcher reads): ``triggers.token_file`` when
    it is an absolute path, else ``/var/run/secrets/ctloop/token``."""
    path = cfg.triggers.token_file
    if path.startswith("/") and "://" not in path:
        return posixpath.dirname(path), path
    return TOKEN_MOUNT, f"{TOKEN_MOUNT}/token"


def events_token_volume(cfg: ProjectConfig) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(volume, volumeMount) of the ``drift.events_token_secret`` Secret at ``drift.events_token_file``'s
    folder, or None when events need no token."""
    path = cfg.drift.events_token_file
    if not path:
        return None
    volume = {"name": "events-token", "secret": {"secretName": cfg.drift.events_token_secret, "defaultMode": 0o440}}
    return volume, {"name": "events-token", "mountPath": posixpath.dirname(path), "readOnly": True}


def state_mount(cfg: ProjectConfig) -> str:
    """Folder the state PVC is mounted at: the ledger's folder when it is an absolute path."""
    ledger = cfg.triggers.ledger
    if "://" not in ledger and ledger.startswith("/"):
        return posixpath.dirname(ledger) or STATE_MOUNT
    return STATE_MOUNT


def container_security() -> dict[str, Any]:
    """Container securityContext of every ctloop workload."""
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> dict[str, Any]:
    """Pod securityContext of every ctloop workload."""
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def namespace(cfg: ProjectConfig) -> dict[str, Any]:
    """The project namespace (restricted Pod Security Standard enforced)."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": cfg.deploy.namespace,
                         "labels": {**PART_OF, "pod-security.kubernetes.io/enforce": "restricted",
                                    "pod-security.kubernetes.io/enforce-version": "latest"}}}


def config_map(cfg: ProjectConfig) -> dict[str, Any]:
    """The project config, mounted read-only at ``/etc/ctloop/ctloop.yaml`` by watcher and server."""
    raw = json.loads(cfg.to_json())
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cfg, CONFIG_MAP, "config"),
            "data": {"ctloop.yaml": yaml.safe_dump(raw, sort_keys=True)}}


def service_account(cfg: ProjectConfig) -> dict[str, Any]:
    """The watcher's identity; it needs no Kubernetes API access, so no token is mounted."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(cfg, WATCHER, "watcher"),
            "automountServiceAccountToken": False}


def rbac(cfg: ProjectConfig) -> list[dict[str, Any]]:
    """Least privilege for ``deploy.mode: kubernetes``: the pipeline may get/patch this one service."""
    name = f"{cfg.name}-deployer"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": _meta(cfg, name, "deployer"),
            "rules": [{"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
                       "resourceNames": [cfg.name], "verbs": ["get", "patch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": _meta(cfg, name, "deployer"),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": cfg.deploy.pipeline_service_account,
                             "namespace": cfg.kfp.namespace}]}
    return [role, binding]


def state_pvc(cfg: ProjectConfig) -> dict[str, Any]:
    """The trigger ledger's volume (SQLite: one writer, so ReadWriteOnce and one replica)."""
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(cfg, STATE_PVC, "state"),
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": cfg.deploy.state_storage}}}}


def _resources(cfg: ProjectConfig) -> dict[str, Any]:
    r = cfg.deploy.watcher_resources
    return {"requests": {"cpu": r.cpu_request, "memory": r.memory_request},
            "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit}}


def deployment(cfg: ProjectConfig) -> dict[str, Any]:
    """The drift watcher + trigger controller (single replica: it owns the SQLite ledger)."""
    d = cfg.deploy
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2}
    container = {
        "name": "watcher",
        "image": cfg.kfp.images.runtime,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "ctloop.cli"],
        "args": ["watch", "--config", f"{CONFIG_MOUNT}/ctloop.yaml", "--host", "0.0.0.0",
                 "--port", str(d.watcher_port)],
        "env": [{"name": "HOME", "value": "/tmp"}, *storage_env(cfg)],
        "ports": [{"name": "http", "containerPort": d.watcher_port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "initialDelaySeconds": 5},
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "failureThreshold": 3},
        "resources": _resources(cfg),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "token", "mountPath": token_mount(cfg)[0], "readOnly": True},
            {"name": "state", "mountPath": state_mount(cfg)},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod = {
        "serviceAccountName": WATCHER,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "nodeSelector": dict(d.node_selector),
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_MAP}},
            {"name": "token", "secret": {"secretName": cfg.triggers.token_secret, "defaultMode": 0o440}},
            {"name": "state", "persistentVolumeClaim": {"claimName": STATE_PVC}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }
    events = events_token_volume(cfg)
    if events is not None:
        pod["volumes"] = [*pod["volumes"], events[0]]  # type: ignore[misc]
        container["volumeMounts"] = [*container["volumeMounts"], events[1]]  # type: ignore[misc]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(cfg, WATCHER, "watcher"),
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": watcher_labels(cfg)},
                     "template": {"metadata": {"labels": {**watcher_labels(cfg), **PART_OF}}, "spec": pod}}}


def service(cfg: ProjectConfig) -> dict[str, Any]:
    """``http://ctloop-watcher.<namespace>.svc`` on port 80: /events, /alerts, /trigger, /metrics."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cfg, WATCHER, "watcher"),
            "spec": {"selector": watcher_labels(cfg),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def network_policy(cfg: ProjectConfig) -> dict[str, Any]:
    """Ingress to the watcher only from the model's payload logger, the schedule CronJob,
    Alertmanager, Prometheus and the label feed (pods labelled ``monitoring.labels.allowed_from``)."""
    d = cfg.deploy
    monitoring = {"kubernetes.io/metadata.name": d.monitoring_namespace}
    sources = [
        {"podSelector": {"matchLabels": {"serving.kserve.io/inferenceservice": cfg.name}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": f"{cfg.name}-schedule"}}},
        {"namespaceSelector": {"matchLabels": monitoring},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}},
        {"namespaceSelector": {"matchLabels": monitoring},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
    ]
    feed = cfg.monitoring.labels.allowed_from
    if feed:  # an empty selector would admit every pod of the namespace: leave it out instead
        sources.append({"podSelector": {"matchLabels": dict(feed)}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(cfg, WATCHER, "watcher"),
            "spec": {"podSelector": {"matchLabels": watcher_labels(cfg)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": sources,
                                  "ports": [{"protocol": "TCP", "port": d.watcher_port}]}]}}


def monitors(cfg: ProjectConfig) -> list[dict[str, Any]]:
    """ServiceMonitor for the watcher's /metrics, PodMonitor for the model server pods."""
    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
          "metadata": _meta(cfg, WATCHER, "watcher"),
          "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": WATCHER,
                                                "app.kubernetes.io/instance": cfg.name}},
                   "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]}}
    pm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
          "metadata": _meta(cfg, f"{cfg.name}-predictor", "serving"),
          "spec": {"selector": {"matchLabels": {"serving.kserve.io/inferenceservice": cfg.name}},
                   "podMetricsEndpoints": [{"port": "http-usermetric", "path": "/metrics",
                                            "interval": "15s"}]}}
    return [sm, pm]


SCHEDULE_SCRIPT = """\
import os, urllib.request
token = open(os.environ["TOKEN_FILE"]).read().strip()
req = urllib.request.Request({url!r}, data={body!r}.encode(), method="POST", headers={{
    "Authorization": "Bearer " + token, "Content-Type": "application/json"}})
with urllib.request.urlopen(req, timeout=30) as resp:
    print(resp.status, resp.read().decode()[:500])
"""


def cron_job(cfg: ProjectConfig, url: str | None = None) -> dict[str, Any]:
    """Posts the schedule trigger to the watcher's ``POST /trigger`` so it passes the trigger policy
    (rendered by the trigger renderer when ``triggers.schedule_by`` is ``cronjob``)."""
    name = f"{cfg.name}-schedule"
    schedule = cfg.triggers.schedule or DEFAULT_SCHEDULE
    url = url or watcher_endpoint(cfg) + "/trigger"
    body = json.dumps({"source": "schedule", "model": cfg.name, "reason": f"CronJob {schedule} (UTC)"},
                      separators=(",", ":"))
    container = {
        "name": "post-trigger",
        "image": cfg.kfp.images.runtime,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", SCHEDULE_SCRIPT.format(url=url, body=body)],
        "env": [{"name": "TOKEN_FILE", "value": token_mount(cfg)[1]}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                      "limits": {"cpu": "200m", "memory": "128Mi"}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "token", "mountPath": token_mount(cfg)[0], "readOnly": True}],
    }
    pod = {"restartPolicy": "OnFailure", "automountServiceAccountToken": False,
           "securityContext": pod_security(), "nodeSelector": dict(cfg.deploy.node_selector),
           "containers": [container],
           "volumes": [{"name": "token", "secret": {"secretName": cfg.triggers.token_secret,
                                                     "defaultMode": 0o440}}]}
    labels = {"app.kubernetes.io/name": name, **PART_OF}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta(cfg, name, "schedule"),
            "spec": {"schedule": schedule, "timeZone": "Etc/UTC",
                     "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 600,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                     "jobTemplate": {"spec": {"backoffLimit": 3, "activeDeadlineSeconds": 300,
                                              "template": {"metadata": {"labels": labels}, "spec": pod}}}}}


def render_base(cfg: ProjectConfig) -> dict[str, str]:
    """This package's ``base/`` files."""
    out = {
        "base/namespace.yaml": dump(namespace(cfg)),
        "base/configmap.yaml": dump(config_map(cfg)),
        "base/serviceaccount.yaml": dump(service_account(cfg)),
        "base/rbac.yaml": dump(*rbac(cfg)),
        "base/pvc.yaml": dump(state_pvc(cfg)),
        "base/deployment.yaml": dump(deployment(cfg)),
        "base/service.yaml": dump(service(cfg)),
        "base/networkpolicy.yaml": dump(network_policy(cfg)),
        "base/monitors.yaml": dump(*monitors(cfg)),
    }
    from ctloop.manifests.labels import label_feed_cron_job

    feed = label_feed_cron_job(cfg)
    if feed is not None:
        out["base/label-feed.yaml"] = dump(feed)
    if cfg.drift.replicas > 1:
        from ctloop.manifests.fleet import render_fleet

        out.update(render_fleet(cfg))
    return out
