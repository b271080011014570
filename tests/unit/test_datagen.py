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


def test_write_stream_uri_writes_partitions_the_data_source_reads() -> None:
    """fsspec's in-memory filesystem stands for an object store: the same code path as s3://."""
    import uuid

    from ctloop.data import list_partitions
    from ctloop.datagen import is_remote, write_schema, write_stream_uri
    from ctloop.schema import load_schema

    root = f"memory://ctloop-{uuid.uuid4().hex[:8]}"
    written = write_stream_uri(f"{root}/data", DAY, 3, seed=1, rows_per_day=50)
    assert [w.rsplit("/", 2)[-2:] for w in written] == [[f"date=2026-03-0{i}", "part-0.parquet"] for i in (1, 2, 3)]
    assert all(w.startswith("memory://") for w in written)
    assert [p.day for p in list_partitions(f"{root}/data")] == [DAY + dt.timedelta(days=i) for i in range(3)]
    import fsspec

    with fsspec.open(written[1], "rb") as fh:
        again = pd.read_parquet(fh)
    local = generate_day(DAY + dt.timedelta(days=1), 50, seed=1)
    pd.testing.assert_frame_equal(again, local, check_dtype=False)
    assert write_schema(f"{root}/schema.yaml", id_column="row_id") == f"{root}/schema.yaml"
    schema = load_schema(f"{root}/schema.yaml")
    assert schema.columns["row_id"].dtype == "id" and schema.target == TARGET
    assert is_remote("s3://b/x") and not is_remote("file:///tmp/x") and not is_remote("/tmp/x")


def test_a_missing_remote_schema_is_a_schema_error() -> None:
    from ctloop.errors import SchemaError
    from ctloop.schema import load_schema

    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema("memory://ctloop-none/schema.yaml")
