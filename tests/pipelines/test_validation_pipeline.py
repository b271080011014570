"""The data validation gate through the real pipeline (KFP local runner): bad data stops the run with
exit code 3, an HTML report lists the failing checks, and the registry stays byte-for-byte unchanged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.config import load_config
from ctloop.registry import Registry
from ctloop.runner import RunResult, run_local
from tests.conftest import make_project, run_cli, tree_bytes
from tests.helpers_validation import parse_report

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def corrupt(project: Path, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Rewrite every partition of the project's data with ``fn`` applied."""
    for f in sorted((project / "data").rglob("*.parquet")):
        fn(pd.read_parquet(f)).to_parquet(f, index=False)


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst / "ctloop.yaml"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project (no runs yet)."""
    root = tmp_path_factory.mktemp("val") / "base"
    make_project(root, days=5, rows_per_day=300)
    return root


@pytest.fixture(scope="module")
def with_champion(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    """A copy of :func:`base` after one clean run promoted a champion."""
    root = tmp_path_factory.mktemp("val") / "champ"
    cfg = load_config(copy_project(base, root))
    result = run_local(cfg)
    assert result.status == "succeeded" and result.promoted, result.error
    return root, result


def assert_rejected(result: RunResult, check: str, column: str) -> dict:
    assert result.status == "data_rejected" and result.exit_code == 3
    # validate itself succeeded (so a KFP cluster publishes its reports); the gate after it failed
    assert result.error and result.error["step"] == "validate_gate"
    assert "validate" in result.step_seconds
    assert result.reports["validate_gate"]["html"] == result.reports["validate"]["html"]
    assert f"column {column!r}: check {check!r}" in result.error["message"]
    html = result.reports["validate"]["html"]
    assert f"report: {html}" in result.error["message"]
    page = parse_report(html)
    assert "FAILED" in page.status and ("error", check, column) in page.rows
    doc = json.loads(Path(result.reports["validate"]["json"]).read_text())
    assert doc["passed"] is False
    return doc


def test_clean_run_validates_without_champion(with_champion: tuple[Path, RunResult]) -> None:
    _, result = with_champion
    doc = json.loads(Path(result.reports["validate"]["json"]).read_text())
    assert doc["passed"] is True and doc["reference"]["note"] == "no champion yet"
    page = parse_report(result.reports["validate"]["html"])
    assert "PASSED" in page.status and ("skipped", "reference", "") in page.rows
    assert Path(result.reports["validate"]["markdown"]).read_text().startswith("**Data validation: PASSED**")


def test_missing_column_stops_a_first_run(base: Path, tmp_path: Path) -> None:
    cfg = load_config(copy_project(base, tmp_path / "p"))
    corrupt(tmp_path / "p", lambda f: f.drop(columns=["credit_score"]))
    result = run_local(cfg)
    assert_rejected(result, "column_present", "credit_score")
    assert tree_bytes(Path(cfg.registry.uri)) == {}
    assert set(result.step_seconds) == {"ingest", "validate"}  # nothing after the gate ran


def test_null_surge_against_champion_leaves_registry_untouched(
    with_champion: tuple[Path, RunResult], tmp_path: Path
) -> None:
    cfg = load_config(copy_project(with_champion[0], tmp_path / "p"))
    reg_root = Path(cfg.registry.uri)
    before = tree_bytes(reg_root)
    champion = Registry(cfg.registry.uri, cfg.name).alias("champion")

    def surge(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[np.arange(len(f)) % 2 == 0, "balance"] = np.nan
        return f

    corrupt(tmp_path / "p", surge)
    result = run_local(cfg)
    doc = assert_rejected(result, "missing_share_increase", "balance")
    assert doc["reference"]["version"] == champion
    assert all(h["reference"] is not None for h in doc["histograms"])
    assert tree_bytes(reg_root) == before
    assert Registry(cfg.registry.uri, cfg.name).alias("champion") == champion


def test_single_class_label_via_cli_exits_3(
    with_champion: tuple[Path, RunResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = copy_project(with_champion[0], tmp_path / "p")
    cfg = load_config(config)
    before = tree_bytes(Path(cfg.registry.uri))
    corrupt(tmp_path / "p", lambda f: f.assign(label=0))
    monkeypatch.setenv("COLUMNS", "400")
    r = run_cli("run", "--config", str(config))
    assert r.returncode == 3, r.stdout + r.stderr
    out = r.stdout
    assert "column 'label': check 'label_classes'" in out
    html = next(line.split("report: ", 1)[1].strip() for line in out.splitlines()
                if line.strip().startswith("report: "))
    assert ("error", "label_classes", "label") in parse_report(html).rows
    assert tree_bytes(Path(cfg.registry.uri)) == before


def test_new_clean_data_passes_against_champion(
    with_champion: tuple[Path, RunResult], tmp_path: Path
) -> None:
    import datetime as dt

    from ctloop.datagen import write_stream
    from tests.conftest import START

    root = tmp_path / "p"
    cfg = load_config(copy_project(with_champion[0], root))
    write_stream(root / "data", START + dt.timedelta(days=5), 2, 0, 300)
    result = run_local(cfg)
    assert result.status in ("succeeded", "rejected"), result.error  # the gate may judge; validation passed
    doc = json.loads(Path(result.reports["validate"]["json"]).read_text())
    assert doc["passed"] is True and doc["reference"]["version"] == 1
    assert {c["check"] for c in doc["checks"]} >= {"psi", "out_of_range_share", "unseen_category_share"}
    assert not [c for c in doc["checks"] if c["status"] == "error"]
