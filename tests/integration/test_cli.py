"""The ctloop CLI through its real entry point: exit codes and JSON output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_project, run_cli, tree_bytes

pytestmark = pytest.mark.integration


def test_init_datagen_run_registry(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    r = run_cli("init", str(d))
    assert r.returncode == 0 and (d / "ctloop.yaml").exists() and (d / "schema.yaml").exists()
    assert run_cli("init", str(d)).returncode == 2  # refuses to overwrite
    text = (d / "ctloop.yaml").read_text().replace("window_days: 14", "window_days: 6")
    (d / "ctloop.yaml").write_text(text.replace("max_iter: 150", "max_iter: 40"))
    r = run_cli("datagen", "--out", str(d / "data"), "--days", "6", "--start", "2026-02-01",
                "--rows-per-day", "300", "--seed", "3")
    assert r.returncode == 0, r.stderr
    r = run_cli("run", "--config", str(d / "ctloop.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"run_id", "status", "promoted", "version", "metrics"}
    assert out["status"] == "succeeded" and out["promoted"] is True and out["version"] == 1
    r = run_cli("registry", "list", "--config", str(d / "ctloop.yaml"), "--json")
    rows = json.loads(r.stdout)
    assert rows[0]["version"] == 1 and rows[0]["aliases"] == ["champion"]
    r = run_cli("registry", "champion", "--config", str(d / "ctloop.yaml"), "--json")
    assert json.loads(r.stdout)["run_id"] == out["run_id"]
    r = run_cli("registry", "show", "9", "--config", str(d / "ctloop.yaml"))
    assert r.returncode == 1 and "no version 9" in r.stderr


def test_config_errors_exit_2(tmp_path: Path) -> None:
    r = run_cli("run", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "config file not found" in r.stderr
    cfg = make_project(tmp_path / "p", edit=lambda t: t.replace("roc_auc: 0.70", "roc_auc: 7"))
    r = run_cli("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "gate.min_metric.roc_auc: must be between 0 and 1" in r.stderr
    r = run_cli("run")
    assert r.returncode == 2 and "--config" in r.stderr


@pytest.mark.parametrize("breakage", ["empty", "unreadable", "no_target"])
def test_bad_data_exit_3_registry_unchanged(tmp_path: Path, breakage: str) -> None:
    cfg = make_project(tmp_path / "p", days=4, rows_per_day=200)
    data = cfg.parent / "data"
    if breakage == "empty":
        shutil.rmtree(data)
        data.mkdir()
        expect = "empty, no 'date=YYYY-MM-DD' partitions"
    elif breakage == "unreadable":
        (data / "date=2026-01-02" / "part-0.parquet").write_bytes(b"PAR1garbage")
        expect = "date=2026-01-02/part-0.parquet: unreadable parquet"
    else:
        import pandas as pd

        for f in data.rglob("*.parquet"):
            pd.read_parquet(f).drop(columns=["label"]).to_parquet(f)
        expect = "target column 'label'"
    before = tree_bytes(cfg.parent / "registry")
    r = run_cli("run", "--config", str(cfg), "--json")
    assert r.returncode == 3, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "data_rejected" and out["promoted"] is False
    assert expect in out["error"]["message"]
    assert tree_bytes(cfg.parent / "registry") == before


def test_compile_writes_yaml(tmp_path: Path) -> None:
    r = run_cli("compile", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "ctloop-training" in (tmp_path / "pipeline.yaml").read_text()
