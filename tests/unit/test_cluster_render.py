"""The cluster renderer's config-derived choices (pure; no tools needed)."""

from __future__ import annotations

from unittest import mock

import pytest
import yaml

from ctloop import render
from ctloop.config import ProjectConfig, parse_config
from ctloop.errors import ConfigError
from ctloop.manifests.overlays import canary_percent

pytestmark = pytest.mark.unit


def config(**sections: object) -> ProjectConfig:
    return parse_config({"name": "churn", "data": {"source": "s3://b/data"}, **sections})


def test_kustomization_lists_files_other_renderers_add() -> None:
    extra = {"base/extra.yaml": "kind: ConfigMap\n", "monitoring/extra.yml": "groups: []\n"}
    original = render._renderers
    with mock.patch.object(render, "_renderers", lambda: [*original(), lambda cfg: extra]):
        files = render.render_files(config())
    resources = yaml.safe_load(files["base/kustomization.yaml"])["resources"]
    assert "extra.yaml" in resources and "extra.yml" not in " ".join(resources)
    # the overlay's model patch exists exactly when an InferenceService is rendered
    assert ("overlays/production/model-deploy.yaml" in files) == ("base/inferenceservice.yaml" in files)


def test_a_renderer_may_not_write_a_kustomization() -> None:
    original = render._renderers
    clash = {"base/kustomization.yaml": "x"}
    with mock.patch.object(render, "_renderers", lambda: [*original(), lambda cfg: clash]), \
            pytest.raises(ValueError, match="kustomization.yaml"):
        render.render_files(config())


def test_schedule_cronjob_only_when_the_cluster_fires_the_schedule() -> None:
    assert not [p for p in render.render_files(config(triggers={"schedule": "*/30 * * * *"})) if "cron" in p]
    files = render.render_files(config(triggers={"schedule": "*/30 * * * *", "schedule_by": "cronjob"}))
    cron = yaml.safe_load(files["base/schedule-cronjob.yaml"])
    assert cron["spec"]["schedule"] == "*/30 * * * *"
    assert "schedule-cronjob.yaml" in yaml.safe_load(files["base/kustomization.yaml"])["resources"]
    script = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "http://ctloop-watcher.ctloop.svc.cluster.local/trigger" in script


def test_canary_percent_falls_back_to_serving() -> None:
    assert canary_percent(config(serving={"canary_traffic_percent": 40})) == 40
    assert canary_percent(config(serving={"canary_traffic_percent": 40}, deploy={"canary_percent": 5})) == 5


def test_state_volume_follows_an_absolute_ledger_path() -> None:
    files = render.render_files(config(triggers={"ledger": "/data/state/ledger.sqlite"}))
    dep = yaml.safe_load(files["base/deployment.yaml"].split("\n", 1)[1])
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == "/data/state"


@pytest.mark.parametrize("deploy, field", [
    ({"namespace": "Not_A_Name"}, "deploy.namespace"),
    ({"canary_percent": 150}, "deploy.canary_percent"),
    ({"gitops": {"push_attempts": 0}}, "deploy.gitops.push_attempts"),
    ({"gitops": {"repo": "x"}}, "deploy.gitops.repo"),
])
def test_bad_deploy_settings_name_the_field(deploy: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config(deploy=deploy)


STORAGE = {"env": {"AWS_ENDPOINT_URL": "http://minio.example:9000"}, "secret": "s3-creds",
           "secret_keys": {"AWS_ACCESS_KEY_ID": "accesskey", "AWS_SECRET_ACCESS_KEY": "secretkey"}}


def _doc(text: str) -> dict[str, object]:
    return yaml.safe_load(text.split("\n", 1)[1] if text.startswith("#") else text)


def _env(files: dict[str, str], path: str) -> list[dict[str, object]]:
    obj = _doc(files[path])
    spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] if obj["kind"] == "CronJob" \
        else obj["spec"]["template"]["spec"]  # type: ignore[index]
    return spec["containers"][0]["env"]  # type: ignore[no-any-return]


def test_storage_reaches_the_watcher_label_feed_and_model_service_account() -> None:
    labels = {"labels": {"push_schedule": "0 4 * * *", "push_file": "s3://b/labels.parquet"}}
    files = render.render_files(config(storage=STORAGE, monitoring=labels))
    expected = [{"name": "HOME", "value": "/tmp"},
                {"name": "AWS_ENDPOINT_URL", "value": "http://minio.example:9000"},
                {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "accesskey"}}},
                {"name": "AWS_SECRET_ACCESS_KEY",
                 "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "secretkey"}}}]
    assert _env(files, "base/deployment.yaml") == expected
    assert _env(files, "base/label-feed.yaml") == expected
    sa = _doc(files["base/model-serviceaccount.yaml"])
    assert sa["secrets"] == [{"name": "s3-creds"}] and sa["metadata"]["name"] == "churn-model"  # type: ignore[index]
    isvc = _doc(files["base/inferenceservice.yaml"])
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "churn-model"  # type: ignore[index]
    assert "model-serviceaccount.yaml" in yaml.safe_load(files["base/kustomization.yaml"])["resources"]


def test_no_storage_renders_no_credentials_and_no_model_service_account() -> None:
    files = render.render_files(config())
    assert _env(files, "base/deployment.yaml") == [{"name": "HOME", "value": "/tmp"}]
    assert "base/model-serviceaccount.yaml" not in files
    assert "serviceAccountName" not in _doc(files["base/inferenceservice.yaml"])["spec"]["predictor"]  # type: ignore[index]
    # env values without a Secret: no secretKeyRef
    plain = render.render_files(config(storage={"env": {"AWS_DEFAULT_REGION": "eu-west-1"}}))
    assert _env(plain, "base/deployment.yaml")[1:] == [{"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"}]


@pytest.mark.parametrize("storage, message", [
    ({"env": {"AWS_SECRET_ACCESS_KEY": "x"}}, "looks like a credential"),
    ({"env": {"MINIO_TOKEN": "x"}}, "looks like a credential"),
    ({"env": {"1BAD": "x"}}, "not an environment variable name"),
    ({"secret": "Bad_Name"}, "Kubernetes object name"),
    ({"secret": "s", "secret_keys": {"AWS_ACCESS_KEY_ID": "no/slash"}}, "not a valid Secret key"),
    ({"secret": "s", "env": {"AWS_REGION": "1"}, "secret_keys": {"AWS_REGION": "k"}},
     "both in storage.env and storage.secret_keys"),
])
def test_bad_storage_settings_name_the_field(storage: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        config(storage=storage)
    assert "storage" in str(err.value)
