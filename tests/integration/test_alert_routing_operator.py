"""The drift alert reaches the watcher on a real Prometheus Operator: the rendered PrometheusRule and
AlertmanagerConfig live in the project namespace, and the alert's label set matches the route that the
operator generates from the AlertmanagerConfig with its default ``OnNamespace`` matcher strategy.

``operator_config`` below is a hand-written rendering of what prometheus-operator does with an
AlertmanagerConfig (receiver ``<namespace>/<name>/<receiver>``, a ``namespace="<ns>"`` matcher first,
``continue: true``); ``amtool config routes test`` (Debian's Alertmanager package) then routes the
label set that the rendered rule produces.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from ctloop.triggers.rules import alert_rule, alertmanager_config_crd, prometheus_rule_crd
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn" / "ctloop.yaml"


def operator_config(crd: dict[str, Any]) -> dict[str, Any]:
    """The Alertmanager config the operator generates from one AlertmanagerConfig (OnNamespace)."""
    ns, name = crd["metadata"]["namespace"], crd["metadata"]["name"]
    route = crd["spec"]["route"]
    prefixed = f"{ns}/{name}/{route['receiver']}"
    matchers = [f'namespace="{ns}"'] + [
        f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in route.get("matchers", [])
    ]
    return {
        "route": {
            "receiver": "null",
            "routes": [{"receiver": prefixed, "group_by": route["groupBy"], "matchers": matchers,
                        "continue": True}],
        },
        "receivers": [{"name": "null"}, {"name": prefixed, "webhook_configs": [{"url": "http://127.0.0.1:9/alerts"}]}],
    }


def _route(config_file: Path, labels: dict[str, str]) -> str:
    amtool = require_binary("amtool")
    args = [f"{k}={v}" for k, v in labels.items()]
    out = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config_file}", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_drift_alert_matches_the_operator_generated_route(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    rule_crd, am_crd = prometheus_rule_crd(cfg), alertmanager_config_crd(cfg)
    ns = cfg.deploy.namespace
    assert rule_crd["metadata"]["namespace"] == ns and am_crd["metadata"]["namespace"] == ns
    (rule,) = rule_crd["spec"]["groups"][0]["rules"]
    assert "by (namespace, model)" in rule["expr"]  # the aggregation keeps the namespace label
    f = tmp_path / "alertmanager.yaml"
    f.write_text(yaml.safe_dump(operator_config(am_crd)))
    alert = {"alertname": rule["alert"], **rule["labels"]}  # the label set the rendered rule produces
    assert _route(f, alert) == f"{ns}/{am_crd['metadata']['name']}/ctloop-watcher"
    # without the namespace label (the old `max by (model)`) the alert falls through to "null"
    assert _route(f, {k: v for k, v in alert.items() if k != "namespace"}) == "null"
    assert _route(f, {**alert, "namespace": "other"}) == "null"
    assert alert_rule(cfg).namespace == ns
    # every retraining alert the rule groups render (drift, performance) matches the same route
    alerts = [r for g in rule_crd["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert {r["alert"] for r in alerts} >= {"CtloopDriftShareHigh", "CtloopPerformanceDrop"}
    receiver = f"{ns}/{am_crd['metadata']['name']}/ctloop-watcher"
    for r in alerts:
        assert _route(f, {"alertname": r["alert"], **r["labels"]}) == receiver, r["alert"]
