"""The KServe InferenceService (and its ServingRuntime) rendered from the project config.

Built with kserve's ``V1beta1*``/``V1alpha1*`` models and serialised by kserve's API client, so the
output matches the CRD schema. Knative mode with ``minReplicas`` 0 (scale to zero), the payload logger
pointing at the drift watcher, the champion's ``storageUri`` (mounted at ``/mnt/models``) when the
registry has one, and scheduling on the on-demand CPU pool (``serving.node_selector``, no spot
toleration).
"""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from ctloop.config import ProjectConfig
from ctloop.manifests.storage import model_service_account, model_service_account_name
from ctloop.serving._kserve import import_kserve

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
MODEL_FORMAT = "ctloop"
CONFIG_MOUNT = "/etc/ctloop"


def champion_storage_uri(cfg: ProjectConfig) -> str | None:
    """Storage URI of the champion's model folder, or None when the registry has no champion."""
    from ctloop.errors import RegistryError
    from ctloop.registry import Registry

    try:
        version = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer).alias("champion")
    except RegistryError:
        return None
    except Exception:  # noqa: BLE001 - the store is not reachable from here (no credentials, no driver)
        return None
    if version is None:
        return None
    prefix = (cfg.serving.storage_uri_prefix or cfg.registry.uri).rstrip("/")
    return f"{prefix}/{cfg.name}/versions/{version}/model"


def _runtime_name(cfg: ProjectConfig) -> str:
    return f"{cfg.name}-runtime"


def build_inferenceservice(cfg: ProjectConfig, storage_uri: str | None) -> Any:
    """The ``V1beta1InferenceService`` object."""
    import_kserve()
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1LoggerSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import (
        V1ConfigMapVolumeSource,
        V1ObjectMeta,
        V1ResourceRequirements,
        V1Volume,
        V1VolumeMount,
    )


    sc = cfg.serving
    r = sc.resources
    model = V1beta1ModelSpec(
        name="kserve-container",
        model_format=V1beta1ModelFormat(name=MODEL_FORMAT),
        runtime=_runtime_name(cfg),
        storage_uri=storage_uri,
        protocol_version="v2",
        resources=V1ResourceRequirements(requests={"cpu": r.cpu_request, "memory": r.memory_request},
                                         limits={"cpu": r.cpu_limit, "memory": r.memory_limit}),
        volume_mounts=[V1VolumeMount(name="ctloop-config", mount_path=CONFIG_MOUNT, read_only=True)],
    )
    predictor = V1beta1PredictorSpec(
        model=model,
        min_replicas=sc.min_replicas,
        max_replicas=sc.max_replicas,
        scale_metric=sc.scale_metric,
        scale_target=sc.scale_target,
        canary_traffic_percent=sc.canary_traffic_percent,
        logger=V1beta1LoggerSpec(mode="all", url=sc.watcher_url),
        node_selector=dict(sc.node_selector),
        service_account_name=model_service_account_name(cfg),  # storage.secret: storageUri credentials
        volumes=[V1Volume(name="ctloop-config", config_map=V1ConfigMapVolumeSource(name=sc.config_map))],
    )
    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(name=cfg.name, namespace=sc.namespace,
                              labels={"app.kubernetes.io/name": cfg.name,
                                      "app.kubernetes.io/part-of": "ctloop"},
                              annotations={DEPLOYMENT_MODE_ANNOTATION: "Knative"}),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def build_servingruntime(cfg: ProjectConfig) -> Any:
    """The ``ServingRuntime`` that runs ``ctloop serve`` for the ``ctloop`` model format."""
    import_kserve()
    from kserve import V1alpha1ServingRuntime, V1alpha1ServingRuntimeSpec, V1alpha1SupportedModelFormat
    from kubernetes.client import (
        V1Capabilities,
        V1Container,
        V1ContainerPort,
        V1EmptyDirVolumeSource,
        V1ObjectMeta,
        V1ResourceRequirements,
        V1SeccompProfile,
        V1SecurityContext,
        V1Volume,
        V1VolumeMount,
    )

    sc = cfg.serving
    r = sc.resources
    hardened = V1SecurityContext(
        run_as_non_root=True,
        run_as_user=10001,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=V1Capabilities(drop=["ALL"]),
        seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
    )
    args = ["serve", "--config", f"{CONFIG_MOUNT}/ctloop.yaml", "--host", "0.0.0.0", "--port", "8080",
            "--model-dir", "/mnt/models"]
    # the events token (drift.events_token_file) for ctloop's own payload logger, when events need one
    events_mounts, events_volumes = [], []
    if cfg.drift.events_token_file:
        from kubernetes.client import V1SecretVolumeSource

        events_mounts.append(V1VolumeMount(name="events-token", read_only=True,
                                           mount_path=posixpath.dirname(cfg.drift.events_token_file)))
        events_volumes.append(V1Volume(name="events-token", secret=V1SecretVolumeSource(
            secret_name=cfg.drift.events_token_secret, default_mode=0o440)))
    return V1alpha1ServingRuntime(
        api_version="serving.kserve.io/v1alpha1",
        kind="ServingRuntime",
        metadata=V1ObjectMeta(name=_runtime_name(cfg), namespace=sc.namespace,
                              labels={"app.kubernetes.io/part-of": "ctloop"}),
        spec=V1alpha1ServingRuntimeSpec(
            supported_model_formats=[V1alpha1SupportedModelFormat(name=MODEL_FORMAT, auto_select=True)],
            protocol_versions=["v1", "v2"],
            containers=[V1Container(
                name="kserve-container", image=cfg.kfp.images.runtime, command=["ctloop"], args=args,
                ports=[V1ContainerPort(container_port=8080, protocol="TCP")],
                resources=V1ResourceRequirements(requests={"cpu": r.cpu_request, "memory": r.memory_request},
                                                 limits={"cpu": r.cpu_limit, "memory": r.memory_limit}),
                security_context=hardened,
                volume_mounts=[V1VolumeMount(name="tmp", mount_path="/tmp"),  # writable scratch only
                               *events_mounts],
            )],
            volumes=[V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit="256Mi")), *events_volumes],
            node_selector=dict(sc.node_selector),  # the on-demand pool, like the predictor
        ),
    )


def _dump(obj: Any) -> str:
    import_kserve()
    from kserve import ApiClient

    return yaml.safe_dump(ApiClient().sanitize_for_serialization(obj), sort_keys=False)


def render_inferenceservice(cfg: ProjectConfig) -> dict[str, str]:
    """Renderer for ``ctloop manifests render``: the InferenceService and its ServingRuntime."""
    out = {
        "base/inferenceservice.yaml": _dump(build_inferenceservice(cfg, champion_storage_uri(cfg))),
        "base/servingruntime.yaml": _dump(build_servingruntime(cfg)),
    }
    account = model_service_account(cfg)
    if account is not None:
        out["base/model-serviceaccount.yaml"] = yaml.safe_dump(account, sort_keys=False)
    return out


def strict_deserialize(data: Any, klass: str, path: str = "") -> Any:
    """Build a kserve/kubernetes model object from ``data``, failing on any key the schema lacks.

    kserve's own API client silently drops unknown keys and cannot resolve kubernetes types; this
    resolves ``V1beta1*``/``V1alpha1*`` from ``kserve.models`` and the rest from ``kubernetes.client``.

    Raises:
        ValueError: naming the path of the first unknown field or type mismatch.
    """
    import re

    import_kserve()
    import kserve.models as km
    import kubernetes.client.models as k8s


    if data is None:
        return None
    if m := re.fullmatch(r"list\[(.*)\]", klass):
        if not isinstance(data, list):
            raise ValueError(f"{path or '<root>'}: expected a list")
        return [strict_deserialize(v, m.group(1), f"{path}[{i}]") for i, v in enumerate(data)]
    if m := re.fullmatch(r"dict\(([^,]*), (.*)\)", klass):
        if not isinstance(data, dict):
            raise ValueError(f"{path or '<root>'}: expected a mapping")
        return {k: strict_deserialize(v, m.group(2), f"{path}.{k}") for k, v in data.items()}
    natives = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
               "datetime": str, "date": str}
    if klass in natives:
        if not isinstance(data, natives[klass]):  # type: ignore[arg-type]
            raise ValueError(f"{path or '<root>'}: expected {klass}, got {type(data).__name__}")
        return data
    cls = getattr(km, klass, None) or getattr(k8s, klass, None)
    if cls is None:
        raise ValueError(f"{path or '<root>'}: unknown model type {klass}")
    if not isinstance(data, dict):
        raise ValueError(f"{path or '<root>'}: expected a mapping for {klass}")
    by_json = {v: k for k, v in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise ValueError(f"{path or '<root>'}.{unknown[0]}: unknown field for {klass}")
    kwargs = {by_json[k]: strict_deserialize(v, cls.openapi_types[by_json[k]], f"{path}.{k}")
              for k, v in data.items()}
    if "local_vars_configuration" in cls.__init__.__code__.co_varnames:
        from kubernetes.client import Configuration

        cfg = Configuration()
        cfg.client_side_validation = False
        kwargs["local_vars_configuration"] = cfg
    return cls(**kwargs)
