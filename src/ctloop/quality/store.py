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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ctloop.errors import StoreError

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


class Label(NamedTuple):
    """One validated label: the prediction id, 0/1, and when it became known (Unix seconds)."""

    id: str
    label: int
    time: float


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
        ``invalid`` (the label's time is before the prediction's).

        Raises:
            StoreError: When the database write fails (nothing of the batch is recorded).
        """
        res = LabelResult()
        counts = res.counts
        now = time.time() if now is None else now
        with self._lock:
            found: dict[str, tuple[int, int, int, int, int | None, int | None]] = {}
            ids = sorted({lab.id for lab in labels})  # key order: neighbouring B-tree pages, fewer page reads
            try:  # one query for the batch: the ids as one JSON parameter, joined on the primary key
                q = ("SELECT p.id, v, p, yhat, t, s, y FROM json_each(?) AS j "
                     "JOIN predictions AS p ON p.id = j.value")
                for pid, v, p, yhat, t, s, y in self._db.execute(q, (json.dumps(ids),)):
                    found[pid] = (v, p, yhat, t, s, y)
            except sqlite3.Error as exc:
                raise StoreError(f"prediction store {self.path}: cannot read predictions ({exc})") from exc
            updates: list[tuple[int, int, str]] = []
            seen: set[str] = set()
            seq = self._seq
            for lab in labels:
                row = found.get(lab.id)
                if lab.id in seen:
                    counts["duplicate"] += 1
                    continue
                seen.add(lab.id)
                if row is None:
                    counts["unknown"] += 1
                    continue
                v, p, yhat, t, s, y = row
                if y is not None:
                    counts["duplicate"] += 1
                elif lab.time < t:
                    counts["invalid"] += 1
                elif lab.time - t > self.max_age_seconds or now - t > self.max_age_seconds:
                    counts["expired"] += 1
                else:
                    seq += 1
                    updates.append((lab.label, seq, lab.id))
                    res.delays.append(lab.time - t)
                    res.matched_rows.append((v, p / P_SCALE, yhat, lab.label, s))
                    counts["matched"] += 1
            if updates:
                updates.sort(key=lambda u: u[2])
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany("UPDATE predictions SET y = ?, ls = ? WHERE id = ?", updates)
                    self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('label_seq', ?)", (str(seq),))
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise StoreError(f"prediction store {self.path}: cannot record {len(updates)} labels "
                                     f"({exc}); nothing of the batch was recorded") from exc
                self._seq = seq
                self.labelled += len(updates)
        return res

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
