"""The trigger ledger: every trigger, fired or suppressed, with its reason, run and outcome (SQLite, WAL).

Each decision is taken inside one ``BEGIN IMMEDIATE`` transaction, so concurrent requests (threads or
processes) see each other's decisions, and a decision is either fully on disk or absent after a crash
(``kill -9``). A partial unique index on the idempotency key of *fired* rows makes a second fired row
for the same key impossible, whatever the caller does.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctloop.errors import TriggerError, TriggerNotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    model TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('fired', 'suppressed')),
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    run_id TEXT,
    run_status TEXT,
    external_id TEXT,
    version INTEGER,
    outcome_at TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS fired_once ON triggers(idempotency_key) WHERE decision = 'fired';
CREATE INDEX IF NOT EXISTS by_model ON triggers(model, decision, received_at);
"""

ACTIVE_STATUSES = ("pending", "submitted", "running")


def utcnow() -> dt.datetime:
    """The current time in UTC (the default clock)."""
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    """A sortable UTC timestamp (microseconds, ``+00:00``)."""
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds")


@dataclass
class LedgerRow:
    """One recorded trigger."""

    id: int
    received_at: str
    source: str
    model: str
    decision: str
    reason_code: str
    reason: str
    idempotency_key: str
    run_id: str | None = None
    run_status: str | None = None
    external_id: str | None = None
    version: int | None = None
    outcome_at: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


class Ledger:
    """The SQLite ledger file (one per watcher; on a PVC on a cluster)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise TriggerError(
                f"triggers.ledger {self.path}: cannot open the ledger ({exc}); "
                "check the folder exists and is writable"
            ) from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction (``BEGIN IMMEDIATE``), committed on success."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @staticmethod
    def _row(r: sqlite3.Row) -> LedgerRow:
        d = dict(r)
        d["detail"] = json.loads(d.get("detail") or "{}")
        return LedgerRow(**d)

    def insert(
        self,
        conn: sqlite3.Connection,
        *,
        received_at: dt.datetime,
        source: str,
        model: str,
        decision: str,
        reason_code: str,
        reason: str,
        idempotency_key: str,
        run_id: str | None = None,
        run_status: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Insert one row inside an open transaction; return its id."""
        cur = conn.execute(
            "INSERT INTO triggers (received_at, source, model, decision, reason_code, reason,"
            " idempotency_key, run_id, run_status, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                iso(received_at),
                source,
                model,
                decision,
                reason_code,
                reason,
                idempotency_key,
                run_id,
                run_status,
                json.dumps(detail or {}, sort_keys=True, default=str),
            ),
        )
        return int(cur.lastrowid or 0)

    def fired_with_key(self, conn: sqlite3.Connection, key: str) -> LedgerRow | None:
        """The fired row holding this idempotency key, if any."""
        r = conn.execute(
            "SELECT * FROM triggers WHERE decision='fired' AND idempotency_key=?", (key,)
        ).fetchone()
        return self._row(r) if r else None

    def active_run(self, conn: sqlite3.Connection | None, model: str) -> LedgerRow | None:
        """The model's fired row whose run is still pending, submitted or running."""
        c = conn or self._conn
        with self._lock:
            r = c.execute(
                "SELECT * FROM triggers WHERE decision='fired' AND model=? AND run_status IN (?,?,?)"
                " ORDER BY id DESC LIMIT 1",
                (model, *ACTIVE_STATUSES),
            ).fetchone()
        return self._row(r) if r else None

    def last_fired(self, conn: sqlite3.Connection | None, model: str) -> LedgerRow | None:
        """The model's most recent fired row."""
        c = conn or self._conn
        with self._lock:
            r = c.execute(
                "SELECT * FROM triggers WHERE decision='fired' AND model=? ORDER BY id DESC LIMIT 1", (model,)
            ).fetchone()
        return self._row(r) if r else None

    def fired_since(self, conn: sqlite3.Connection | None, model: str, since: dt.datetime) -> int:
        """How many runs were fired for the model since ``since``."""
        c = conn or self._conn
        with self._lock:
            r = c.execute(
                "SELECT COUNT(*) FROM triggers WHERE decision='fired' AND model=? AND received_at>=?",
                (model, iso(since)),
            ).fetchone()
        return int(r[0])

    def set_run(
        self,
        trigger_id: int,
        *,
        run_status: str,
        external_id: str | None = None,
        version: int | None = None,
        error: str | None = None,
        now: dt.datetime | None = None,
        unless: Collection[str] = (),
        detail: dict[str, Any] | None = None,
    ) -> bool:
        """Record a run's progress or outcome on its trigger row.

        Args:
            unless: Leave the row alone when its run status is one of these (checked in the same
                transaction as the write, so a concurrent writer cannot slip in between).
            detail: Keys merged into the row's ``detail``.

        Returns:
            Whether the row was written.

        Raises:
            TriggerNotFoundError: No row with this id.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT run_status, detail FROM triggers WHERE id=?", (trigger_id,)).fetchone()
            if row is None:
                raise TriggerNotFoundError(f"ledger {self.path}: no trigger #{trigger_id}")
            if row["run_status"] in unless:
                return False
            merged = {**json.loads(row["detail"] or "{}"), **(detail or {})}
            if error:
                merged["error"] = error
            conn.execute(
                "UPDATE triggers SET run_status=?, external_id=COALESCE(?, external_id),"
                " version=COALESCE(?, version), outcome_at=?, detail=? WHERE id=?",
                (
                    run_status,
                    external_id,
                    version,
                    iso(now or utcnow()),
                    json.dumps(merged, sort_keys=True, default=str),
                    trigger_id,
                ),
            )
        return True

    def get(self, trigger_id: int) -> LedgerRow:
        """One row by id."""
        with self._lock:
            r = self._conn.execute("SELECT * FROM triggers WHERE id=?", (trigger_id,)).fetchone()
        if r is None:
            raise TriggerNotFoundError(f"ledger {self.path}: no trigger #{trigger_id}")
        return self._row(r)

    def by_run(self, run_id: str) -> LedgerRow | None:
        """The fired row of a run id."""
        with self._lock:
            r = self._conn.execute(
                "SELECT * FROM triggers WHERE decision='fired' AND run_id=?", (run_id,)
            ).fetchone()
        return self._row(r) if r else None

    def rows(self, limit: int | None = None, decision: str | None = None) -> list[LedgerRow]:
        """Rows, newest first."""
        q = "SELECT * FROM triggers"
        args: list[Any] = []
        if decision:
            q += " WHERE decision=?"
            args.append(decision)
        q += " ORDER BY id DESC"
        if limit:
            q += " LIMIT ?"
            args.append(limit)
        with self._lock:
            return [self._row(r) for r in self._conn.execute(q, args).fetchall()]

    def active_rows(self) -> list[LedgerRow]:
        """Every fired row whose run is not finished (for recovery after a restart)."""
        with self._lock:
            rs = self._conn.execute(
                "SELECT * FROM triggers WHERE decision='fired' AND run_status IN (?,?,?) ORDER BY id",
                ACTIVE_STATUSES,
            ).fetchall()
        return [self._row(r) for r in rs]

    def counts(self) -> dict[str, int]:
        """Rows per ``decision:reason_code``."""
        with self._lock:
            rs = self._conn.execute(
                "SELECT decision, reason_code, COUNT(*) FROM triggers GROUP BY decision, reason_code"
            ).fetchall()
        return {f"{d}:{c}": int(n) for d, c, n in rs}

    def rows_with_status(self, run_status: str) -> list[LedgerRow]:
        """Every fired row whose run has this status, oldest first."""
        with self._lock:
            rs = self._conn.execute(
                "SELECT * FROM triggers WHERE decision='fired' AND run_status=? ORDER BY id", (run_status,)
            ).fetchall()
        return [self._row(r) for r in rs]
