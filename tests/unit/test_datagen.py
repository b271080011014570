"""Synthetic stream: deterministic, realistic shape, drift only from the given day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.datagen import CATEGORICAL, ID, NUMERIC, TARGET, DriftSpec, generate_day, write_stream

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 3, 1)


def test_deterministic_per_day() -> None:
    a = generate_day(DAY, 200, seed=3)
    b = generate_day(DAY, 200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = generate_day(DAY, 200, seed=4)
    assert not a.equals(c)


def test_shape_and_label() -> None:
    df = generate_day(DAY, 2000, seed=0)
    assert len(NUMERIC) >= 8 and len(CATEGORICAL) >= 3
    assert set(NUMERIC) | set(CATEGORICAL) | {TARGET, ID} == set(df.columns)
    assert set(df[TARGET].unique()) == {0, 1}
    assert 0.2 < df[TARGET].mean() < 0.8
    # a realistic relationship: low credit score means more positives
    low = df[df.credit_score < 620][TARGET].mean()
    high = df[df.credit_score > 740][TARGET].mean()
    assert low > high + 0.2


def test_drift_starts_on_its_day() -> None:
    drift = DriftSpec(start=DAY)
    before = generate_day(DAY - dt.timedelta(days=1), 3000, 0, drift)
    stable = generate_day(DAY - dt.timedelta(days=1), 3000, 0)
    pd.testing.assert_frame_equal(before, stable)
    after = generate_day(DAY, 3000, 0, drift)
    base = generate_day(DAY, 3000, 0)
    assert (after.region == "west").mean() > (base.region == "west").mean() + 0.3
    assert np.log(after.income).mean() < np.log(base.income).mean() - 0.2


def test_write_stream_partitions(tmp_path: Path) -> None:
    files = write_stream(tmp_path, DAY, 3, seed=1, rows_per_day=50)
    assert [f.parent.name for f in files] == ["date=2026-03-01", "date=2026-03-02", "date=2026-03-03"]
    again = write_stream(tmp_path / "b", DAY, 3, seed=1, rows_per_day=50)
    assert pd.read_parquet(files[1]).equals(pd.read_parquet(again[1]))


def test_every_row_has_a_unique_id_across_days(tmp_path: Path) -> None:
    files = write_stream(tmp_path, DAY, 3, seed=1, rows_per_day=50, id_column="row_id")
    ids = pd.concat([pd.read_parquet(f)["row_id"] for f in files])
    assert len(ids) == 150 and ids.is_unique and ids.notna().all()
    assert ids.iloc[0] == "20260301-0" and ids.iloc[-1] == "20260303-49"
    # the id never feeds the label or the features: same rows as without a custom id name
    plain = generate_day(DAY, 50, seed=1)
    written = pd.read_parquet(files[0]).drop(columns=["row_id"])
    assert plain.drop(columns=[ID]).equals(written.astype(plain.dtypes.drop(ID).to_dict()))
