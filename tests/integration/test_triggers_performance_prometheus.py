"""The rendered performance alert, unit-tested by promtool (both conditions and the min_labelled guard),
and fired by a real Prometheus + Alertmanager into the trigger endpoint as source ``performance``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Gauge

from ctloop.config import load_config
from ctloop.render import render_all
from ctloop.triggers.api import build_trigger_app
from tests.conftest import free_port, require_binary
from tests.helpers_performance import performance_project
from tests.helpers_triggers import RecordingSubmitter, build_service, serve_in_thread, wait_for
from tests.integration.test_triggers_prometheus import PromStack

pytestmark = pytest.mark.integration
PERF = 'ctloop_model_performance{{model="churn",version="{v}",metric="accuracy",source="{s}"}}'
LABELLED = 'ctloop_labelled_predictions{{model="churn",version="{v}"}}'
REF = 'ctloop_model_reference_performance{{model="churn",version="{v}",metric="accuracy"}}'
LABELS = {"model": "churn", "version": "3", "severity": "warning", "ctloop": "retrain", "trigger": "performance",
          "metric": "accuracy", "namespace": "ctloop"}


def _render(tmp_path: Path, performance: dict[str, Any] | None = None, **triggers: Any) -> tuple[Path, Path]:
    cfg_path = performance_project(tmp_path / "p", performance, **triggers)
    out = tmp_path / "out"
    render_all(load_config(cfg_path), out)
    return cfg_path, out


def _case(series: dict[str, str], expect_at_5s: list[dict[str, Any]], alertname: str) -> dict[str, Any]:
    return {
        "interval": "1s",
        "input_series": [{"series": k, "values": v} for k, v in series.items()],
        "alert_rule_test": [
            {"eval_time": "1s", "alertname": alertname, "exp_alerts": []},  # pending (for: 2s)
            {"eval_time": "5s", "alertname": alertname, "exp_alerts": expect_at_5s},
        ],
    }


def _fired(value: str, why: str) -> list[dict[str, Any]]:
    return [{
        "exp_labels": LABELS,
        "exp_annotations": {
            "summary": f"realized accuracy of churn v3 is {value} (< 0.7 or more than 0.05 below the gate value)",
            "description": "The realized accuracy (ctloop_model_performance, source=realized) of the serving "
            "version stayed < 0.7 or more than 0.05 below the gate value for 2s with at least 100 labelled "
            "rows; ctloop retrains churn.",
        },
    }] if why else []


def test_promtool_unit_tests_of_the_performance_rule(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    _cfg, out = _render(tmp_path, {"estimated_min": 0.6})
    rules = out / "monitoring" / "rules.yml"
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    def series(acc: float, labelled: int, ref: float | None = 0.8, est: float = 0.8) -> dict[str, str]:
        out = {PERF.format(v=3, s="realized"): f"{acc}x8", LABELLED.format(v=3): f"{labelled}x8",
               PERF.format(v=3, s="estimated"): f"{est}x8",
               PERF.format(v=2, s="realized"): "0.1x8", LABELLED.format(v=2): "50x8"}  # an old version
        if ref is not None:
            out[REF.format(v=3)] = f"{ref}x8"
        return out

    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1s",
        "tests": [
            _case(series(0.74, 500), _fired("0.740", "drop"), "CtloopPerformanceDrop"),  # 0.06 below gate
            _case(series(0.65, 500, ref=None), _fired("0.650", "min"), "CtloopPerformanceDrop"),  # < min
            _case(series(0.5, 99), [], "CtloopPerformanceDrop"),  # min_labelled guard
            _case(series(0.78, 500), [], "CtloopPerformanceDrop"),  # within max_drop, above min
            _case(series(0.9, 500, est=0.55), [{
                "exp_labels": LABELS,
                "exp_annotations": {
                    "summary": "estimated accuracy of churn v3 is 0.550 (< 0.6)",
                    "description": "The label-free estimate of accuracy stayed below 0.6 for 2s; ctloop "
                    "retrains churn.",
                },
            }], "CtloopEstimatedPerformanceLow"),
        ],
    }
    tfile = tmp_path / "perf_rules_test.yml"
    tfile.write_text(yaml.safe_dump(tests))
    res = subprocess.run([promtool, "test", "rules", str(tfile)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    tests["tests"][2]["alert_rule_test"][1]["exp_alerts"] = _fired("0.500", "guard")  # the guard holds
    tfile.write_text(yaml.safe_dump(tests))
    assert subprocess.run([promtool, "test", "rules", str(tfile)], capture_output=True).returncode != 0


def test_amtool_routes_the_performance_alert_to_the_watcher(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    _cfg, out = _render(tmp_path)
    routes = subprocess.run(
        [amtool, "config", "routes", "test", "--config.file", str(out / "monitoring" / "alertmanager.yml"),
         "ctloop=retrain", "model=churn", "alertname=CtloopPerformanceDrop", "trigger=performance"],
        capture_output=True, text=True)
    assert routes.stdout.strip() == "ctloop-watcher", routes.stdout + routes.stderr


def test_real_prometheus_and_alertmanager_fire_a_performance_run(tmp_path: Path) -> None:
    port = free_port()
    cfg_path, out = _render(tmp_path, None, port=port, evaluation_interval="1s", group_wait="0s",
                            group_interval="1s", prometheus=True)
    cfg = load_config(cfg_path)
    subs = tmp_path / "subs.sqlite"
    svc = build_service(cfg, subs)
    assert svc.performance_evaluator is None  # Prometheus evaluates the rules
    stack = PromStack(tmp_path, out)
    perf = Gauge("ctloop_model_performance", "model quality", ["model", "version", "metric", "source"],
                 registry=stack.registry)
    labelled = Gauge("ctloop_labelled_predictions", "labelled predictions", ["model", "version"],
                     registry=stack.registry)
    ref = Gauge("ctloop_model_reference_performance", "gate value", ["model", "version", "metric"],
                registry=stack.registry)
    perf.labels("churn", "3", "accuracy", "realized").set(0.79)
    labelled.labels("churn", "3").set(500)
    ref.labels("churn", "3", "accuracy").set(0.8)
    with serve_in_thread(build_trigger_app(svc), port), stack:
        perf.labels("churn", "3", "accuracy", "realized").set(0.72)  # 0.08 below the gate value
        (sub,) = wait_for(lambda: RecordingSubmitter(subs).submissions(), 90, "a run from the performance alert")
        perf.labels("churn", "3", "accuracy", "realized").set(0.79)
        wait_for(lambda: [r for r in svc.ledger.rows() if r.reason_code == "resolved"], 90, "the resolved alert")
        fired = svc.ledger.rows(decision="fired")
    assert len(fired) == 1 and fired[0].run_id == sub["run_id"]
    assert fired[0].source == "performance" and "CtloopPerformanceDrop" in fired[0].reason
    assert "0.720" in fired[0].reason  # the summary annotation carries the value
    assert sub["trigger"]["cause"] == "performance"
    assert stack.gauge.labels("churn")._value.get() == 0.0  # drift stayed quiet
    assert len(RecordingSubmitter(subs).submissions()) == 1
