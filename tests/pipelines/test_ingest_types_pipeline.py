"""``ctloop run`` (real KFP local runner) on partitions whose column types drifted from the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ctloop.config import load_config
from tests.conftest import make_project, run_cli, tree_bytes

pytestmark = pytest.mark.pipeline


def test_numeric_column_written_as_text_is_rejected_with_exit_3_and_a_report(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "p", days=6, rows_per_day=100)
    cfg = load_config(cfg_path)
    for day in ("2026-01-05", "2026-01-06"):  # upstream started writing age as text in the newest days
        path = Path(cfg.data.source) / f"date={day}" / "part-0.parquet"
        frame = pd.read_parquet(path)
        frame["age"] = frame["age"].round().astype("int64").astype(str).where(frame.index % 3 > 0, "n/a")
        frame.to_parquet(path, index=False)
    before = tree_bytes(Path(cfg.registry.uri))
    proc = run_cli("run", "--config", str(cfg_path), "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "data_rejected"
    err = out["error"]
    assert err["step"] == "ingest" and err["type"] == "PartitionTypeError" and err["exit_code"] == 3
    for day in ("2026-01-05", "2026-01-06"):
        assert (f"date={day}/part-0.parquet: column 'age': expected numeric (numbers), found string "
                f"(e.g. 'n/a')") in err["message"]
    report = json.loads(Path(out["paths"]["reports"]["ingest"]["json"]).read_text())
    assert report["format"] == "ctloop-ingest-report/v1" and report["passed"] is False
    assert [(m["partition"], m["column"], m["found"], m["sample"]) for m in report["mismatches"]] == [
        ("date=2026-01-05", "age", "string", "'n/a'"), ("date=2026-01-06", "age", "string", "'n/a'")]
    assert tree_bytes(Path(cfg.registry.uri)) == before  # nothing registered, no champion

    human = run_cli("run", "--config", str(cfg_path))  # the table form names the step and the report
    assert human.returncode == 3
    text = " ".join(human.stdout.split())
    assert "error in step ingest" in text and "step None" not in text
    assert "column 'age'" in text and "report:" in text
