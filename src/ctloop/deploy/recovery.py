"""Settle a promotion claim left by a deploy that died between claiming, delivering and committing.

The cluster-facing state decides: when the GitOps overlay (or the live InferenceService) serves the
claimed version's ``storageUri``, the claim is committed (the champion alias follows the cluster);
otherwise it is withdrawn (the cluster never saw it, the champion stays). Either way the two agree.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ctloop.config import ProjectConfig
from ctloop.errors import DeployError
from ctloop.registry import Registry

STALE_CLAIM_S = 3600.0  # a deploy holding its claim longer than this is taken as dead


def delivered_uri(cfg: ProjectConfig) -> str | None:
    """The ``storageUri`` the cluster-facing state serves now (GitOps overlay or live InferenceService)."""
    if cfg.deploy.mode == "gitops":
        return _gitops_uri(cfg)
    if cfg.deploy.mode == "kubernetes":
        return _kubernetes_uri(cfg)
    return None


def _gitops_uri(cfg: ProjectConfig) -> str | None:
    from ctloop.deploy.gitops import _Git
    from ctloop.manifests.overlays import DEPLOY_PATCH

    g = cfg.deploy.gitops
    if not g.repo_url:
        raise DeployError("deploy.gitops.repo_url: required to check what the GitOps repository serves")
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-gitops-check-"))
    try:
        _Git(tmp, cfg)("clone", "--quiet", "--depth", "1", "--branch", g.branch, "--single-branch",
                       g.repo_url, "repo")
        patch = tmp / "repo" / g.path / "overlays" / g.overlay / DEPLOY_PATCH
        try:
            doc = yaml.safe_load(patch.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DeployError(f"{g.repo_url}: cannot read {patch.relative_to(tmp / 'repo')} ({exc})") from exc
        model = ((doc or {}).get("spec", {}).get("predictor") or {}).get("model") or {}
        uri = model.get("storageUri")
        return str(uri) if uri else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kubernetes_uri(cfg: ProjectConfig, api_client: Any | None = None) -> str | None:
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    from ctloop.deploy.kubernetes import GROUP, PLURAL, VERSION, _api_client, isvc_namespace

    ns = isvc_namespace(cfg)
    try:
        obj = CustomObjectsApi(api_client or _api_client(cfg)).get_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, cfg.name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise DeployError(f"InferenceService {ns}/{cfg.name}: cannot read it (HTTP {exc.status})") from exc
    uri = (((obj or {}).get("spec") or {}).get("predictor") or {}).get("model", {}).get("storageUri")
    return str(uri) if uri else None


def _age_s(intent: dict[str, Any]) -> float:
    try:
        at = dt.datetime.fromisoformat(str(intent.get("at")))
    except ValueError:
        return float("inf")
    return (dt.datetime.now(dt.UTC) - at).total_seconds()


def recover_promotion(cfg: ProjectConfig, reg: Registry | None = None, min_age_s: float = 0.0) -> dict[str, Any]:
    """Commit or withdraw a promotion claim older than ``min_age_s``, by what the cluster serves.

    Returns:
        ``{"claim": None}`` when there is none; else the claim's version, its age and the ``action``
        taken: ``committed``, ``withdrawn`` or ``in_flight`` (younger than ``min_age_s``).
    """
    reg = reg or Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    pending = reg.pending_intent()
    if pending is None:
        return {"claim": None}
    intent = pending["intent"]
    out = {"claim": intent.get("id"), "version": intent.get("version"), "age_s": round(_age_s(intent), 1)}
    if _age_s(intent) < min_age_s:
        return {**out, "action": "in_flight"}
    served = delivered_uri(cfg) if intent.get("mode") == cfg.deploy.mode else None
    if served is not None and served == intent.get("storage_uri"):
        ok = reg.commit_promotion(str(intent["id"]))
        return {**out, "action": "committed" if ok else "gone"}
    ok = reg.abort_promotion(str(intent["id"]))
    return {**out, "action": "withdrawn" if ok else "gone", "served": served}
