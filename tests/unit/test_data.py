"""Partitioned parquet source: window selection, hashing, and bad input."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from ctloop.data import list_partitions, read_window
from ctloop.datagen import write_stream
from ctloop.errors import DataError

pytestmark = pytest.mark.unit
START = dt.date(2026, 1, 1)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    write_stream(tmp_path / "src", START, 6, seed=0, rows_per_day=40)
    return tmp_path / "src"


def test_window_up_to_cutoff(source: Path) -> None:
    snap = read_window(str(source), window_days=3, cutoff=dt.date(2026, 1, 5), target="label")
    assert snap.days == [dt.date(2026, 1, 3), dt.date(2026, 1, 4), dt.date(2026, 1, 5)]
    assert len(snap.frame) == 120
    assert sorted(snap.frame["date"].unique()) == ["2026-01-03", "2026-01-04", "2026-01-05"]
    newest = read_window(str(source), window_days=2)
    assert newest.days[-1] == dt.date(2026, 1, 6)


def test_file_uri_and_hash_stability(source: Path) -> None:
    a = read_window(f"file://{source}", 6)
    b = read_window(str(source), 6)
    assert a.content_hash == b.content_hash
    write_stream(source, dt.date(2026, 1, 6), 1, seed=99, rows_per_day=40)  # rewrite the last day
    c = read_window(str(source), 6)
    assert c.content_hash != a.content_hash


def test_empty_and_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_partitions(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty, no 'date=YYYY-MM-DD' partitions"):
        read_window(str(tmp_path / "empty"), 5)


def test_missing_partitions_named(source: Path) -> None:
    shutil.rmtree(source / "date=2026-01-04")
    with pytest.raises(DataError, match="missing partitions for 2026-01-04"):
        read_window(str(source), 6)
    snap = read_window(str(source), 6, allow_missing_days=True)
    assert snap.missing_days == [dt.date(2026, 1, 4)]


def test_unreadable_parquet_names_file(source: Path) -> None:
    bad = source / "date=2026-01-02" / "part-0.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"date=2026-01-02/part-0\.parquet: unreadable parquet"):
        read_window(str(source), 6)


def test_missing_target_named(source: Path) -> None:
    with pytest.raises(DataError, match="target column 'churned'"):
        read_window(str(source), 6, target="churned")
