"""Rendered trigger files: one source of truth (drift config → rules), CronJob only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ctloop.config import load_config
from ctloop.render import render_files
from tests.helpers_triggers import trigger_project

pytestmark = pytest.mark.unit


def test_rules_follow_drift_config_and_cronjob_is_optional(tmp_path: Path) -> None:
    cfg = load_config(trigger_project(tmp_path / "a", schedule="0 3 * * *"))
    files = render_files(cfg)
    assert {
        "base/prometheusrule.yaml",
        "base/alertmanagerconfig.yaml",
        "monitoring/rules.yml",
        "monitoring/alertmanager.yml",
    } <= set(files)
    assert "base/schedule-cronjob.yaml" not in files  # the watcher fires the schedule itself
    (rule,) = yaml.safe_load(files["monitoring/rules.yml"])["groups"][0]["rules"]
    assert rule["expr"] == 'max by (namespace, model) (ctloop_drift_share{model="churn"}) >= 0.3'
    assert rule["for"] == "2s"
    am = yaml.safe_load(files["monitoring/alertmanager.yml"])
    hook = am["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:8090/alerts"
    assert hook["http_config"]["authorization"]["credentials_file"] == cfg.triggers.token_file

    cfg2 = load_config(
        trigger_project(
            tmp_path / "b",
            schedule="0 3 * * *",
            schedule_by="cronjob",
            cluster_endpoint="http://watcher.ml.svc:8080",
        )
    )
    cron = yaml.safe_load(render_files(cfg2)["base/schedule-cronjob.yaml"])
    assert cron["kind"] == "CronJob" and cron["spec"]["schedule"] == "0 3 * * *"
    script = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "http://watcher.ml.svc:8080/trigger" in script and '"source":"schedule"' in script
    vols = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    assert vols[0]["secret"]["secretName"] == "ctloop-trigger-token"
