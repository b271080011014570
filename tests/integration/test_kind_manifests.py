"""The kind e2e's files, checked offline by the tools that consume them (the workflow itself needs
Docker): the committed kind tree equals a fresh render of ``examples/churn/ctloop.kind.yaml``; its kind
overlay and every hand-written object the workflow applies (``examples/churn/kind/setup``) build with
kubectl kustomize, pass kubernetes-validate --strict, kserve's models and the workload policy; every
``run:`` script of the workflow passes shellcheck."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from tests.conftest import require_binary, run_cli, tree_bytes
from tests.helpers_cluster import (
    KIND_CONFIG,
    KIND_MANIFESTS,
    KIND_SETUP,
    KIND_WORKFLOW,
    find,
    is_core,
    kustomize,
    load_all,
    policy_violations,
    tool,
    workloads,
)
from tests.integration.test_cluster_manifests import kserve_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kind_cfg():  # type: ignore[no-untyped-def]
    return load_config(KIND_CONFIG)


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    """``kubectl kustomize`` of the committed kind overlay (what the workflow applies)."""
    return kustomize(KIND_MANIFESTS / "overlays" / "kind")


@pytest.fixture(scope="module")
def setup_objs() -> list[dict[str, Any]]:
    """Every object of ``examples/churn/kind/setup/*.yaml``."""
    files = sorted(KIND_SETUP.glob("*.yaml"))
    assert len(files) >= 3, files
    return [o for f in files for o in load_all(f.read_text())]


def test_committed_kind_tree_equals_rendered(tmp_path: Path) -> None:
    out = tmp_path / "kind"
    proc = run_cli("manifests", "render", "--config", str(KIND_CONFIG), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    committed, fresh = tree_bytes(KIND_MANIFESTS), tree_bytes(out)
    assert sorted(committed) == sorted(fresh), "committed and rendered kind file sets differ: re-render " \
        "with `ctloop manifests render --config examples/churn/ctloop.kind.yaml --out examples/churn/kind/manifests`"
    stale = [p for p in fresh if committed[p] != fresh[p]]
    assert not stale, f"stale committed kind manifests (re-render): {stale}"


def test_kind_overlay_carries_the_kind_config(kind_cfg, overlay) -> None:  # type: ignore[no-untyped-def]
    cm = find(overlay, "ConfigMap", "ctloop-config")
    mounted = yaml.safe_load(cm["data"]["ctloop.yaml"])
    assert mounted["data"]["source"] == kind_cfg.data.source == "s3://mlpipeline/ctloop/churn/data"
    assert mounted["registry"]["uri"].startswith("s3://mlpipeline/")
    assert mounted["deploy"]["mode"] == "kubernetes" and mounted["storage"]["secret"] == "ctloop-s3"
    isvc = find(overlay, "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 100
    sa_name = isvc["spec"]["predictor"]["serviceAccountName"]
    sa = find(overlay, "ServiceAccount", sa_name)
    assert sa["secrets"] == [{"name": "ctloop-s3"}] and sa["automountServiceAccountToken"] is False
    # the deploy step (in kfp.namespace, as the pipeline's service account) may patch the model
    binding = find(overlay, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}]
    assert find(overlay, "PersistentVolumeClaim", "ctloop-checkpoints")["metadata"]["namespace"] == "kubeflow"


@pytest.mark.parametrize("kind, name", [("Deployment", "ctloop-watcher"), ("CronJob", "churn-label-feed")])
def test_kind_workloads_reach_minio_through_env_and_the_secret(overlay, kind: str, name: str) -> None:  # type: ignore[no-untyped-def]
    obj = find(overlay, kind, name)
    spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" \
        else obj["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio-service.kubeflow:9000"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "ctloop-s3", "key": var}


def _validate(objs: list[dict[str, Any]], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump_all(objs))
    return subprocess.run([tool("kubernetes-validate"), "--strict", "--no-warn", str(path)],
                          capture_output=True, text=True, timeout=300)


def test_kind_core_objects_and_setup_pass_kubernetes_validate_strict(overlay, setup_objs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core = [o for o in [*overlay, *setup_objs] if is_core(o)]
    assert {"Job", "Secret"} <= {o["kind"] for o in setup_objs}
    assert len(core) >= 15
    proc = _validate(core, tmp_path / "core.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("passed") == len(core)


def test_kubernetes_validate_rejects_a_misspelt_job_field(setup_objs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job = yaml.safe_load(yaml.safe_dump(find(setup_objs, "Job", "churn-seed-data")))
    job["spec"]["template"]["spec"]["restartPolicyy"] = "Never"
    assert _validate([job], tmp_path / "bad.yaml").returncode != 0


def test_kind_inferenceservice_round_trips_through_kserve(overlay) -> None:  # type: ignore[no-untyped-def]
    raw = find(overlay, "InferenceService")
    client = kserve_client()
    obj = client._ApiClient__deserialize(raw, "V1beta1InferenceService")
    assert client.sanitize_for_serialization(obj) == raw  # a field kserve does not know would be dropped


def test_kind_workloads_and_seed_jobs_are_hardened(overlay, setup_objs) -> None:  # type: ignore[no-untyped-def]
    objs = [*overlay, *setup_objs]
    seen = [w["metadata"]["name"] for w in workloads(objs)]
    assert {"ctloop-watcher", "churn-seed-data", "churn-seed-drift"} <= set(seen)
    for w in workloads(objs):
        assert policy_violations(w) == [], policy_violations(w)
    secrets = [o for o in objs if o["kind"] == "Secret"]
    assert secrets and not [s for s in secrets if s.get("data") or s.get("stringData")], \
        "a Secret with inline data is committed"


def test_kind_prometheusrule_passes_promtool(overlay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    promtool = require_binary("promtool")
    groups = [g for r in overlay if r["kind"] == "PrometheusRule" for g in r["spec"]["groups"]]
    assert groups
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _run_scripts() -> list[tuple[str, str]]:
    doc = yaml.safe_load(KIND_WORKFLOW.read_text())
    return [(s.get("name", s.get("uses", "?")), s["run"]) for job in doc["jobs"].values()
            for s in job["steps"] if "run" in s]


def _shellcheck(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "step.sh"
    path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)  # GitHub's default `shell: bash`
    return subprocess.run([require_binary("shellcheck"), "--severity=warning", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_every_workflow_script_passes_shellcheck(tmp_path: Path) -> None:
    scripts = _run_scripts()
    assert len(scripts) >= 10
    for name, script in scripts:
        proc = _shellcheck(script, tmp_path)
        assert proc.returncode == 0, f"step {name!r}:\n{proc.stdout}{proc.stderr}"


def test_shellcheck_catches_a_broken_script(tmp_path: Path) -> None:
    proc = _shellcheck('for f in $(ls *.yaml); do\n  echo "$f"\n', tmp_path)  # no `done`
    assert proc.returncode != 0
