"""The prediction store: id → (model version, P(class 1), predicted label, time, slice values, label).

One SQLite file in WAL mode, one ``WITHOUT ROWID`` table keyed by the prediction id, kept compact: the
probability is stored as an integer in millionths (3 bytes), times as Unix seconds, the slice values as
a code into a small dictionary table, and a missing label costs nothing. Every write is one transaction
committed before the call returns, so a caller that acknowledges after it (the watcher's 202) never
loses an acknowledged prediction to a crash or ``kill -9`` (WAL with ``synchronous=NORMAL`` survives a
process crash; only an OS crash may lose the last transactions).

The store is bounded: predictions older than ``max_age_seconds`` and, beyond ``max_predictions``, the
oldest are deleted. Labels join by id in batches, all or nothing (see :meth:`PredictionStore.apply_labels`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, overload

import numpy as np
import orjson

from ctloop.errors import LabelError, StoreError

P_SCALE = 1_000_000
OUTCOMES = ("matched", "unknown", "duplicate", "expired", "invalid")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
  id TEXT PRIMARY KEY NOT NULL,
  v INTEGER NOT NULL,
  p INTEGER NOT NULL,
  yhat INTEGER NOT NULL,
  t INTEGER NOT NULL,
  s INTEGER,
  y INTEGER,
  ls INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slice_keys (code INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""
# the batch's distinct ids in as one JSON array (``j.key``: an id's index in it), the stored ones' rows out
# as one JSON array of arrays: one Python object to decode instead of a tuple and seven values per row
_LOOKUP = ("SELECT json_group_array(json_array(j.key, p.t, p.y, p.v, p.p, p.yhat, p.s)) "
           "FROM json_each(?) AS j JOIN predictions AS p ON p.id = j.value")


class Label(NamedTuple):
    """One validated label: the prediction id, 0/1, and when it became known (Unix seconds)."""

    id: str
    label: int
    time: float


@dataclass(frozen=True)
class LabelBatch(Sequence[Label]):
    """Validated labels as three columns (ids, 0/1 labels, Unix-second times) of equal length.

    What :func:`~ctloop.quality.labels.parse_label_rows` returns and the join reads, without a
    :class:`Label` object per row; indexing or iterating still gives :class:`Label` items.
    """

    ids: list[str]
    labels: list[int]
    times: list[float]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.labels) == len(self.times):
            raise LabelError(f"label batch: {len(self.ids)} ids, {len(self.labels)} labels and {len(self.times)} "
                             "times; each label needs one of each")

    @classmethod
    def of(cls, labels: Sequence[Label]) -> LabelBatch:
        """``labels`` as a batch (itself when it already is one)."""
        if isinstance(labels, LabelBatch):
            return labels
        return cls([lab.id for lab in labels], [lab.label for lab in labels], [lab.time for lab in labels])

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Label: ...

    @overload
    def __getitem__(self, i: slice) -> LabelBatch: ...

    def __getitem__(self, i: int | slice) -> Label | LabelBatch:
        if isinstance(i, slice):
            return LabelBatch(self.ids[i], self.labels[i], self.times[i])
        return Label(self.ids[i], self.labels[i], self.times[i])

    def __iter__(self) -> Iterator[Label]:
        return map(Label, self.ids, self.labels, self.times)


@dataclass
class LabelResult:
    """What a batch of labels did: counts per outcome plus the delays (seconds) of matched labels."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    delays: list[float] = field(default_factory=list)
    matched_rows: list[tuple[int, float, int, int, int | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        """The counts (the body of the ``POST /labels`` reply)."""
        return dict(self.counts)


class PredictionStore:
    """A bounded, persistent map of prediction id → prediction (and its label once known).

    Thread-safe: one lock serialises the connection.
    """

    def __init__(self, path: str | Path, max_predictions: int = 1_000_000, max_age_seconds: float = 30 * 86400,
                 prune_every_seconds: float = 60.0) -> None:
        self.path = Path(path)
        self.max_predictions = max_predictions
        self.max_age_seconds = max_age_seconds
        self.prune_every_seconds = prune_every_seconds
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-16000")  # 16 MB of pages: a label batch's lookups stay cached
            self._db.executescript(_SCHEMA)
            self.stored, self.labelled = self._db.execute(
                "SELECT COUNT(*), COUNT(y) FROM predictions").fetchone()
            row = self._db.execute("SELECT v FROM meta WHERE k='label_seq'").fetchone()
            self._seq = int(row[0]) if row else 0
            self._slices: dict[str, int] = dict(self._db.execute("SELECT key, code FROM slice_keys"))
        except sqlite3.Error as exc:
            raise StoreError(f"prediction store {self.path}: cannot open ({exc}); "
                             "check monitoring.labels.store") from exc
        self._slice_keys = {c: k for k, c in self._slices.items()}
        self._last_prune = 0.0

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- predictions ---------------------------------------------------------------------------------

    def _slice_code(self, key: str) -> int:
        code = self._slices.get(key)
        if code is None:
            code = len(self._slices) + 1
            self._db.execute("INSERT INTO slice_keys (code, key) VALUES (?, ?)", (code, key))
            self._slices[key] = code
            self._slice_keys[code] = key
        return code

    def slice_values(self, code: int | None) -> dict[str, str]:
        """The ``{column: value}`` a slice code stands for (empty for ``None``)."""
        if code is None:
            return {}
        return dict(json.loads(self._slice_keys[code]))

    def add(self, ids: Sequence[str], version: int, proba: np.ndarray, predicted: np.ndarray,
            when: float | None = None, slices: dict[str, Sequence[object]] | None = None) -> int:
        """Store one batch of predictions (one transaction, committed on return).

        An id that is already stored keeps its first prediction (a replayed event changes nothing).

        Returns:
            How many predictions were new.
        """
        n = len(ids)
        if n == 0:
            return 0
        t = int(when if when is not None else time.time())
        p = np.rint(np.clip(np.asarray(proba, dtype="float64"), 0.0, 1.0) * P_SCALE).astype("int64").tolist()
        yhat = np.asarray(predicted, dtype="int64").tolist()
        cols = sorted(slices or {})
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if cols:
                    assert slices is not None
                    codes: list[int | None] = [
                        self._slice_code(json.dumps([[c, None if slices[c][i] is None else str(slices[c][i])]
                                                     for c in cols], separators=(",", ":")))
                        for i in range(n)]
                else:
                    codes = [None] * n
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO predictions (id, v, p, yhat, t, s) VALUES (?, ?, ?, ?, ?, ?)",
                    zip(ids, [version] * n, p, yhat, [t] * n, codes, strict=True))
                added = self._db.total_changes - before
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"prediction store {self.path}: cannot store {n} predictions ({exc})") from exc
            self.stored += added
            self._maybe_prune(t)
        return added

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
            self._slices = dict(self._db.execute("SELECT key, code FROM slice_keys"))
            self._slice_keys = {c: k for k, c in self._slices.items()}
        except sqlite3.Error:
            pass

    def _maybe_prune(self, now: float) -> None:
        if self.stored > self.max_predictions or now - self._last_prune >= self.prune_every_seconds:
            self._prune(now)

    def prune(self, now: float | None = None) -> int:
        """Delete predictions past ``max_age_seconds`` and the oldest beyond ``max_predictions``."""
        with self._lock:
            return self._prune(time.time() if now is None else now)

    def _prune(self, now: float) -> int:
        self._last_prune = now
        deleted = self._db.execute("DELETE FROM predictions WHERE t < ?", (int(now - self.max_age_seconds),)).rowcount
        if self.stored - deleted > self.max_predictions:
            # evict down to 95% of the bound so the sort is paid once per 5% of inserts, not per batch
            excess = self.stored - deleted - int(self.max_predictions * 0.95)
            deleted += self._db.execute(
                "DELETE FROM predictions WHERE id IN (SELECT id FROM predictions ORDER BY t LIMIT ?)",
                (excess,)).rowcount
        if deleted:
            self.stored, self.labelled = self._db.execute(
                "SELECT COUNT(*), COUNT(y) FROM predictions").fetchone()
        return int(deleted)

    # -- labels --------------------------------------------------------------------------------------

    def apply_labels(self, labels: Sequence[Label], now: float | None = None) -> LabelResult:
        """Join a batch of labels to their predictions: all recorded in one transaction, or none.

        Outcomes: ``matched`` (stored), ``unknown`` (no such prediction, not stored), ``duplicate`` (the
        prediction already has a label, or the id came earlier in the batch: the first label stands),
        ``expired`` (the prediction is older than ``max_age_seconds`` at the label's time),
        ``invalid`` (the label's time is before the prediction's). Matched labels are numbered in batch
        order (``labelled_window`` reads them back in that order).

        Args:
            labels: The batch; a :class:`LabelBatch` (what ``parse_label_rows`` returns) is read as is.
            now: The time that expiry is judged at (Unix seconds; default: the clock).

        Raises:
            StoreError: When the database read or write fails (nothing of the batch is recorded).
        """
        batch = LabelBatch.of(labels)
        now = time.time() if now is None else now
        first = _first_positions(batch.ids)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # the lookup and the writes see one state of the store
                found = self._lookup([batch.ids[i] for i in first] if first is not None else batch.ids)
                res, updates = self._classify(batch, first, found, now)
                if updates:
                    updates.sort(key=itemgetter(2))  # key order: neighbouring B-tree pages one after another
                    self._db.executemany("UPDATE predictions SET y = ?, ls = ? WHERE id = ?", updates)
                    self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('label_seq', ?)",
                                     (str(self._seq + len(updates)),))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"prediction store {self.path}: cannot join {len(batch)} labels ({exc}); "
                                 "nothing of the batch was recorded") from exc
            except BaseException:  # e.g. a label time that is not a number: no transaction is left open
                self._rollback()
                raise
            self._seq += len(updates)
            self.labelled += len(updates)
        return res

    def _lookup(self, ids: list[str]) -> list[list[Any]]:
        """``[index in ids, t, y, v, p, yhat, s]`` of the stored ones among distinct ``ids``, in ``ids`` order
        (all integers; ``y`` and ``s`` may be ``None``)."""
        try:
            param = orjson.dumps(ids).decode()
        except orjson.JSONEncodeError:  # an id that is not valid UTF-8 (a lone surrogate): it matches nothing
            param = json.dumps(ids)
        rows: list[list[Any]] = orjson.loads(self._db.execute(_LOOKUP, (param,)).fetchone()[0])
        rows.sort()  # already in order (json_each drives the join); a cheap pass that makes it certain
        return rows

    def _classify(self, batch: LabelBatch, first: list[int] | None,
                  found: list[list[Any]], now: float) -> tuple[LabelResult, list[tuple[int, int, str]]]:
        """Outcomes of a batch given its stored rows; the ``(label, seq, id)`` updates of the matched ones."""
        res = LabelResult()
        ids, labels, times = batch.ids, batch.labels, batch.times
        max_age = self.max_age_seconds
        seq = self._seq
        updates: list[tuple[int, int, str]] = []
        delays, matched_rows = res.delays, res.matched_rows
        duplicate = invalid = expired = 0
        for k, t, y, v, p, yhat, s in found:
            i = k if first is None else first[k]
            lt = times[i]
            if y is not None:
                duplicate += 1
            elif lt < t:
                invalid += 1
            elif lt - t > max_age or now - t > max_age:
                expired += 1
            else:
                seq += 1
                updates.append((labels[i], seq, ids[i]))
                delays.append(lt - t)
                matched_rows.append((v, p / P_SCALE, yhat, labels[i], s))
        distinct = len(ids) if first is None else len(first)
        res.counts.update(matched=len(updates), unknown=distinct - len(found),
                          duplicate=duplicate + len(ids) - distinct, expired=expired, invalid=invalid)
        return res, updates

    # -- reads ---------------------------------------------------------------------------------------

    def labelled_window(self, version: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int | None]]:
        """The last ``rows`` labelled predictions of ``version`` (oldest first).

        Returns:
            ``(proba, predicted, label, slice codes)``.
        """
        with self._lock:
            got = self._db.execute(
                "SELECT p, yhat, y, s FROM predictions WHERE v = ? AND y IS NOT NULL ORDER BY ls DESC LIMIT ?",
                (version, rows)).fetchall()
        got.reverse()
        if not got:
            return np.zeros(0), np.zeros(0, "int64"), np.zeros(0, "int64"), []
        p, yhat, y, s = zip(*got, strict=True)
        return (np.asarray(p, dtype="float64") / P_SCALE, np.asarray(yhat, dtype="int64"),
                np.asarray(y, dtype="int64"), list(s))

    def recent_predictions(self, version: int, rows: int) -> np.ndarray:
        """P(class 1) of the last ``rows`` stored predictions of ``version`` (for estimated performance)."""
        with self._lock:
            got = self._db.execute("SELECT p FROM predictions WHERE v = ? ORDER BY t DESC LIMIT ?",
                                   (version, rows)).fetchall()
        return np.asarray([r[0] for r in got], dtype="float64") / P_SCALE

    def get(self, pid: str) -> dict[str, object] | None:
        """One stored prediction as a dict (``None`` when not stored)."""
        with self._lock:
            row = self._db.execute("SELECT v, p, yhat, t, s, y FROM predictions WHERE id = ?", (pid,)).fetchone()
        if row is None:
            return None
        v, p, yhat, t, s, y = row
        return {"id": pid, "version": v, "proba": p / P_SCALE, "predicted": yhat, "time": t,
                "slices": self.slice_values(s), "label": y}

    def count(self) -> tuple[int, int]:
        """``(stored, labelled)`` predictions."""
        return self.stored, self.labelled


def _first_positions(ids: list[str]) -> list[int] | None:
    """Positions of each id's first occurrence, in batch order; ``None`` when every id occurs once."""
    if len(set(ids)) == len(ids):
        return None
    first: dict[str, int] = {}
    for i, pid in enumerate(ids):
        first.setdefault(pid, i)
    return list(first.values())
