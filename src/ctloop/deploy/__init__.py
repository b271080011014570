"""The deploy step's modes: ``local`` (move the champion alias), ``gitops`` (commit the overlay's
InferenceService patch and push), ``kubernetes`` (patch the InferenceService through the API server).

In ``gitops`` and ``kubernetes`` modes the promotion is claimed first (a compare-and-swap on the
champion alias that records an intent), then delivered, then committed: a lost claim delivers nothing,
a failed delivery withdraws the claim (champion untouched), and a deploy that died between the steps
is settled by :func:`ctloop.deploy.recovery.recover_promotion`, which commits the claim only if the
cluster-facing state carries the version.
"""

from __future__ import annotations

from typing import Any

from ctloop.config import ProjectConfig
from ctloop.errors import RegistryError, VersionNotFoundError
from ctloop.registry import Registry


def storage_uri(cfg: ProjectConfig, version: int) -> str:
    """The cluster URI of a version's model folder (what KServe's ``storageUri`` points at)."""
    prefix = getattr(cfg.serving, "storage_uri_prefix", None) or cfg.registry.uri
    return f"{prefix.rstrip('/')}/{cfg.name}/versions/{version}/model"


def lineage(cfg: ProjectConfig, version: int, run_id: str, meta: dict[str, Any]) -> dict[str, str]:
    """The facts a deployment carries: model, version, run id, trigger cause."""
    trigger = meta.get("trigger") or {}
    cause = str(trigger.get("cause", "unknown")) if isinstance(trigger, dict) else str(trigger)
    return {"model": cfg.name, "version": str(version), "run_id": run_id or str(meta.get("run_id", "")),
            "trigger": cause}


def deploy_version(cfg: ProjectConfig, version: int, run_id: str) -> dict[str, Any]:
    """Deliver ``version`` with ``deploy.mode`` and then promote it to champion.

    Returns:
        A JSON-friendly summary: version, previous champion, mode, and the mode's details.

    Raises:
        DeployError: When the push or patch failed (champion untouched).
    """
    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    reason = f"gate passed in run {run_id}"
    mv = reg.get(version)
    # versions registered by the pipeline name the champion their gate compared against
    parent = mv.metadata.get("parent")
    checked = "parent" in mv.metadata
    current = reg.alias("champion")
    if checked and current not in (parent, version):
        # the gate compared against a champion that has since changed: keep the version, don't deliver
        why = f"champion is v{current}, not v{parent} as the gate compared against; not delivered"
        print(f"deploy: v{version} not promoted: {why}", flush=True)
        return {"version": version, "promoted": False, "reason": why, "mode": cfg.deploy.mode}
    if cfg.deploy.mode == "local":
        return {**_promote(reg, version, reason, parent if checked else current), "mode": "local"}
    facts = lineage(cfg, version, run_id, mv.metadata)
    uri = storage_uri(cfg, version)
    base = {"version": version, "mode": cfg.deploy.mode, "storage_uri": uri}
    from ctloop.deploy.recovery import STALE_CLAIM_S, recover_promotion

    recover_promotion(cfg, reg, min_age_s=STALE_CLAIM_S)  # a claim left by a deploy that died long ago
    try:  # 1. claim: compare-and-swap on the champion, recorded as an intent
        claim, previous = reg.claim_promotion(
            version, f"{reason} ({cfg.deploy.mode})", parent if checked else current,
            intent={"mode": cfg.deploy.mode, "run_id": run_id, "storage_uri": uri})
    except VersionNotFoundError:
        raise
    except RegistryError as exc:
        print(f"deploy: v{version} not promoted and not delivered: {exc}", flush=True)
        return {**base, "promoted": False, "delivered": False, "reason": str(exc)}
    try:  # 2. deliver
        details = deliver(cfg, uri, facts)
    except BaseException:
        if claim is not None:
            reg.abort_promotion(claim)  # champion untouched
        raise
    # 3. commit the alias
    promoted = reg.commit_promotion(claim) if claim is not None else True
    out = {**base, "previous": previous, "promoted": promoted, "delivered": True, **details}
    if not promoted:
        out["reason"] = ("the promotion claim was withdrawn while delivering (a recovery judged the deploy "
                         "dead); deploy again to make the champion match the cluster")
        print(f"deploy: v{version} delivered but not promoted: {out['reason']}", flush=True)
    return out


def deliver(cfg: ProjectConfig, uri: str, facts: dict[str, str]) -> dict[str, Any]:
    """Push (gitops) or patch (kubernetes) ``uri`` to the cluster; return the mode's details."""
    if cfg.deploy.mode == "gitops":
        from ctloop.deploy.gitops import deploy_gitops

        return deploy_gitops(cfg, uri, facts).to_dict()
    from ctloop.deploy.kubernetes import deploy_kubernetes

    return deploy_kubernetes(cfg, uri, facts)


def _promote(reg: Registry, version: int, reason: str, parent: int | None) -> dict[str, Any]:
    """Compare-and-swap promotion against the champion the gate compared with."""
    if reg.alias("champion") == version:
        return {"version": version, "previous": reg.alias("previous"), "promoted": True}
    try:
        previous = reg.promote(version, reason=reason, expected_champion=parent)
    except VersionNotFoundError:
        raise
    except RegistryError as exc:
        print(f"deploy: v{version} not promoted: {exc}", flush=True)
        return {"version": version, "promoted": False, "reason": str(exc)}
    return {"version": version, "previous": previous, "promoted": True}
