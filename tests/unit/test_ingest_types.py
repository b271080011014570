"""Type-safe ingest: partition files read against the schema; the runner names the failing step."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from ctloop.data import read_window
from ctloop.datagen import write_stream
from ctloop.errors import DataError, PartitionTypeError
from ctloop.ingest_types import accepts, sample_value
from ctloop.project import example_schema
from ctloop.runner import _LogTap, _untyped_failure

pytestmark = pytest.mark.unit
START = dt.date(2026, 1, 1)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    write_stream(tmp_path / "src", START, 5, seed=0, rows_per_day=40)
    return tmp_path / "src"


def rewrite(source: Path, day: str, **columns: object) -> None:
    path = source / f"date={day}" / "part-0.parquet"
    frame = pd.read_parquet(path)
    for name, value in columns.items():
        frame[name] = value
    frame.to_parquet(path, index=False)


def test_text_in_a_numeric_column_names_partition_column_types_and_sample(source: Path) -> None:
    rewrite(source, "2026-01-04", age="n/a")
    rewrite(source, "2026-01-05", age=["n/a"] * 39 + ["41"], plan=7)
    with pytest.raises(PartitionTypeError) as err:
        read_window(str(source), 5, schema=example_schema())
    msg = str(err.value)
    assert "3 column type mismatch(es) in 2 partition file(s)" in msg
    assert ("date=2026-01-04/part-0.parquet: column 'age': expected numeric (numbers), found string "
            "(e.g. 'n/a')") in msg
    assert "date=2026-01-05/part-0.parquet: column 'plan': expected categorical (strings), found int64 (e.g. 7)" in msg
    assert err.value.exit_code == 3 and isinstance(err.value, DataError)
    assert [(m["partition"], m["column"]) for m in err.value.mismatches] == [
        ("date=2026-01-04", "age"), ("date=2026-01-05", "age"), ("date=2026-01-05", "plan")]


def test_clean_window_and_no_schema_still_read(source: Path) -> None:
    assert len(read_window(str(source), 5, schema=example_schema()).frame) == 200
    rewrite(source, "2026-01-05", age="n/a")
    assert len(read_window(str(source), 5).frame) == 200  # without a schema nothing is checked here


def test_type_mismatch_outside_the_window_is_not_read(source: Path) -> None:
    rewrite(source, "2026-01-01", age="n/a")
    snap = read_window(str(source), 3, schema=example_schema())
    assert snap.days[0] == dt.date(2026, 1, 3)


def test_unreadable_file_check_stays(source: Path) -> None:
    (source / "date=2026-01-02" / "part-0.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=r"date=2026-01-02/part-0\.parquet: unreadable parquet"):
        read_window(str(source), 5, schema=example_schema())


@pytest.mark.parametrize(("dtype", "arrow", "ok"), [
    ("numeric", pa.float64(), True), ("numeric", pa.int32(), True), ("numeric", pa.string(), False),
    ("numeric", pa.bool_(), False), ("integer", pa.large_string(), False), ("binary", pa.bool_(), True),
    ("categorical", pa.dictionary(pa.int32(), pa.string()), True), ("categorical", pa.float64(), False),
    ("categorical", pa.null(), True), ("numeric", pa.timestamp("s"), False), ("id", pa.string(), None),
])
def test_accepts(dtype: str, arrow: pa.DataType, ok: bool | None) -> None:
    assert accepts(dtype, arrow) is ok


def test_sample_value_prefers_a_value_that_is_not_a_number() -> None:
    col = pa.chunked_array([["12", None, "7.5", "unknown", "n/a"]])
    assert sample_value(col, "numeric") == "'unknown'"
    assert sample_value(col, "categorical") == "'12'"
    assert sample_value(pa.chunked_array([[None, None]], pa.string()), "numeric") == "no non-null value"


KFP_LOG = """\
16:18:11.222 - INFO - Executing task \x1b[96m'ingest'\x1b[0m
16:18:11.223 - INFO - Streamed logs:

    Traceback (most recent call last):
      File "steps.py", line 87, in ingest_step
    pyarrow.lib.ArrowInvalid: Could not convert 'n/a' with type str: tried to convert to double

16:18:11.885 - ERROR - Task \x1b[96m'ingest'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
--------------------------------------------------------------------------------
"""


def test_a_step_failing_without_a_typed_error_is_named_with_its_last_line() -> None:
    tap = _LogTap(io.StringIO(), None)
    tap.write(KFP_LOG)
    exc = RuntimeError("Pipeline 'ctloop-training' finished with status \x1b[91mFAILURE\x1b[0m. "
                       "Inner task failed: \x1b[96m'ingest'\x1b[0m.")
    err = _untyped_failure(tap, exc, Path("runs/logs/r.log"))
    assert err["step"] == "ingest" and err["exit_code"] == 1
    assert err["last_line"].startswith("pyarrow.lib.ArrowInvalid: Could not convert 'n/a'")
    assert err["message"].startswith("pyarrow.lib.ArrowInvalid") and "runs/logs/r.log" in err["message"]
