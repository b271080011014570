"""``deploy.mode: kubernetes``: merge-patch the InferenceService's ``storageUri`` and canary percent
through the Kubernetes API (the official ``kubernetes`` client).
"""

from __future__ import annotations

from typing import Any

from ctloop.config import ProjectConfig
from ctloop.errors import DeployError
from ctloop.manifests.overlays import canary_percent

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def isvc_namespace(cfg: ProjectConfig) -> str:
    """Namespace of the model's InferenceService."""
    return str(getattr(cfg.serving, "namespace", None) or cfg.deploy.namespace)


def patch_body(uri: str, canary: int, facts: dict[str, str]) -> dict[str, Any]:
    """The JSON merge patch: annotations with the lineage, storageUri, canaryTrafficPercent."""
    return {"metadata": {"annotations": {"ctloop.io/model-version": facts["version"],
                                         "ctloop.io/run-id": facts["run_id"],
                                         "ctloop.io/trigger": facts["trigger"]}},
            "spec": {"predictor": {"canaryTrafficPercent": canary, "model": {"storageUri": uri}}}}


def _api_client(cfg: ProjectConfig) -> Any:
    from kubernetes import config as kconfig

    k = cfg.deploy.kubernetes
    try:
        if k.kubeconfig:
            return kconfig.new_client_from_config(config_file=k.kubeconfig, context=k.context)
        kconfig.load_incluster_config()
    except (kconfig.ConfigException, OSError) as exc:
        raise DeployError(f"deploy.kubernetes: no cluster credentials ({exc}); set deploy.kubernetes."
                          "kubeconfig or run inside the cluster") from exc
    from kubernetes.client import ApiClient

    return ApiClient()


def deploy_kubernetes(cfg: ProjectConfig, uri: str, facts: dict[str, str],
                      api_client: Any | None = None) -> dict[str, Any]:
    """Patch the InferenceService named like the model; return its observed generation.

    Raises:
        DeployError: When the API server refuses the patch (not found, forbidden, invalid).
    """
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    client = api_client or _api_client(cfg)
    ns = isvc_namespace(cfg)
    canary = canary_percent(cfg)
    try:
        obj = CustomObjectsApi(client).patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, cfg.name, patch_body(uri, canary, facts))
    except ApiException as exc:
        raise DeployError(f"InferenceService {ns}/{cfg.name}: patch refused by the API server "
                          f"(HTTP {exc.status} {exc.reason}); check it exists and that the pipeline's "
                          "service account is bound to the deployer Role") from exc
    except OSError as exc:
        raise DeployError(f"InferenceService {ns}/{cfg.name}: API server unreachable ({exc})") from exc
    meta = obj.get("metadata", {}) if isinstance(obj, dict) else {}
    return {"inferenceservice": f"{ns}/{cfg.name}", "generation": meta.get("generation"),
            "resource_version": meta.get("resourceVersion"), "canary_percent": canary}
