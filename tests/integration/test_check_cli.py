"""``ctloop check`` through the real CLI: passes on a fresh ``ctloop init`` project (with the committed
compiled pipeline and manifests), and fails naming the cause on a broken schema, a stale compiled pipeline
and a bad newest partition. The smoke run registers into a throwaway registry: the real one is untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _project(root: Path) -> Path:
    assert run_cli("init", str(root), "--ci", "github").returncode == 0
    assert (root / ".github" / "workflows" / "ctloop-check.yaml").read_text().count("ctloop check --config") == 1
    r = run_cli("datagen", "--out", str(root / "data"), "--days", "14", "--rows-per-day", "200")
    assert r.returncode == 0, r.stderr
    cfg = root / "ctloop.yaml"
    assert run_cli("compile", "--config", str(cfg), "--out", str(root)).returncode == 0
    assert run_cli("manifests", "render", "--config", str(cfg), "--out", str(root / "manifests")).returncode == 0
    return cfg


def _check(cfg: Path, *extra: str) -> tuple[int, dict[str, dict[str, str]]]:
    r = run_cli("check", "--config", str(cfg), "--json", *extra)
    doc = json.loads(r.stdout)
    assert doc["passed"] is (r.returncode == 0)
    return r.returncode, {c["name"]: c for c in doc["checks"]}


def test_fresh_project_passes_and_registry_is_untouched(tmp_path: Path) -> None:
    cfg = _project(tmp_path / "p")
    code, checks = _check(cfg, "--sample-rows", "1000")
    assert code == 0, checks
    assert {n: c["status"] for n, c in checks.items()} == {
        "config": "passed", "compiled_pipeline": "passed", "manifests": "passed",
        "newest_partition": "passed", "smoke_run": "passed"}
    assert not (tmp_path / "p" / "registry").exists()  # the smoke run used a throwaway registry


def test_failures_are_named(tmp_path: Path) -> None:
    cfg = _project(tmp_path / "p")
    pipeline = tmp_path / "p" / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text() + "# edited by hand\n")
    newest = sorted((tmp_path / "p" / "data").glob("date=*"))[-1]
    f = next(newest.glob("*.parquet"))
    pd.read_parquet(f).drop(columns=["age"]).to_parquet(f)
    code, checks = _check(cfg, "--no-smoke")
    assert code == 1
    assert checks["compiled_pipeline"]["status"] == "failed" and "stale" in checks["compiled_pipeline"]["detail"]
    assert checks["newest_partition"]["status"] == "failed"
    assert newest.name in checks["newest_partition"]["detail"] and "age" in checks["newest_partition"]["detail"]
    assert checks["manifests"]["status"] == "passed" and checks["smoke_run"]["status"] == "skipped"
    text = run_cli("check", "--config", str(cfg), "--no-smoke")
    assert text.returncode == 1
    assert "check: FAILED (compiled_pipeline, newest_partition)" in text.stdout.splitlines()

    (tmp_path / "p" / "schema.yaml").write_text("columns: [not, a, mapping\n")
    code, checks = _check(cfg, "--no-smoke")
    assert code == 1 and list(checks) == ["config"]
    assert checks["config"]["status"] == "failed" and "schema.yaml" in checks["config"]["detail"]
