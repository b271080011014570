"""The rendered InferenceService: valid kserve V1beta1 objects, from config, on the on-demand pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from ctloop.render import render_all, render_files
from ctloop.serving.isvc import strict_deserialize
from tests.conftest import make_project
from tests.helpers_serving import add_version, write_config

pytestmark = pytest.mark.unit


def _roundtrip(doc: dict[str, Any], kind: str) -> Any:
    from kserve import ApiClient

    obj = strict_deserialize(doc, kind)  # raises on any field the kserve/kubernetes schema lacks
    assert ApiClient().sanitize_for_serialization(obj) == doc
    return obj


def test_strict_deserialize_rejects_unknown_fields() -> None:
    doc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
           "spec": {"predictor": {"minReplicas": 0, "minReplica": 1}}}
    with pytest.raises(ValueError, match=r"spec\.predictor\.minReplica: unknown field"):
        strict_deserialize(doc, "V1beta1InferenceService")


def test_inferenceservice_from_config_with_champion(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    write_config(project, {"max_replicas": 5, "canary_traffic_percent": 20, "scale_metric": "rps",
                           "scale_target": 40, "storage_uri_prefix": "s3://models/registry",
                           "watcher_url": "http://watcher.ml.svc/events", "namespace": "ml",
                           "resources": {"cpu_request": "250m", "memory_limit": "2Gi"}})
    cfg = load_config(project)
    add_version(cfg, tmp_path, seed=0)
    v = add_version(cfg, tmp_path, seed=1)
    files = render_files(cfg)
    assert {"base/inferenceservice.yaml", "base/servingruntime.yaml"} <= set(files)
    doc = yaml.safe_load(files["base/inferenceservice.yaml"])
    isvc = _roundtrip(doc, "V1beta1InferenceService")
    assert isvc.kind == "InferenceService" and isvc.metadata.name == cfg.name
    assert isvc.metadata.namespace == "ml"
    assert isvc.metadata.annotations["serving.kserve.io/deploymentMode"] == "Knative"
    p = isvc.spec.predictor
    assert (p.min_replicas, p.max_replicas, p.scale_metric, p.scale_target, p.canary_traffic_percent) == (
        0, 5, "rps", 40, 20)
    assert (p.logger.mode, p.logger.url) == ("all", "http://watcher.ml.svc/events")
    assert p.model.storage_uri == f"s3://models/registry/{cfg.name}/versions/{v}/model"
    assert p.model.resources.requests == {"cpu": "250m", "memory": "512Mi"}
    assert p.model.resources.limits == {"cpu": "1", "memory": "2Gi"}
    # on-demand CPU pool: selected by label, and no toleration of the spot taint
    assert p.node_selector == {"ctloop.io/pool": "cpu"}
    assert not p.tolerations
    assert doc["spec"]["predictor"]["minReplicas"] == 0  # present, not dropped as falsy

    rt = _roundtrip(yaml.safe_load(files["base/servingruntime.yaml"]), "V1alpha1ServingRuntime")
    assert rt.metadata.name == p.model.runtime
    assert rt.spec.supported_model_formats[0].name == p.model.model_format.name
    c = rt.spec.containers[0]
    assert c.image == cfg.kfp.images.runtime and ":latest" not in c.image
    assert c.args[:1] == ["serve"] and "/mnt/models" in c.args

    written = render_all(cfg, tmp_path / "out")
    assert (tmp_path / "out/base/inferenceservice.yaml") in written


def test_inferenceservice_without_champion_has_no_storage_uri(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "proj", days=2, rows_per_day=50))
    doc = yaml.safe_load(render_files(cfg)["base/inferenceservice.yaml"])
    isvc = _roundtrip(doc, "V1beta1InferenceService")
    assert isvc.spec.predictor.model.storage_uri is None
    assert "storageUri" not in doc["spec"]["predictor"]["model"]


def test_manifests_render_cli_writes_the_inferenceservice(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    # --config must reach ctloop, not kserve's import-time parser (which knows --configure_logging)
    r = run_cli("manifests", "render", "--config", str(project), "--out", str(tmp_path / "m"), timeout=120)
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load((tmp_path / "m/base/inferenceservice.yaml").read_text())
    assert strict_deserialize(doc, "V1beta1InferenceService").metadata.name == "churn"
