"""Fleet-mode recording rules under ``promtool test rules`` with hand-computed series (two replicas).

Feature ``x`` has reference shares (0.5, 0.3, 0.2). Replica a counts (10, 5, 5), replica b (10, 10, 0):
the fleet window holds (20, 15, 5) of 40 rows, shares (0.5, 0.375, 0.125), so
PSI = 0.075 ln 1.25 + 0.075 ln 1.6 = 0.075 ln 2. Feature ``y`` matches its reference (PSI 0).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ctloop.config import ProjectConfig, parse_config
from ctloop.drift.stats import js_distance, psi
from ctloop.triggers.rules import rule_groups
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

PSI_X = 0.075 * math.log(2.0)


def _cfg(**drift: Any) -> ProjectConfig:
    d = {"aggregation": "prometheus", "replicas": 2, "fleet_window": "1m", "min_rows": 30,
         "drift_share_alert": 0.3, "alert_for": "2s", **drift}
    return parse_config({"name": "churn", "data": {"source": "data"}, "drift": d,
                         "triggers": {"evaluation_interval": "1s"}})


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    lab = ",".join(f'{k}="{v}"' for k, v in {"model": "churn", **labels}.items())
    return {"series": f"{metric}{{{lab}}}", "values": values}


def _replica(inst: str, version: str, bins: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for feature, per_bin in bins.items():
        for b, values in per_bin.items():
            out.append(_series("ctloop_drift_bin_rows_total", values, version=version, feature=feature,
                               bin=b, instance=inst))
    return out


def _reference(inst: str, version: str) -> list[dict[str, str]]:
    shares = {"x": (0.5, 0.3, 0.2), "y": (0.5, 0.5)}
    out = [_series("ctloop_drift_reference_share", f"{s}+0x60", version=version, feature=f, bin=str(b),
                   instance=inst)
           for f, ss in shares.items() for b, s in enumerate(ss)]
    out.append(_series("ctloop_drift_reference_rows", "1000+0x60", version=version, instance=inst))
    # x: fixed threshold 0.05; y: calibrated coefficient 1, floor 0.01 -> 1 * (1/40 + 1/1000)
    for f, (coef, floor) in {"x": (0, 0.05), "y": (1, 0.01)}.items():
        out.append(_series("ctloop_drift_threshold_coefficient", f"{coef}+0x60", version=version, feature=f,
                           method="psi", instance=inst))
        out.append(_series("ctloop_drift_threshold_floor", f"{floor}+0x60", version=version, feature=f,
                           method="psi", instance=inst))
    return out


def _two_replicas() -> list[dict[str, str]]:
    a = _replica("a", "1", {"x": {"0": "0 4 10+0x60", "1": "0 2 5+0x60", "2": "0 0 5+0x60"},
                            "y": {"0": "0 3 10+0x60", "1": "0 3 10+0x60"}})
    b = _replica("b", "1", {"x": {"0": "0 10+0x60", "1": "0 10+0x60", "2": "0 0+0x60"},
                            "y": {"0": "0 10+0x60", "1": "0 10+0x60"}})
    return a + b + _reference("a", "1") + _reference("b", "1")


def _expr(expr: str, at: str, value: float, **labels: str) -> dict[str, Any]:
    """``expr`` equals ``value`` within 1e-12 relative at ``at`` (1 when it does, 0 when not)."""
    lab = ",".join(f'{k}="{v}"' for k, v in {"model": "churn", "version": "1", **labels}.items())
    tol = max(abs(value), 1e-300) * 1e-12
    return {"expr": f"abs({expr} - {value!r}) <= bool {tol!r}", "eval_time": at,
            "exp_samples": [{"labels": f"{{{lab}}}", "value": 1}]}


def _run(tmp_path: Path, cfg: ProjectConfig, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rule_groups(cfg), sort_keys=False, width=200))
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tfile = tmp_path / "test.yml"
    tfile.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1s",
                                     "tests": tests}))
    return subprocess.run([promtool, "test", "rules", str(tfile)], capture_output=True, text=True)


def _unit_test(psi_x: float = PSI_X) -> dict[str, Any]:
    js_x = float(js_distance(np.array([0.5, 0.3, 0.2]), np.array([20.0, 15.0, 5.0])))
    return {
        "interval": "1s",
        "input_series": _two_replicas(),
        "promql_expr_test": [
            _expr('ctloop:drift_bin_rows:window{feature="x",bin="1"}', "10s", 15, feature="x", bin="1"),
            _expr('ctloop:drift_feature_rows:window{feature="x"}', "10s", 40, feature="x"),
            _expr("ctloop:drift_min_rows:window", "10s", 40),
            _expr("ctloop:drift_min_rows:window", "1s", 26),  # a: 6 + 6, b: 20 -> min over features
            _expr('ctloop:drift_psi:window{feature="x"}', "10s", psi_x, feature="x"),
            _expr('ctloop:drift_psi:window{feature="y"}', "10s", 0, feature="y"),
            _expr('ctloop:drift_js:window{feature="x"}', "10s", js_x, feature="x"),
            _expr('ctloop:drift_threshold:window{feature="x"}', "10s", 0.05, feature="x"),
            _expr('ctloop:drift_threshold:window{feature="y"}', "10s", 1 / 40 + 1 / 1000, feature="y"),
            _expr('ctloop:drift_feature_drifted:window{feature="x"}', "10s", 1, feature="x"),
            _expr('ctloop:drift_feature_drifted:window{feature="x"}', "1s", 0, feature="x"),  # < min_rows
            _expr("ctloop:drift_share:window", "10s", 0.5),
            _expr("ctloop:drift_share:window", "1s", 0),
        ],
        "alert_rule_test": [
            {"eval_time": "1s", "alertname": "CtloopDriftShareHigh", "exp_alerts": []},
            {"eval_time": "3s", "alertname": "CtloopDriftShareHigh", "exp_alerts": []},  # pending (for 2s)
            {"eval_time": "10s", "alertname": "CtloopDriftShareHigh", "exp_alerts": [
                {"exp_labels": {"model": "churn", "severity": "warning", "ctloop": "retrain", "namespace": "ctloop"},
                 "exp_annotations": {
                     "summary": "drift share of churn is 50% (threshold 0.3)",
                     "description": "The share of drifted features (ctloop:drift_share:window) stayed at "
                                    "or above 0.3 for 2s; ctloop retrains churn.",
                     "drifted_features": "x "}}]},
        ],
    }


def test_hand_computed_values_match_the_python_statistics() -> None:
    ref, win = np.array([0.5, 0.3, 0.2]), np.array([20.0, 15.0, 5.0])
    assert math.isclose(float(psi(ref, win)), PSI_X, rel_tol=1e-12)


def test_promtool_fleet_rules_compute_psi_js_thresholds_share_and_alert(tmp_path: Path) -> None:
    res = _run(tmp_path, _cfg(), [_unit_test()])
    assert res.returncode == 0, res.stdout + res.stderr
    # and the test can fail: a PSI off by 1% is reported
    bad = _run(tmp_path, _cfg(), [_unit_test(PSI_X * 1.01)])
    assert bad.returncode != 0 and "drift_psi" in bad.stdout + bad.stderr


def test_promtool_versions_never_mix_and_window_is_time(tmp_path: Path) -> None:
    # version 2 counts on replica a (a new champion) stay in their own series; counts older than the
    # one-minute window leave it (x: 10 rows per bin at first, 2 more per bin at 72s)
    late = "0 10+0x70 12+0x10"
    v1 = _replica("a", "1", {"x": {"0": late, "1": late, "2": late}, "y": {"0": late, "1": late}})
    v2 = _replica("a", "2", {"x": {"0": "0 0+0x80", "1": "0 0+0x80", "2": "0 100+0x80"}})
    series = v1 + v2 + _reference("a", "1") + _reference("a", "2")
    test = {
        "interval": "1s",
        "input_series": series,
        "promql_expr_test": [
            _expr('ctloop:drift_feature_rows:window{feature="x",version="1"}', "10s", 30, feature="x"),
            _expr('ctloop:drift_feature_rows:window{feature="x",version="2"}', "10s", 100, feature="x",
                  version="2"),
            # at 80s the window (20s..80s] holds only the 2 rows per bin counted at 72s
            _expr('ctloop:drift_feature_rows:window{feature="x",version="1"}', "80s", 6, feature="x"),
        ],
    }
    res = _run(tmp_path, _cfg(), [test])
    assert res.returncode == 0, res.stdout + res.stderr


def test_local_mode_renders_no_recording_rules() -> None:
    cfg = parse_config({"name": "churn", "data": {"source": "data"}})
    doc = rule_groups(cfg)
    assert not [r for g in doc["groups"] for r in g["rules"] if "record" in r]
    assert [g["name"] for g in doc["groups"]] == ["ctloop-churn", "ctloop-churn-performance"]
    expr = doc["groups"][0]["rules"][0]["expr"]
    assert expr == 'max by (namespace, model) (ctloop_drift_share{model="churn"}) >= 0.25'


def test_more_replicas_need_fleet_mode() -> None:
    with pytest.raises(ValueError, match="aggregation: prometheus"):
        parse_config({"name": "churn", "data": {"source": "data"}, "drift": {"replicas": 3}})
    with pytest.raises(ValueError, match="fleet_window"):
        parse_config({"name": "churn", "data": {"source": "data"}, "drift": {"fleet_window": "ten minutes"}})
