"""Object-store access of ctloop's pods (``storage`` in the config), as Kubernetes objects.

One function per shape, shared by every renderer that needs it: the container ``env`` list (the
watcher, the label-feed CronJob), and the model server's ServiceAccount that lists the credentials
Secret for KServe's storage initializer. The pipeline steps get the same variables at compile time
(:func:`pipelines.training.pipeline.compile_for_config`).
"""

from __future__ import annotations

from typing import Any

from ctloop.config import ProjectConfig

PART_OF = {"app.kubernetes.io/part-of": "ctloop"}


def storage_env(cfg: ProjectConfig) -> list[dict[str, Any]]:
    """Container env entries: ``storage.env`` as values, then ``storage.secret_keys`` as secretKeyRefs."""
    s = cfg.storage
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(s.env.items())]
    if s.secret:
        out += [{"name": env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": key}}}
                for env, key in sorted(s.secret_keys.items())]
    return out


def model_service_account_name(cfg: ProjectConfig) -> str | None:
    """The model server's ServiceAccount, rendered only when ``storage.secret`` is set."""
    return f"{cfg.name}-model" if cfg.storage.secret else None


def model_service_account(cfg: ProjectConfig) -> dict[str, Any] | None:
    """A ServiceAccount listing ``storage.secret``: KServe's storage initializer reads the Secret's
    ``serving.kserve.io/s3-*`` annotations and its AWS keys to download ``storageUri``."""
    name = model_service_account_name(cfg)
    if name is None:
        return None
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": cfg.serving.namespace,
                         "labels": {**PART_OF, "app.kubernetes.io/name": name,
                                    "app.kubernetes.io/component": "serving"}},
            "automountServiceAccountToken": False,
            "secrets": [{"name": cfg.storage.secret}]}
