"""The kind e2e's hand-written objects agree with its config (``examples/churn/ctloop.kind.yaml``): the
seed Jobs write where ``data.source`` and ``schema.path`` read, with the image and the object-store env
the renderer gives ctloop's own pods; the Secret template is the one ``storage.secret`` names; the alert
is one the rendered PrometheusRule raises and the watcher turns into a drift trigger."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ctloop.config import ProjectConfig, load_config
from ctloop.manifests.storage import storage_env
from ctloop.render import render_files
from ctloop.triggers.payloads import parse_webhook, webhook_triggers
from tests.helpers_cluster import EXAMPLE, KIND_CONFIG, KIND_SETUP, load_all

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def cfg() -> ProjectConfig:
    return load_config(KIND_CONFIG)


def _job(name: str) -> dict[str, Any]:
    (doc,) = load_all((KIND_SETUP / f"{name}.yaml").read_text())
    return doc


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.parametrize("name", ["seed-data-job", "seed-drift-job"])
def test_seed_jobs_match_the_kind_config(cfg: ProjectConfig, name: str) -> None:
    job = _job(name)
    c = _container(job)
    assert job["metadata"]["namespace"] == cfg.deploy.namespace
    assert c["image"] == cfg.kfp.images.runtime
    assert c["args"][0] == "datagen" and _opt(c["args"], "--out") == cfg.data.source
    # the same object-store env as the watcher and the pipeline steps (one source: storage in the config)
    assert c["env"] == [{"name": "HOME", "value": "/tmp"}, *storage_env(cfg)]
    assert job["spec"]["template"]["spec"]["nodeSelector"] == cfg.deploy.node_selector


def test_seed_jobs_tell_one_story(cfg: ProjectConfig) -> None:
    """The drift Job lands the days right after the seeded ones, drifted from its first day; the seed
    holds at least a training window, and the drifted days fill the next run's whole window."""
    seed, drift = _container(_job("seed-data-job"))["args"], _container(_job("seed-drift-job"))["args"]
    assert _opt(seed, "--schema-out") == cfg.schema_.path
    seed_start, seed_days = dt.date.fromisoformat(_opt(seed, "--start") or ""), int(_opt(seed, "--days") or 0)
    drift_start = dt.date.fromisoformat(_opt(drift, "--start") or "")
    assert drift_start == seed_start + dt.timedelta(days=seed_days)
    assert _opt(drift, "--drift-from") == drift_start.isoformat() and _opt(seed, "--drift-from") is None
    assert seed_days >= cfg.data.window_days and int(_opt(drift, "--days") or 0) >= cfg.data.window_days
    for same in ("--seed", "--rows-per-day"):
        assert _opt(seed, same) == _opt(drift, same), same


def test_storage_secret_template_is_the_configured_one_without_data(cfg: ProjectConfig) -> None:
    (secret,) = load_all((KIND_SETUP / "storage-secret.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == cfg.storage.secret
    assert "data" not in secret and "stringData" not in secret  # the workflow copies KFP's keys in
    assert "namespace" not in secret["metadata"]  # applied in deploy.namespace and kfp.namespace
    endpoint = urlsplit(cfg.storage.env["AWS_ENDPOINT_URL"])
    ann = secret["metadata"]["annotations"]
    assert ann["serving.kserve.io/s3-endpoint"] == endpoint.netloc  # KServe's storage initializer
    assert ann["serving.kserve.io/s3-usehttps"] == ("1" if endpoint.scheme == "https" else "0")
    assert ann["serving.kserve.io/s3-region"] == cfg.storage.env["AWS_DEFAULT_REGION"]
    # KServe reads its default key names; the config maps the same keys to the same env vars
    assert cfg.storage.secret_keys == {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}


def _rule_alerts(cfg: ProjectConfig) -> dict[str, dict[str, str]]:
    files = render_files(cfg)
    rules = [d for d in yaml.safe_load_all(files["base/prometheusrule.yaml"]) if d]
    return {r["alert"]: r["labels"] for doc in rules for g in doc["spec"]["groups"] for r in g["rules"]}


def test_drift_alert_is_one_the_rules_raise_and_fires_a_drift_trigger(cfg: ProjectConfig) -> None:
    body = (KIND_SETUP / "drift-alert.json").read_bytes()
    raw = json.loads(body)
    rules = _rule_alerts(cfg)
    for alert in raw["alerts"]:
        name = alert["labels"]["alertname"]
        assert name in rules, f"{name} is not an alert of the rendered PrometheusRule: {sorted(rules)}"
        assert rules[name].items() <= alert["labels"].items(), "the alert lacks labels its rule sets"
        assert alert["labels"]["model"] == cfg.name and alert["labels"]["namespace"] == cfg.deploy.namespace
        assert "trigger" not in alert["labels"]  # a drift alert, not a performance one
    (trigger,) = webhook_triggers(parse_webhook(body), cfg.name)
    assert (trigger.source, trigger.model, trigger.resolved) == ("alert", cfg.name, False)
    assert "CtloopDriftShareHigh firing" in trigger.reason


def test_kind_config_differs_from_the_reference_only_where_kind_needs_it(cfg: ProjectConfig) -> None:
    ref = json.loads(load_config(EXAMPLE / "ctloop.yaml").to_json())
    kind = json.loads(cfg.to_json())
    changed = {k for k in ref if ref[k] != kind[k]}
    assert changed == {"data", "schema", "training", "registry", "monitoring", "kfp", "deploy", "storage"}
    # the model, its gate, drift detection and the trigger policy are the reference project's
    assert all(ref[k] == kind[k] for k in ("model", "gate", "drift", "triggers", "serving", "validation"))
    assert kind["training"]["accelerator_limit"] == 0  # kind has no GPU
    assert kind["kfp"]["images"]["trainer_gpu"] == kind["kfp"]["images"]["runtime"]
    uris = [kind["data"]["source"], kind["schema"]["path"], kind["registry"]["uri"],
            kind["monitoring"]["labels"]["push_file"]]
    assert all(u.startswith("s3://mlpipeline/ctloop/") for u in uris), uris
    assert kind["kfp"]["pipeline_root"].startswith("minio://mlpipeline/")
