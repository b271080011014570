"""``ctloop run`` (real KFP local runner) when the label feed broke for the newest days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from ctloop.config import load_config
from ctloop.datagen import DriftSpec, write_stream
from ctloop.runner import run_local
from tests.conftest import make_project, tree_bytes

pytestmark = pytest.mark.pipeline


def test_newest_days_with_one_label_class_stop_the_run_naming_the_days(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "p", days=6, rows_per_day=150))
    for day in ("2026-01-05", "2026-01-06"):
        path = Path(cfg.data.source) / f"date={day}" / "part-0.parquet"
        frame = pd.read_parquet(path)
        frame["label"] = 0
        frame.to_parquet(path, index=False)
    result = run_local(cfg)
    assert result.status == "data_rejected" and result.exit_code == 3, result.error
    assert result.error["step"] == "validate_gate"
    assert "check 'label_days_one_class': days 2026-01-05..2026-01-06 (300 rows) hold only class 0" \
        in result.error["message"]
    assert tree_bytes(Path(cfg.registry.uri)) == {}


def test_label_feed_break_after_a_champion_is_a_data_rejection_not_a_gate_decline(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "p", days=6, rows_per_day=150))
    assert run_local(cfg).promoted  # the champion's profile holds the usual label balance
    before = tree_bytes(Path(cfg.registry.uri))
    write_stream(Path(cfg.data.source), dt.date(2026, 1, 7), 2, 5, 150, DriftSpec(None))  # two new days ...
    for day in ("2026-01-07", "2026-01-08"):
        path = Path(cfg.data.source) / f"date={day}" / "part-0.parquet"
        frame = pd.read_parquet(path)
        frame["label"] = 1  # ... whose label feed sends one class only
        frame.to_parquet(path, index=False)
    result = run_local(cfg)
    assert result.status == "data_rejected" and result.exit_code == 3, result.error or result.decision
    message = result.error["message"]
    assert "check 'label_share_change'" in message and "days beyond 30.00%: 2026-01-07, 2026-01-08" in message
    assert "days 2026-01-07..2026-01-08 (300 rows) hold only class 1" in message
    assert tree_bytes(Path(cfg.registry.uri)) == before  # champion untouched, nothing registered
