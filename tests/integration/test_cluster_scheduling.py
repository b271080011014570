"""Node pools agree across kind-config.yaml, the compiled pipeline and the rendered overlays:
every pod can land on a node of the kind cluster, only what tolerates the spot taint selects the
spot pool, serving and the watcher never land on a tainted pool, and the checkpoint PVC the pipeline
mounts exists in every overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from ctloop.manifests.overlays import OVERLAYS
from tests.helpers_cluster import EXAMPLE, ROOT, kustomize, pod_spec, rendered_files, write_tree

pytestmark = pytest.mark.integration
KIND_CONFIG = ROOT / "kind-config.yaml"
PIPELINE = ROOT / "pipelines" / "training" / "pipeline.yaml"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def kind_nodes(path: Path = KIND_CONFIG) -> list[dict[str, Any]]:
    """Nodes of the kind config: role, labels, taints (from kubeadm JoinConfiguration patches)."""
    if not path.is_file():
        pytest.fail(f"{path.name} is missing at the repository root: it defines the node pools (control "
                    "plane, CPU worker, gpu-spot worker) that the overlays and the pipeline are checked "
                    "against")
    nodes = []
    for n in yaml.safe_load(path.read_text())["nodes"]:
        taints = [CONTROL_PLANE_TAINT] if n["role"] == "control-plane" else []
        for patch in n.get("kubeadmConfigPatches") or []:
            doc = yaml.safe_load(patch) or {}
            taints += (doc.get("nodeRegistration") or {}).get("taints") or []
        nodes.append({"role": n["role"], "labels": {k: str(v) for k, v in (n.get("labels") or {}).items()},
                      "taints": taints})
    return nodes


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Kubernetes' toleration matching for one taint."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and str(t.get("value") or "") == str(taint.get("value") or ""):
            return True
    return False


def landing_nodes(nodes: list[dict[str, Any]], selector: dict[str, str],
                  tolerations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes a pod with this selector and these tolerations can be scheduled on."""
    return [n for n in nodes
            if all(n["labels"].get(k) == str(v) for k, v in selector.items())
            and all(tolerates(tolerations, t) for t in n["taints"]
                    if t.get("effect") in ("NoSchedule", "NoExecute"))]


def test_tolerates_matches_kubernetes_semantics() -> None:
    taint = {"key": "ctloop.io/spot", "value": "true", "effect": "NoSchedule"}
    assert tolerates([{"key": "ctloop.io/spot", "operator": "Equal", "value": "true",
                       "effect": "NoSchedule"}], taint)
    assert tolerates([{"key": "ctloop.io/spot", "operator": "Exists"}], taint)
    assert not tolerates([{"key": "ctloop.io/spot", "operator": "Equal", "value": "false"}], taint)
    assert not tolerates([{"key": "ctloop.io/spot", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert not tolerates([], taint)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    tree = write_tree(rendered_files(load_config(EXAMPLE / "ctloop.yaml")), tmp_path_factory.mktemp("m"))
    return {o: kustomize(tree / "overlays" / o) for o in OVERLAYS}


def _pods(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for o in objs:
        spec = pod_spec(o)
        if spec is not None:
            out.append((f"{o['kind']}/{o['metadata']['name']}", spec))
        elif o["kind"] == "InferenceService":
            out.append((f"InferenceService/{o['metadata']['name']}", o["spec"]["predictor"]))
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_pod_lands_on_an_untainted_kind_node(built, overlay: str) -> None:  # type: ignore[no-untyped-def]
    nodes = kind_nodes()
    pods = _pods(built[overlay])
    assert len(pods) >= 3
    for where, spec in pods:
        selector = spec.get("nodeSelector") or {}
        assert selector, f"{overlay}: {where} has no nodeSelector (it could land on the spot pool's peers)"
        hits = landing_nodes(nodes, selector, spec.get("tolerations") or [])
        assert hits, f"{overlay}: {where} selects {selector}, which no schedulable kind node has"
        tainted = [n["labels"] for n in hits if n["taints"]]
        assert not tainted, f"{overlay}: {where} may land on tainted (spot) nodes {tainted}"


def _pipeline_platform() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(PIPELINE.read_text()) if d]
    for d in docs:
        executors = (((d.get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec") or {})
        if executors.get("executors"):
            return dict(executors["executors"])
    return {}


def _pvc_names(executor: dict[str, Any]) -> list[str]:
    names = []
    for m in executor.get("pvcMount") or []:
        param = (m.get("pvcNameParameter") or {}).get("runtimeValue") or {}
        name = m.get("constant") or param.get("constant")
        if name:
            names.append(str(name))
    return names


def test_compiled_pipeline_scheduling_agrees_with_kind_and_overlays(built) -> None:  # type: ignore[no-untyped-def]
    nodes = kind_nodes()
    tainted = [n for n in nodes if n["taints"] and n["role"] != "control-plane"]
    for name, ex in _pipeline_platform().items():
        selector = (ex.get("nodeSelector") or {}).get("labels") or {}
        tolerations = ex.get("tolerations") or []
        hits = landing_nodes(nodes, selector, tolerations)
        assert hits, f"pipeline executor {name}: selector {selector} + tolerations match no kind node"
        for node in tainted:
            if all(tolerates(tolerations, t) for t in node["taints"]):
                assert selector and all(node["labels"].get(k) == v for k, v in selector.items()), \
                    f"pipeline executor {name} tolerates {node['labels']}'s taint but does not select it"
        for pvc in _pvc_names(ex):
            for overlay, objs in built.items():
                pvcs = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
                assert pvc in pvcs, \
                    f"pipeline executor {name} mounts PVC {pvc!r}, which overlay {overlay} does not create"


def test_kind_config_parsing_finds_taints(tmp_path: Path) -> None:
    cfg = tmp_path / "kind.yaml"
    cfg.write_text(yaml.safe_dump({"kind": "Cluster", "nodes": [
        {"role": "control-plane"},
        {"role": "worker", "labels": {"pool": "gpu-spot"}, "kubeadmConfigPatches": [yaml.safe_dump(
            {"kind": "JoinConfiguration", "nodeRegistration": {"taints": [
                {"key": "spot", "value": "true", "effect": "NoSchedule"}]}})]}]}))
    nodes = kind_nodes(cfg)
    assert nodes[1]["taints"] == [{"key": "spot", "value": "true", "effect": "NoSchedule"}]
    assert landing_nodes(nodes, {"pool": "gpu-spot"}, []) == []
    assert landing_nodes(nodes, {"pool": "gpu-spot"}, [{"key": "spot", "operator": "Exists"}]) == [nodes[1]]
