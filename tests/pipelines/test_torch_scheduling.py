"""The compiled pipeline puts only the train task on the GPU spot pool, exactly as ``kind-config.yaml``
labels and taints that pool (one source of truth: the ``training`` config section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components import DEFAULT_IMAGE
from ctloop.config import ProjectConfig, TrainingConfig, load_config
from pipelines.training import compile_pipeline
from pipelines.training.pipeline import COMPILED
from tests.conftest import make_project, run_cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.pipeline


def _load_compiled(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    platform = next((d for d in docs[1:] if d and "platforms" in d), {"platforms": {}})
    return spec, platform["platforms"].get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})


def _kind_nodes() -> list[dict[str, Any]]:
    cfg = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    return list(cfg["nodes"])


def _taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for patch in node.get("kubeadmConfigPatches", []):
        doc = yaml.safe_load(patch)
        out += doc.get("nodeRegistration", {}).get("taints", []) or []
    return out


def _tolerates(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    if tol.get("key") != taint["key"] or (tol.get("effect") and tol["effect"] != taint.get("effect")):
        return False
    return tol.get("operator", "Equal") == "Exists" or str(tol.get("value")) == str(taint.get("value"))


def _selects(selector: dict[str, str], node: dict[str, Any]) -> bool:
    labels = {k: str(v) for k, v in (node.get("labels") or {}).items()}
    return all(labels.get(k) == v for k, v in selector.items())


def _check(spec: dict[str, Any], executors: dict[str, Any], t: TrainingConfig, train_image: str) -> None:
    containers = spec["deploymentSpec"]["executors"]
    train = containers["exec-train"]["container"]
    assert train["image"] == train_image
    acc = train["resources"]["accelerator"]
    assert acc["resourceType"] == t.accelerator_type and int(acc["resourceCount"]) == t.accelerator_limit
    assert train["resources"]["resourceCpuRequest"] == t.cpu_request
    assert train["resources"]["resourceMemoryRequest"] == t.memory_request
    for name, ex in containers.items():
        if name != "exec-train":
            assert "accelerator" not in ex["container"].get("resources", {}), f"{name} must get no GPU"
    assert set(executors) == {"exec-train"}, "only the train task gets node selector/tolerations/PVC"
    k8s = executors["exec-train"]
    assert k8s["nodeSelector"]["labels"] == t.node_selector
    assert k8s["tolerations"] == [tol.model_dump(exclude_none=True) for tol in t.tolerations]
    assert k8s["pvcMount"][0]["mountPath"] == t.checkpoint_mount_path
    assert k8s["pvcMount"][0]["constant"] == t.checkpoint_pvc
    assert int(k8s["activeDeadlineSeconds"]) == t.timeout_seconds
    retry = spec["root"]["dag"]["tasks"]["train"]["retryPolicy"]
    assert retry["maxRetryCount"] == t.retries and retry["backoffDuration"] == f"{t.backoff_seconds}s"
    others = [task for name, task in spec["root"]["dag"]["tasks"].items() if name != "train"]
    assert all("retryPolicy" not in task for task in others)


def _check_kind(t: TrainingConfig) -> None:
    nodes = _kind_nodes()
    assert [n["role"] for n in nodes].count("control-plane") == 1
    selected = [n for n in nodes if _selects(t.node_selector, n)]
    assert len(selected) == 1, "exactly one node pool (gpu-spot) matches the train task's node selector"
    gpu = selected[0]
    assert gpu["role"] == "worker" and gpu["labels"]["ctloop.io/pool"] == "gpu-spot"
    taints = _taints(gpu)
    assert taints, "the gpu-spot node must be tainted so only training lands there"
    for taint in taints:
        assert any(_tolerates(tol.model_dump(), taint) for tol in t.tolerations), f"untolerated {taint}"
    cpu = [n for n in nodes if n["role"] == "worker" and n is not gpu]
    assert cpu and all(not _taints(n) for n in cpu), "the CPU worker takes every other task"


def test_kind_config_matches_default_training_config() -> None:
    _check_kind(TrainingConfig())


def test_committed_compiled_pipeline_carries_scheduling() -> None:
    spec, executors = _load_compiled(COMPILED)
    _check(spec, executors, TrainingConfig(), DEFAULT_IMAGE)


def test_compiled_from_project_config(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text + ("\ntraining:\n  accelerator_limit: 2\n  cpu_request: '4'\n  timeout_seconds: 7200\n"
                       "  retries: 5\n  checkpoint_pvc: my-ckpt\n")

    path = make_project(tmp_path / "proj", days=2, rows_per_day=20, edit=edit)
    cfg: ProjectConfig = load_config(path)
    proc = run_cli("compile", "--out", str(tmp_path / "out"), "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    spec, executors = _load_compiled(tmp_path / "out" / "pipeline.yaml")
    _check(spec, executors, cfg.training, cfg.kfp.images.trainer_gpu)
    _check_kind(cfg.training)
    assert spec["deploymentSpec"]["executors"]["exec-ingest"]["container"]["image"] == cfg.kfp.images.runtime


def test_cpu_only_training_gets_no_gpu_pool(tmp_path: Path) -> None:
    t = TrainingConfig(accelerator_limit=0, checkpoint_pvc=None, retries=0)
    spec, executors = _load_compiled(compile_pipeline(tmp_path / "p.yaml", training=t))
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert "nodeSelector" not in executors["exec-train"] and "tolerations" not in executors["exec-train"]
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["train"]
