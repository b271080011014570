"""What scripts and CI logs read: ``ctloop run --json``'s gate object and paths, one-line headline facts
when stdout is piped, and the early ``unchanged`` end of a run that has nothing new to learn from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_project, run_cli, tree_bytes

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_json(cfg: Path, *extra: str) -> dict:
    r = run_cli("run", "--config", str(cfg), "--json", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_promoted_then_unchanged_then_forced(tmp_path: Path) -> None:
    cfg = make_project(tmp_path / "p", days=5, rows_per_day=250)
    out = _run_json(cfg)
    assert out["format"] == "ctloop-run-result/v1"
    assert out["status"] == "succeeded" and out["promoted"] is True and out["champion"] == 1
    gate = out["gate"]
    assert gate["passed"] is True and gate["champion_compared"] is None
    assert gate["checks"] and all({"name", "value", "threshold", "passed", "reason"} <= set(c) for c in gate["checks"])
    record = json.loads(Path(out["paths"]["decision_record"]).read_text())
    assert [c["name"] for c in record["checks"]] == [c["name"] for c in gate["checks"]]
    assert (Path(out["paths"]["model_folder"]) / "model.json").is_file()
    assert Path(out["paths"]["reports"]["validate"]["json"]).is_file()

    shown = json.loads(run_cli("registry", "show", "1", "--config", str(cfg), "--json").stdout)
    assert shown["gate"] == gate

    before = tree_bytes(tmp_path / "p" / "registry")
    again = _run_json(cfg)
    assert again["status"] == "unchanged" and again["promoted"] is False and again["version"] is None
    assert again["gate"] is None and "unchanged" in again["reason"] and again["champion"] == 1
    assert tree_bytes(tmp_path / "p" / "registry") == before  # nothing registered

    forced = _run_json(cfg, "--force")
    assert forced["status"] in ("succeeded", "rejected") and forced["gate"] is not None
    assert forced["gate"]["champion_compared"] == 1


def test_rejected_run_names_failed_check_and_piped_lines_are_whole(tmp_path: Path) -> None:
    cfg = make_project(tmp_path / "p", days=5, rows_per_day=250,
                       edit=lambda t: t.replace("roc_auc: 0.70", "roc_auc: 0.999"))
    r = run_cli("run", "--config", str(cfg))  # stdout is a pipe: no wrapping at 80 columns
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    gate_lines = [ln for ln in lines if ln.startswith("gate: ")]
    assert len(gate_lines) == 1 and gate_lines[0].startswith("gate: rejected (failed: min_roc_auc;")
    assert "no champion to compare" in gate_lines[0]
    out = _run_json(cfg)
    failed = [c for c in out["gate"]["checks"] if not c["passed"]]
    assert out["status"] == "rejected" and failed[0]["name"] == "min_roc_auc"
    assert failed[0]["threshold"] == pytest.approx(0.999)
    for c in out["gate"]["checks"]:  # each check's reason is on one line, whole
        mark = "pass" if c["passed"] else "FAIL"
        assert f"  gate {mark} {c['name']}: {c['reason']}" in lines
