"""CLI error output: an error starts on its own line and ends with a newline, whatever was printed before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_project

pytestmark = pytest.mark.integration


def cli_merged(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with stderr merged into stdout, as a log file or a CI console sees it."""
    return subprocess.run([sys.executable, "-m", "ctloop.cli", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


def test_an_error_raised_under_the_live_table_starts_its_own_line(tmp_path: Path) -> None:
    cfg = make_project(tmp_path / "p", days=2, rows_per_day=20,
                       edit=lambda t: t.replace("uri: registry ", "uri: nosuch://registry "))
    proc = cli_merged("run", "--config", str(cfg))
    assert proc.returncode == 1
    assert proc.stdout.endswith("\n")
    lines = proc.stdout.splitlines()
    errors = [ln for ln in lines if "error:" in ln]
    assert errors == ["error: registry.uri 'nosuch://registry': cannot open this storage (Protocol not known: "
                      "nosuch); install its fsspec driver or fix the URI"]
    assert lines[-2].startswith("└") and lines[-2].endswith("┘")  # the table's last line, closed


def test_empty_window_error_is_one_line_with_a_newline(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02"):
        (tmp_path / "data" / f"date={day}").mkdir(parents=True)  # partitions, but no parquet files
    proc = cli_merged("schema", "infer", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "s.yaml"))
    assert proc.returncode == 3
    source = str(tmp_path / "data")
    assert proc.stdout == f"error: data.source {source!r}: no parquet files in window 2015-12-27..2026-01-02\n"
