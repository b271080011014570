"""The rendered rules and Alertmanager config, checked by promtool and amtool, and a real Prometheus +
Alertmanager on 127.0.0.1 firing into the trigger endpoint (Debian packages prometheus,
prometheus-alertmanager)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from ctloop.config import load_config
from ctloop.render import render_all
from ctloop.triggers.api import build_trigger_app
from tests.conftest import free_port, require_binary
from tests.helpers_triggers import (
    RecordingSubmitter,
    build_service,
    http_ok,
    managed,
    serve_in_thread,
    trigger_project,
    wait_for,
)

pytestmark = pytest.mark.integration


def _render(tmp_path: Path, **triggers: object) -> tuple[Path, Path]:
    cfg_path = trigger_project(tmp_path / "p", **triggers)
    out = tmp_path / "out"
    render_all(load_config(cfg_path), out)
    return cfg_path, out


def test_promtool_unit_tests_of_generated_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    _cfg, out = _render(tmp_path, evaluation_interval="15s")
    rules = out / "monitoring" / "rules.yml"
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # threshold 0.3 and for 2s come from drift.drift_share_alert / drift.alert_for in the config
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": [
                    {
                        "series": 'ctloop_drift_share{model="churn"}',
                        "values": "0.1 0.1 0.5 0.5 0.5 0.5 0.5 0.1 0.1",
                    },
                    {
                        "series": 'ctloop_drift_detected{model="churn",feature="age"}',
                        "values": "0 0 1 1 1 1 1 0 0",
                    },
                    {
                        "series": 'ctloop_drift_detected{model="churn",feature="tenure"}',
                        "values": "0 0 0 0 0 0 0 0 0",
                    },
                    {
                        "series": 'ctloop_drift_share{model="other"}',
                        "values": "0.9 0.9 0.9 0.9 0.9 0.9 0.9 0.9 0.9",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "3s",
                        "alertname": "CtloopDriftShareHigh",
                        "exp_alerts": [],
                    },  # pending (for: 2s)
                    {
                        "eval_time": "5s",
                        "alertname": "CtloopDriftShareHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"model": "churn", "severity": "warning", "ctloop": "retrain",
                                               "namespace": "ctloop"},
                                "exp_annotations": {
                                    "summary": "drift share of churn is 50% (threshold 0.3)",
                                    "description": "The share of drifted features (ctloop_drift_share) "
                                    "stayed at or above 0.3 for 2s; ctloop retrains churn.",
                                    "drifted_features": "age ",
                                },
                            }
                        ],
                    },
                    {"eval_time": "8s", "alertname": "CtloopDriftShareHigh", "exp_alerts": []},  # resolved
                ],
            }
        ],
    }
    tfile = tmp_path / "rules_test.yml"
    tfile.write_text(yaml.safe_dump(tests))
    res = subprocess.run([promtool, "test", "rules", str(tfile)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # and the test can fail: a wrong expectation is reported
    tests["tests"][0]["alert_rule_test"][0]["eval_time"] = "5s"
    tfile.write_text(yaml.safe_dump(tests))
    assert subprocess.run([promtool, "test", "rules", str(tfile)], capture_output=True).returncode != 0


def test_amtool_checks_generated_alertmanager_config(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    _cfg, out = _render(tmp_path)
    am = out / "monitoring" / "alertmanager.yml"
    res = subprocess.run([amtool, "check-config", str(am)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout
    routes = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            "--config.file",
            str(am),
            "ctloop=retrain",
            "model=churn",
            "alertname=CtloopDriftShareHigh",
        ],
        capture_output=True,
        text=True,
    )
    assert routes.stdout.strip() == "ctloop-watcher", routes.stdout + routes.stderr
    crd = yaml.safe_load((out / "base" / "alertmanagerconfig.yaml").read_text())
    hook = crd["spec"]["receivers"][0]["webhookConfigs"][0]
    assert hook["httpConfig"]["authorization"]["credentials"] == {
        "name": "ctloop-trigger-token",
        "key": "token",
    }
    rule = yaml.safe_load((out / "base" / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load((out / "monitoring" / "rules.yml").read_text())


class PromStack:
    """A drift exporter, Alertmanager and Prometheus on 127.0.0.1 free ports, configured from the render."""

    def __init__(self, tmp_path: Path, out: Path) -> None:
        self.tmp, self.out = tmp_path, out
        self.registry = CollectorRegistry()
        self.gauge = Gauge(
            "ctloop_drift_share", "share of drifted features", ["model"], registry=self.registry
        )
        self.gauge.labels("churn").set(0.0)
        self.detected = Gauge(
            "ctloop_drift_detected",
            "feature drifted (1) or not (0)",
            ["model", "feature"],
            registry=self.registry,
        )
        self.detected.labels("churn", "age").set(0)
        self.detected.labels("churn", "income").set(0)

    def __enter__(self) -> PromStack:
        import contextlib

        self.stack = contextlib.ExitStack()
        exp_port, am_port, prom_port = free_port(), free_port(), free_port()
        server, _thread = start_http_server(exp_port, addr="127.0.0.1", registry=self.registry)
        self.stack.callback(server.shutdown)
        am_bin, prom_bin = require_binary("prometheus-alertmanager"), require_binary("prometheus")
        (self.tmp / "am-data").mkdir()
        self.stack.enter_context(
            managed(
                [
                    am_bin,
                    f"--config.file={self.out / 'monitoring' / 'alertmanager.yml'}",
                    f"--storage.path={self.tmp / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                self.tmp / "alertmanager.log",
            )
        )
        prom_cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.out / "monitoring" / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [
                {"job_name": "ctloop-watcher", "static_configs": [{"targets": [f"127.0.0.1:{exp_port}"]}]}
            ],
        }
        pc = self.tmp / "prometheus.yml"
        pc.write_text(yaml.safe_dump(prom_cfg))
        self.stack.enter_context(
            managed(
                [
                    prom_bin,
                    f"--config.file={pc}",
                    f"--storage.tsdb.path={self.tmp / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--rules.alert.resend-delay=1s",
                ],
                self.tmp / "prometheus.log",
            )
        )
        wait_for(lambda: http_ok(f"http://127.0.0.1:{am_port}/-/ready"), 60, "alertmanager ready")
        wait_for(lambda: http_ok(f"http://127.0.0.1:{prom_port}/-/ready"), 60, "prometheus ready")
        self.prom = f"http://127.0.0.1:{prom_port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


def test_real_prometheus_and_alertmanager_fire_into_the_endpoint(tmp_path: Path) -> None:
    port = free_port()
    cfg_path, out = _render(
        tmp_path, port=port, evaluation_interval="1s", group_wait="0s", group_interval="1s", prometheus=True
    )
    cfg = load_config(cfg_path)
    subs = tmp_path / "subs.sqlite"
    svc = build_service(cfg, subs)
    assert svc.evaluator is None  # Prometheus is in use: the embedded evaluator is off
    with serve_in_thread(build_trigger_app(svc), port), PromStack(tmp_path, out) as stack:
        stack.detected.labels("churn", "income").set(1)
        stack.gauge.labels("churn").set(0.5)  # above drift.drift_share_alert=0.3
        (sub,) = wait_for(
            lambda: RecordingSubmitter(subs).submissions(), 90, "a run submitted from the alert"
        )
        stack.gauge.labels("churn").set(0.0)
        wait_for(
            lambda: [r for r in svc.ledger.rows() if r.reason_code == "resolved"], 90, "the resolved alert"
        )
        fired = svc.ledger.rows(decision="fired")
    assert len(fired) == 1 and fired[0].run_id == sub["run_id"]
    assert fired[0].source == "alert" and "CtloopDriftShareHigh" in fired[0].reason
    assert fired[0].detail["drifted_features"] == ["income"] and "drifted: income" in fired[0].reason
    assert sub["trigger"]["cause"] == "drift"
    assert len(RecordingSubmitter(subs).submissions()) == 1
