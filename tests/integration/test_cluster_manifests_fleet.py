"""Fleet-mode cluster manifests (``drift.replicas: 3``, ``drift.aggregation: prometheus``): kustomize builds
both overlays, kubernetes-validate --strict passes the core objects (PodDisruptionBudget included), the
workload policy holds, promtool checks the recording rules, and the ledger stays on one replica."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import ProjectConfig, load_config
from ctloop.manifests.overlays import OVERLAYS
from tests.conftest import require_binary
from tests.helpers_cluster import (
    EXAMPLE,
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
REPLICAS = 3


@pytest.fixture(scope="module")
def fleet_cfg(tmp_path_factory: pytest.TempPathFactory) -> ProjectConfig:
    doc = yaml.safe_load((EXAMPLE / "ctloop.yaml").read_text())
    doc["drift"].update(aggregation="prometheus", replicas=REPLICAS, fleet_window="15m")
    root = tmp_path_factory.mktemp("fleet-cfg")
    doc["registry"]["uri"] = str(root / "registry")  # an empty local registry: no object store needed
    path = root / "ctloop.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


@pytest.fixture(scope="module")
def tree(fleet_cfg: ProjectConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(rendered_files(fleet_cfg), tmp_path_factory.mktemp("fleet-manifests"))


@pytest.fixture(scope="module")
def built(tree: Path) -> dict[str, list[dict[str, Any]]]:
    return {o: kustomize(tree / "overlays" / o) for o in OVERLAYS}


def _volumes(dep: dict[str, Any]) -> set[str]:
    return {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_watchers_scale_out_and_the_ledger_stays_on_one_replica(built, overlay: str) -> None:  # type: ignore[no-untyped-def]
    objs = built[overlay]
    watcher = find(objs, "Deployment", "ctloop-watcher")
    assert watcher["spec"]["replicas"] == REPLICAS
    assert watcher["spec"]["strategy"]["type"] == "RollingUpdate"
    wc = watcher["spec"]["template"]["spec"]["containers"][0]
    assert wc["args"][-1] == "--no-triggers"
    assert "state" not in _volumes(watcher) and "token" not in _volumes(watcher)  # no ledger, no token
    triggers = find(objs, "Deployment", "ctloop-triggers")
    assert triggers["spec"]["replicas"] == 1 and triggers["spec"]["strategy"] == {"type": "Recreate"}
    assert triggers["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--triggers"
    assert {"state", "token"} <= _volumes(triggers)
    pvc = triggers["spec"]["template"]["spec"]["volumes"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "ctloop-state"}} in pvc
    # the two Deployments' pods are told apart by their selectors
    w_labels = watcher["spec"]["template"]["metadata"]["labels"]
    t_labels = triggers["spec"]["template"]["metadata"]["labels"]
    assert not _matches(watcher["spec"]["selector"]["matchLabels"], t_labels)
    assert not _matches(triggers["spec"]["selector"]["matchLabels"], w_labels)
    # alerts and the schedule go to the trigger controller's Service
    svc = find(objs, "Service", "ctloop-triggers")
    assert _matches(svc["spec"]["selector"], t_labels) and not _matches(svc["spec"]["selector"], w_labels)
    url = "http://ctloop-triggers.ctloop.svc.cluster.local"
    amc = find(objs, "AlertmanagerConfig")
    assert amc["spec"]["receivers"][0]["webhookConfigs"][0]["url"] == url + "/alerts"
    cron = find(objs, "CronJob", "churn-schedule")
    assert url + "/trigger" in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]


def test_pdb_and_service_monitor_cover_every_watcher_replica(built) -> None:  # type: ignore[no-untyped-def]
    objs = built["production"]
    watcher = find(objs, "Deployment", "ctloop-watcher")
    w_labels = watcher["spec"]["template"]["metadata"]["labels"]
    pdb = find(objs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and _matches(pdb["spec"]["selector"]["matchLabels"], w_labels)
    svc = find(objs, "Service", "ctloop-watcher")
    assert _matches(svc["spec"]["selector"], w_labels)  # every replica is an endpoint of the Service
    monitors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ServiceMonitor"}
    assert _matches(monitors["ctloop-watcher"]["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    t_svc = find(objs, "Service", "ctloop-triggers")
    assert _matches(monitors["ctloop-triggers"]["spec"]["selector"]["matchLabels"], t_svc["metadata"]["labels"])
    assert not _matches(monitors["ctloop-watcher"]["spec"]["selector"]["matchLabels"], t_svc["metadata"]["labels"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_fleet_core_objects_pass_kubernetes_validate_strict(built, overlay: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core = [o for o in built[overlay] if is_core(o)]
    assert {"PodDisruptionBudget", "Deployment", "Service", "NetworkPolicy"} <= {o["kind"] for o in core}
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    proc = subprocess.run([tool("kubernetes-validate"), "--strict", "--no-warn", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("passed") == len(core)


def test_fleet_workloads_are_hardened(built) -> None:  # type: ignore[no-untyped-def]
    for overlay, objs in built.items():
        names = []
        for w in workloads(objs):
            names.append(w["metadata"]["name"])
            assert policy_violations(w) == [], f"{overlay}: {policy_violations(w)}"
        assert {"ctloop-watcher", "ctloop-triggers"} <= set(names)


def test_fleet_prometheusrule_passes_promtool(built, tree: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    promtool = require_binary("promtool")
    rule = find(built["production"], "PrometheusRule")
    groups = {g["name"]: g for g in rule["spec"]["groups"]}
    fleet = groups.get("ctloop-churn-fleet")
    assert fleet is not None, sorted(groups)
    assert any(r.get("record") == "ctloop:drift_psi:window" for r in fleet["rules"])
    assert "[15m]" in fleet["rules"][0]["expr"]  # drift.fleet_window
    alert = groups["ctloop-churn"]["rules"][0]
    assert alert["expr"] == 'max by (namespace, model) (ctloop:drift_share:window{model="churn"}) >= 0.25'
    for path in (tree / "monitoring" / "rules.yml",):
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(rule["spec"]))
    proc = subprocess.run([promtool, "check", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    # 10 fleet recording rules, the drift alert and the performance alert
    assert proc.returncode == 0 and "SUCCESS: 12 rules found" in proc.stdout, proc.stdout + proc.stderr


def test_local_mode_keeps_one_watcher_with_its_trigger_routes(tmp_path: Path) -> None:
    doc = yaml.safe_load((EXAMPLE / "ctloop.yaml").read_text())
    doc["registry"]["uri"] = str(tmp_path / "registry")
    (tmp_path / "ctloop.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(tmp_path / "ctloop.yaml")
    assert cfg.drift.aggregation == "local" and cfg.drift.replicas == 1
    tree = write_tree(rendered_files(cfg), tmp_path / "manifests")
    objs = kustomize(tree / "overlays" / "production")
    watcher = find(objs, "Deployment", "ctloop-watcher")
    assert watcher["spec"]["replicas"] == 1 and {"state", "token"} <= _volumes(watcher)
    assert "--no-triggers" not in watcher["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget" or o["metadata"]["name"] == "ctloop-triggers"]
    core = [o for o in objs if is_core(o)]
    (tmp_path / "core.yaml").write_text(yaml.safe_dump_all(core))
    proc = subprocess.run([tool("kubernetes-validate"), "--strict", "--no-warn", str(tmp_path / "core.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([require_binary("promtool"), "check", "rules", str(tree / "monitoring" / "rules.yml")],
                          capture_output=True, text=True, timeout=60)
    # the drift alert and the performance alert; no recording rules in local mode
    assert proc.returncode == 0 and "SUCCESS: 2 rules found" in proc.stdout, proc.stdout + proc.stderr
