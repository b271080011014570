"""Overlays (``kind``, ``production``), the Argo CD Application, and every ``kustomization.yaml``.

The kustomizations are written last, from the full set of rendered files (see
:func:`ctloop.render.render_files`), so ``base/kustomization.yaml`` lists whatever ``base/*.yaml`` any
renderer produced, and InferenceService patches appear only when a base InferenceService exists.
"""

from __future__ import annotations

from typing import Any

import yaml

from ctloop.config import ProjectConfig
from ctloop.manifests.base import PART_OF, WATCHER, dump

OVERLAYS = ("kind", "production")
DEPLOY_PATCH = "model-deploy.yaml"
ISVC_FILE = "base/inferenceservice.yaml"
DEPLOY_HEADER = ("# The model version this overlay serves. Written by ctloop's deploy step "
                 "(deploy.mode: gitops); `ctloop manifests render` resets it.\n")
KIND_WATCHER = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
KIND_MODEL = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def _kustomization(resources: list[str], patches: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": resources}
    if patches:
        doc["patches"] = [{"path": p} for p in patches]
    return doc


def _watcher_patch(cfg: ProjectConfig, resources: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": WATCHER, "namespace": cfg.deploy.namespace},
            "spec": {"template": {"spec": {"containers": [{"name": "watcher", "resources": resources}]}}}}


def checkpoint_pvc(cfg: ProjectConfig, size: str, access: str) -> dict[str, Any] | None:
    """The training checkpoint volume in the pipeline namespace, if the config names one."""
    name = getattr(cfg.training, "checkpoint_pvc", "ctloop-checkpoints")
    if not name:
        return None
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": cfg.kfp.namespace,
                         "labels": {**PART_OF, "app.kubernetes.io/component": "training"}},
            "spec": {"accessModes": [access], "resources": {"requests": {"storage": size}}}}


def application(cfg: ProjectConfig) -> dict[str, Any]:
    """The Argo CD Application syncing ``deploy.gitops.overlay`` from ``deploy.gitops.repo_url``."""
    g = cfg.deploy.gitops
    path = "/".join(p for p in (g.path.strip("/"), "overlays", g.overlay) if p)
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": cfg.name, "namespace": "argocd", "labels": dict(PART_OF),
                         "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "spec": {"project": "default",
                     "source": {"repoURL": g.repo_url, "targetRevision": g.branch, "path": path},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": cfg.deploy.namespace},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                    "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                                    "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2,
                                                                      "maxDuration": "3m"}}}}}


def render_overlays(cfg: ProjectConfig) -> dict[str, str]:
    """Overlay patch files that do not depend on other renderers, and the Argo CD Application."""
    out = {
        "overlays/kind/watcher-patch.yaml": dump(_watcher_patch(cfg, KIND_WATCHER)),
        "overlays/production/watcher-patch.yaml": dump(_watcher_patch(cfg, {
            "requests": {"cpu": cfg.deploy.watcher_resources.cpu_request,
                         "memory": cfg.deploy.watcher_resources.memory_request},
            "limits": {"cpu": cfg.deploy.watcher_resources.cpu_limit,
                       "memory": cfg.deploy.watcher_resources.memory_limit}})),
    }
    for overlay, size, access in (("kind", "1Gi", "ReadWriteOnce"), ("production", "50Gi", "ReadWriteMany")):
        pvc = checkpoint_pvc(cfg, size, access)
        if pvc is not None:
            out[f"overlays/{overlay}/checkpoints-pvc.yaml"] = dump(pvc)
    if cfg.deploy.gitops.repo_url:
        out["argocd/application.yaml"] = dump(application(cfg))
    return out


def deploy_patch(name: str, namespace: str, canary_percent: int, storage_uri: str | None = None,
                 annotations: dict[str, str] | None = None) -> str:
    """The overlay's InferenceService patch: ``storageUri`` and ``canaryTrafficPercent``."""
    predictor: dict[str, Any] = {"canaryTrafficPercent": canary_percent}
    if storage_uri:
        predictor["model"] = {"storageUri": storage_uri}
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    doc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": meta,
           "spec": {"predictor": predictor}}
    return DEPLOY_HEADER + yaml.safe_dump(doc, sort_keys=False)


def isvc_identity(files: dict[str, str]) -> tuple[str, str] | None:
    """``(name, namespace)`` of the rendered base InferenceService, or None when there is none."""
    text = files.get(ISVC_FILE)
    if text is None:
        return None
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "InferenceService":
            meta = doc.get("metadata") or {}
            return str(meta["name"]), str(meta.get("namespace") or "default")
    return None


def canary_percent(cfg: ProjectConfig) -> int:
    """canaryTrafficPercent for a new version: ``deploy.canary_percent`` or ``serving``'s."""
    return cfg.deploy.canary_percent if cfg.deploy.canary_percent is not None \
        else cfg.serving.canary_traffic_percent


def render_kustomizations(cfg: ProjectConfig, files: dict[str, str]) -> dict[str, str]:
    """Every ``kustomization.yaml`` (and InferenceService patches), from the full set of rendered files."""
    out: dict[str, str] = {}
    base = sorted(p.removeprefix("base/") for p in files
                  if p.startswith("base/") and p.count("/") == 1 and p.endswith((".yaml", ".yml"))
                  and p != "base/kustomization.yaml")
    out["base/kustomization.yaml"] = dump(_kustomization(base))
    isvc = isvc_identity(files)
    for overlay in OVERLAYS:
        prefix = f"overlays/{overlay}/"
        mine = {p.removeprefix(prefix) for p in files if p.startswith(prefix) and p.count("/") == 2}
        if isvc is not None:
            name, ns = isvc
            out[prefix + DEPLOY_PATCH] = deploy_patch(name, ns, canary_percent(cfg))
            mine.add(DEPLOY_PATCH)
            if overlay == "kind":
                # kind has no Knative: KServe's RawDeployment mode, one replica (no scale to zero)
                out[prefix + "inferenceservice-patch.yaml"] = dump({
                    "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                    "metadata": {"name": name, "namespace": ns,
                                 "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
                    "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1,
                                           "model": {"resources": KIND_MODEL}}}})
                mine.add("inferenceservice-patch.yaml")
        resources = ["../../base", *sorted(p for p in mine if not p.endswith("patch.yaml")
                                           and p != DEPLOY_PATCH)]
        patches = sorted(p for p in mine if p.endswith("patch.yaml") or p == DEPLOY_PATCH)
        out[prefix + "kustomization.yaml"] = dump(_kustomization(resources, patches))
    return out
