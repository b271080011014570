"""The label-feed CronJob: ``ctloop labels push`` on a schedule, admitted by the watcher's NetworkPolicy.

Rendered into ``base/label-feed.yaml`` when ``monitoring.labels.push_schedule`` is set; its pods carry
the ``monitoring.labels.allowed_from`` labels and the trigger token Secret (``POST /labels`` needs it).
"""

from __future__ import annotations

from typing import Any

from ctloop.config import ProjectConfig
from ctloop.manifests.base import (
    CONFIG_MAP,
    CONFIG_MOUNT,
    PART_OF,
    _meta,
    container_security,
    pod_security,
    token_mount,
    watcher_endpoint,
)
from ctloop.manifests.storage import storage_env


def label_feed_cron_job(cfg: ProjectConfig) -> dict[str, Any] | None:
    """The CronJob, or ``None`` when ``monitoring.labels.push_schedule`` is not set."""
    lab = cfg.monitoring.labels
    if lab.push_schedule is None or not lab.push_file:
        return None
    name = f"{cfg.name}-label-feed"
    container = {
        "name": "labels-push",
        "image": cfg.kfp.images.runtime,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "ctloop.cli"],
        "args": ["labels", "push", "--config", f"{CONFIG_MOUNT}/ctloop.yaml", "--file", lab.push_file,
                 "--endpoint", watcher_endpoint(cfg), "--json"],
        "env": [{"name": "HOME", "value": "/tmp"}, *storage_env(cfg)],  # push_file may be s3://
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                         {"name": "token", "mountPath": token_mount(cfg)[0], "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {"restartPolicy": "OnFailure", "automountServiceAccountToken": False,
           "securityContext": pod_security(), "nodeSelector": dict(cfg.deploy.node_selector),
           "containers": [container],
           "volumes": [{"name": "config", "configMap": {"name": CONFIG_MAP}},
                       {"name": "token", "secret": {"secretName": cfg.triggers.token_secret, "defaultMode": 0o440}},
                       {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}
    labels = {"app.kubernetes.io/name": name, **PART_OF, **lab.allowed_from}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta(cfg, name, "label-feed"),
            "spec": {"schedule": lab.push_schedule, "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
                     "startingDeadlineSeconds": 600, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                     "jobTemplate": {"spec": {"backoffLimit": 3, "activeDeadlineSeconds": 1800,
                                              "template": {"metadata": {"labels": labels}, "spec": pod}}}}}
