"""``ctloop registry ...`` on a project with hand-registered versions (one of them failed its gate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctloop.cli import app
from ctloop.config import load_config
from ctloop.project import init_project
from ctloop.registry import Registry
from tests.conftest import run_cli
from tests.helpers_registry import meta, tiny_model

pytestmark = pytest.mark.unit


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Registry]:
    init_project(tmp_path / "p")
    cfg_path = tmp_path / "p" / "ctloop.yaml"
    cfg = load_config(cfg_path)
    reg = Registry(cfg.registry.uri, cfg.name)
    model = tiny_model(tmp_path / "m", 1, 1)
    reg.register(model, meta(trigger={"cause": "schedule", "cron": "0 3 * * *"}, run_id="r1"))
    reg.register(model, meta(passed=False, parent=1, trigger={"cause": "volume", "rows": 5000}, run_id="r2"))
    reg.promote(1, "bootstrap")
    return cfg_path, reg


def invoke(cfg: Path, *args: str) -> object:
    res = CliRunner().invoke(app, ["registry", *args, "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_promoting_a_failed_version_needs_force_and_reason(project: tuple[Path, Registry]) -> None:
    cfg, reg = project
    refused = run_cli("registry", "promote", "2", "--config", str(cfg))
    assert refused.returncode == 1 and "failed its evaluation gate" in refused.stderr
    assert "--force" in refused.stderr and reg.alias("champion") == 1
    no_reason = run_cli("registry", "promote", "2", "--force", "--config", str(cfg))
    assert no_reason.returncode == 1 and "needs a reason" in no_reason.stderr
    out = invoke(cfg, "promote", "2", "--force", "--reason", "incident 42: old model leaks PII")
    assert out == {"champion": 2, "previous": 1, "replaced": 1, "forced": True,
                   "reason": "incident 42: old model leaks PII"}
    doc = reg.alias_doc("champion")
    assert doc["forced"] is True and doc["gate_passed"] is False
    lin = invoke(cfg, "lineage", "2")
    assert lin["events"][-1]["forced"] is True and lin["trigger"] == {"cause": "volume", "rows": 5000}
    assert lin["decision"]["passed"] is False


def test_list_show_diff_and_human_output(project: tuple[Path, Registry]) -> None:
    cfg, _ = project
    rows = invoke(cfg, "list")
    assert [(r["version"], r["aliases"], r["gate_passed"]) for r in rows] == [(1, ["champion"], True),
                                                                             (2, [], False)]
    assert invoke(cfg, "show", "champion")["run_id"] == "r1"
    diff = invoke(cfg, "diff", "1", "2")
    assert diff["fields"]["trigger"] == {"a": "schedule", "b": "volume", "same": False}
    text = CliRunner().invoke(app, ["registry", "lineage", "2", "--config", str(cfg)])
    assert text.exit_code == 0 and "volume (rows=5000)" in text.stdout and "v1" in text.stdout
    bad = run_cli("registry", "lineage", "champion-x", "--config", str(cfg))
    assert bad.returncode == 1 and "no 'champion-x' alias" in bad.stderr
