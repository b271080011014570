"""The label join against a plain one-label-at-a-time reading of its documented rules, all-or-nothing on a
failing write, the numbering of matched labels across batches and reopens, and the column-wise parse."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ctloop.errors import LabelError, StoreError
from ctloop.quality.labels import _checked_rows, _plain_rows, parse_label_rows, parse_labels_body
from ctloop.quality.store import P_SCALE, Label, LabelBatch, LabelResult, PredictionStore

pytestmark = pytest.mark.unit
T0 = 1_800_000_000.0
MAX_AGE = 3600.0

Stored = dict[str, dict[str, Any]]


def _reference(stored: Stored, labels: list[Label], now: float, seq: int) -> tuple[dict[str, int], list[float],
                                                                                  list[tuple[Any, ...]], Stored]:
    """The join as documented, one label at a time: counts, delays, matched rows and the labelled rows."""
    counts = dict.fromkeys(("matched", "unknown", "duplicate", "expired", "invalid"), 0)
    delays: list[float] = []
    rows: list[tuple[Any, ...]] = []
    after = {k: dict(v) for k, v in stored.items()}
    seen: set[str] = set()
    for lab in labels:
        if lab.id in seen:
            counts["duplicate"] += 1
            continue
        seen.add(lab.id)
        row = after.get(lab.id)
        if row is None:
            counts["unknown"] += 1
        elif row["y"] is not None:
            counts["duplicate"] += 1
        elif lab.time < row["t"]:
            counts["invalid"] += 1
        elif lab.time - row["t"] > MAX_AGE or now - row["t"] > MAX_AGE:
            counts["expired"] += 1
        else:
            seq += 1
            row.update(y=lab.label, ls=seq)
            counts["matched"] += 1
            delays.append(lab.time - row["t"])
            rows.append((row["v"], row["p"] / P_SCALE, row["yhat"], lab.label, row["s"]))
    return counts, delays, rows, after


def _rows(path: Path) -> Stored:
    with sqlite3.connect(path) as db:
        got = db.execute("SELECT id, v, p, yhat, t, s, y, ls FROM predictions").fetchall()
    return {r[0]: dict(zip(("v", "p", "yhat", "t", "s", "y", "ls"), r[1:], strict=True)) for r in got}


def _store(tmp_path: Path, rng: np.random.Generator) -> PredictionStore:
    """60 predictions at four times (none pruned), two versions, a slice column; a few already labelled."""
    s = PredictionStore(tmp_path / "p.sqlite", max_age_seconds=MAX_AGE)
    for k, when in enumerate((T0 - 1000, T0 - 500, T0, T0 + 50)):
        ids = [f"id-{k}-{i:02d}" for i in range(15)]
        p = rng.random(15)
        s.add(ids, 1 + k % 2, p, (p >= 0.5).astype(int), when, {"plan": [("a", "b")[i % 2] for i in range(15)]})
    s.apply_labels([Label(f"id-{k}-00", 1, T0 + 60) for k in range(4)], now=T0 + 60)
    return s


def _mixed_batch(rng: np.random.Generator, n: int = 150) -> list[Label]:
    """Stored and unknown ids, repeats inside the batch, label times before, within and past the limits."""
    ids = [f"id-{rng.integers(4)}-{rng.integers(15):02d}" for _ in range(n)] + [f"nope-{i}" for i in range(10)]
    order = rng.permutation(len(ids))
    offsets = (-6000.0, -10.0, 0.0, 40.5, 100.0, 700.25, 4000.0)
    return [Label(ids[i], int(rng.integers(2)), T0 + offsets[rng.integers(len(offsets))]) for i in order]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("columns", [False, True])
def test_join_matches_the_one_label_at_a_time_reading(tmp_path: Path, seed: int, columns: bool) -> None:
    rng = np.random.default_rng(seed)
    s = _store(tmp_path, rng)
    before = _rows(tmp_path / "p.sqlite")
    labels = _mixed_batch(rng)
    now = T0 + 2700  # the oldest predictions are past the limit at this time, whatever the label's time
    want_counts, want_delays, want_rows, want_after = _reference(before, labels, now, s._seq)
    assert all(want_counts.values()), want_counts  # the batch exercises every outcome
    res = s.apply_labels(LabelBatch.of(labels) if columns else labels, now=now)
    assert res.counts == want_counts
    assert res.delays == want_delays and res.matched_rows == want_rows
    assert _rows(tmp_path / "p.sqlite") == want_after  # labels and their numbers (ls), nothing else touched
    assert s.count() == (60, sum(r["y"] is not None for r in want_after.values()))
    assert len(want_after) == 60


def test_a_failing_write_records_nothing_and_the_next_batch_numbers_on(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite", max_age_seconds=MAX_AGE)
    s.add(["a", "b", "c"], 1, np.array([0.2, 0.6, 0.9]), np.array([0, 1, 1]), T0)
    assert s.apply_labels([Label("c", 1, T0 + 1)], now=T0 + 1).counts["matched"] == 1
    with sqlite3.connect(tmp_path / "p.sqlite") as db:  # "b" cannot be written: the batch fails after "a"
        db.execute("CREATE TRIGGER no_b BEFORE UPDATE ON predictions WHEN NEW.id = 'b' "
                   "BEGIN SELECT RAISE(ABORT, 'b is read-only'); END")
    with pytest.raises(StoreError, match="b is read-only.*nothing of the batch was recorded"):
        s.apply_labels([Label("a", 0, T0 + 2), Label("b", 1, T0 + 2)], now=T0 + 2)
    assert _rows(tmp_path / "p.sqlite")["a"]["y"] is None and s.count() == (3, 1)
    with sqlite3.connect(tmp_path / "p.sqlite") as db:
        db.execute("DROP TRIGGER no_b")
    res = s.apply_labels([Label("b", 1, T0 + 3), Label("a", 0, T0 + 3)], now=T0 + 3)
    assert res.counts["matched"] == 2
    rows = _rows(tmp_path / "p.sqlite")
    assert [rows[k]["ls"] for k in ("c", "b", "a")] == [1, 2, 3]  # batch order, no number lost to the failure


def test_a_non_numeric_label_time_leaves_no_transaction_open(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite")
    s.add(["a"], 1, np.array([0.2]), np.array([0]), T0)
    with pytest.raises(TypeError):
        s.apply_labels([Label("a", 1, "soon")], now=T0)  # type: ignore[arg-type]
    assert s.apply_labels([Label("a", 1, T0 + 1)], now=T0 + 1).counts["matched"] == 1


def test_numbering_survives_a_reopen_and_the_window_reads_batch_order(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite")
    ids = ["z", "m", "a", "q"]
    s.add(ids, 1, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 0, 0]), T0)
    s.apply_labels([Label("z", 1, T0 + 1), Label("a", 0, T0 + 1)], now=T0 + 1)
    s.close()
    again = PredictionStore(tmp_path / "p.sqlite")
    again.apply_labels([Label("q", 1, T0 + 2), Label("m", 0, T0 + 2)], now=T0 + 2)
    p, _, y, _ = again.labelled_window(1, 10)
    assert p.tolist() == [0.1, 0.3, 0.4, 0.2] and y.tolist() == [1, 0, 1, 0]
    assert [_rows(tmp_path / "p.sqlite")[k]["ls"] for k in ("z", "a", "q", "m")] == [1, 2, 3, 4]


def test_an_id_that_is_not_utf8_is_unknown(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite")
    s.add(["a"], 1, np.array([0.2]), np.array([0]), T0)
    res = s.apply_labels([Label("\ud800", 1, T0 + 1), Label("a", 1, T0 + 1)], now=T0 + 1)
    assert res.counts == {"matched": 1, "unknown": 1, "duplicate": 0, "expired": 0, "invalid": 0}


def test_an_empty_batch_changes_nothing(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite")
    assert s.apply_labels([], now=T0) == LabelResult()
    assert s.apply_labels(parse_labels_body(b'{"model": "m", "labels": []}', "m"), now=T0) == LabelResult()


def test_label_batch_is_a_sequence_of_labels() -> None:
    b = LabelBatch(["a", "b", "c"], [1, 0, 1], [1.0, 2.0, 3.0])
    assert len(b) == 3 and b[1] == Label("b", 0, 2.0) and b[-1].id == "c"
    assert list(b) == [Label("a", 1, 1.0), Label("b", 0, 2.0), Label("c", 1, 3.0)]
    assert b[1:] == LabelBatch(["b", "c"], [0, 1], [2.0, 3.0]) and LabelBatch.of(b) is b
    assert LabelBatch.of(list(b)) == b
    with pytest.raises(LabelError, match="2 ids, 1 labels and 2 times"):
        LabelBatch(["a", "b"], [1], [1.0, 2.0])


PLAIN = [{"id": f"p-{i}", "label": i % 2} for i in range(50)]


@pytest.mark.parametrize("rows", [
    PLAIN,
    PLAIN + [{"id": 7, "label": 1}],  # an int id: the row-by-row path makes it "7"
    PLAIN + [{"id": "x", "label": 1.0}],  # a float label
    PLAIN + [{"id": "x", "label": 0, "time": "2027-01-15T08:00:00+00:00"}],
    PLAIN + [{"id": "x", "label": 0, "time": None}],
    PLAIN + [{"id": "x", "label": 1, "note": "extra keys are ignored"}],
])
def test_column_checks_and_row_checks_agree(rows: list[dict[str, Any]]) -> None:
    got = parse_label_rows(rows, now=T0)
    assert got == _checked_rows(rows, T0, "labels")
    assert (_plain_rows(rows, T0) is not None) == (rows is PLAIN)  # only the plain batch takes the column path
    assert all(type(pid) is str for pid in got.ids) and all(type(lab) is int for lab in got.labels)


@pytest.mark.parametrize(("bad", "where"), [
    ({"id": "x", "label": True}, "labels[50].label"),
    ({"id": "x", "label": 2}, "labels[50].label"),
    ({"id": "", "label": 1}, "labels[50].id"),
    ({"id": None, "label": 1}, "labels[50].id"),
    ({"label": 1, "time": "2027-01-15"}, "labels[50].id"),
    ({"id": "x", "label": 1, "time": "yesterday"}, "labels[50].time"),
    (["x", 1], "labels[50]: must be an object"),
])
def test_a_bad_last_row_is_named_after_a_plain_batch(bad: Any, where: str) -> None:
    with pytest.raises(LabelError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_label_rows([*PLAIN, bad], now=T0)
