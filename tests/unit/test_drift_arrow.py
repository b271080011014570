"""Arrow columns (parquet read path): dictionary-encoded in C++, counted exactly like Python strings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctloop.drift import Reference
from ctloop.errors import EventError
from tests.helpers_drift import columns, reference_profile, stream

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference.from_profile(reference_profile())


def test_arrow_and_pyarrow_backed_columns_count_like_python_strings(reference: Reference) -> None:
    frame = stream(3000, seed=3)
    frame.loc[[5, 17], reference.categorical[0]] = None
    frame.loc[9, reference.categorical[1]] = "never-seen"
    frame.loc[11, reference.numeric[0]] = np.nan
    want = reference.count_columns(columns(frame), len(frame))
    table = pa.Table.from_pandas(frame[list(reference.features)], preserve_index=False)
    chunked = {c: pa.chunked_array(table.column(c).chunks * 1) for c in reference.features}
    assert np.array_equal(reference.count_columns(chunked, len(frame)), want)
    dict_cols = {c: (table.column(c).dictionary_encode() if c in reference.categorical else table.column(c))
                 for c in reference.features}
    assert np.array_equal(reference.count_columns(dict_cols, len(frame)), want)
    backed = {c: (pd.Series(frame[c], dtype="string[pyarrow]") if c in reference.categorical else frame[c])
              for c in reference.features}
    assert np.array_equal(reference.count_columns(backed, len(frame)), want)


def test_arrow_unknown_missing_and_wrong_length(reference: Reference) -> None:
    cat = reference.categorical[0]
    k = len(reference.numeric)
    size = len(reference.vocabularies[0])
    counts = reference.count_columns({cat: pa.array(["zzz", "zzz", None])}, 3)
    assert counts[k, size] == 2 and counts[k, size + 1] == 1  # OTHER, missing
    with pytest.raises(EventError, match="values for 4 rows"):
        reference.count_columns({cat: pa.array(["a", "b", "c"])}, 4)
    with pytest.raises(EventError, match="expected numbers"):
        reference.count_columns({reference.numeric[0]: pa.array(["x", "y"])}, 2)


def test_arrow_batches_split_across_windows_score_like_python_strings(reference: Reference) -> None:
    from ctloop.config import DriftConfig
    from ctloop.drift import DriftMonitor

    cfg = DriftConfig(window_rows=400, slide_rows=100, min_rows=100, bootstrap_samples=200)
    frame = stream(1000, seed=8)
    table = pa.Table.from_pandas(frame[list(reference.features)], preserve_index=False)
    arrow_cols = {c: table.column(c) for c in reference.features}
    a, b = DriftMonitor(reference, cfg), DriftMonitor(reference, cfg)
    ev_a = a.ingest(arrow_cols, len(frame))  # one batch cut into 10 chunks of 100 rows
    ev_b = b.ingest(columns(frame), len(frame))
    assert len(ev_a) == len(ev_b) == 10
    for x, y in zip(ev_a, ev_b, strict=True):
        assert [s.psi for s in x.features] == [s.psi for s in y.features]
