"""Partitioned parquet data source (``date=YYYY-MM-DD/*.parquet``) read through fsspec."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ctloop.errors import DataError
from ctloop.ingest_types import TypeMismatch, raise_mismatches, table_mismatches
from ctloop.schema import Schema

PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
DATE_COLUMN = "date"


@dataclass(frozen=True)
class Partition:
    """One day of data: its date and the parquet files in it."""

    day: dt.date
    files: tuple[str, ...]


@dataclass
class Snapshot:
    """A window of the source read into memory, with where it came from."""

    frame: pd.DataFrame
    source: str
    days: list[dt.date]
    files: list[str]
    content_hash: str
    missing_days: list[dt.date] = field(default_factory=list)


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DataError(f"data.source {uri!r}: cannot open this storage ({exc})") from exc
    return fs, root.rstrip("/")


def list_partitions(uri: str) -> list[Partition]:
    """List the date partitions under ``uri``, oldest first.

    Raises:
        DataError: When the source does not exist or holds no ``date=YYYY-MM-DD`` partitions.
    """
    fs, root = _fs(uri)
    if not fs.exists(root):
        raise DataError(f"data.source {uri!r}: does not exist")
    parts = []
    for entry in fs.ls(root, detail=True):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        m = PARTITION_RE.match(name)
        if entry["type"] != "directory" or not m:
            continue
        try:
            day = dt.date.fromisoformat(m.group(1))
        except ValueError as exc:
            raise DataError(f"data.source {uri!r}: partition {name!r} is not a valid date") from exc
        files = sorted(
            f for f in fs.ls(entry["name"], detail=False) if f.endswith(".parquet") and "/." not in f
        )
        parts.append(Partition(day, tuple(files)))
    if not parts:
        raise DataError(f"data.source {uri!r}: empty, no 'date=YYYY-MM-DD' partitions found")
    return sorted(parts, key=lambda p: p.day)


def select_window(
    partitions: list[Partition], window_days: int, cutoff: dt.date | None = None
) -> tuple[list[Partition], list[dt.date]]:
    """Pick the partitions of the last ``window_days`` days up to ``cutoff`` (inclusive).

    Returns the chosen partitions and the days inside the window (from the first available day)
    that have no partition or no parquet file.
    """
    eligible = [p for p in partitions if cutoff is None or p.day <= cutoff]
    if not eligible:
        raise DataError(f"no partitions on or before cutoff {cutoff}")
    end = eligible[-1].day if cutoff is None else cutoff
    start = end - dt.timedelta(days=window_days - 1)
    chosen = [p for p in eligible if start <= p.day <= end and p.files]
    if not chosen:
        raise DataError(f"no parquet files in window {start}..{end}")
    present = {p.day for p in chosen}
    first = max(start, chosen[0].day)
    missing = [
        first + dt.timedelta(days=i)
        for i in range((end - first).days + 1)
        if first + dt.timedelta(days=i) not in present
    ]
    return chosen, missing


def read_window(
    uri: str,
    window_days: int,
    cutoff: dt.date | None = None,
    allow_missing_days: bool = False,
    target: str | None = None,
    schema: Schema | None = None,
) -> Snapshot:
    """Read the training window from the source into one frame with a ``date`` column.

    The content hash covers every file's relative name and bytes, so the same data gives the same hash.
    With ``schema``, every file's column types are checked against it before anything is combined.

    Raises:
        PartitionTypeError: With ``schema``: a column's type in some file differs from the schema
            (a :class:`DataError`; names each partition, column, both types and a sample value).
        DataError: Empty source, missing partitions (unless allowed), unreadable parquet, or a missing
            target column; the message names the file or column.
    """
    fs, root = _fs(uri)
    try:
        chosen, missing = select_window(list_partitions(uri), window_days, cutoff)
    except DataError as exc:
        if str(exc).startswith("data.source"):
            raise
        raise DataError(f"data.source {uri!r}: {exc}") from exc
    if missing and not allow_missing_days:
        days = ", ".join(d.isoformat() for d in missing[:10])
        raise DataError(
            f"data.source {uri!r}: missing partitions for {days}"
            f"{' …' if len(missing) > 10 else ''} (set data.allow_missing_days: true to accept gaps)"
        )
    digest = hashlib.sha256()
    frames = []
    files = []
    mismatches: list[TypeMismatch] = []
    for part in chosen:
        for f in part.files:
            try:
                blob = fs.cat_file(f)
                table = pq.read_table(io.BytesIO(blob))
            except (OSError, pa.ArrowException) as exc:
                raise DataError(f"{f}: unreadable parquet file ({exc})") from exc
            rel = f[len(root):].lstrip("/")
            if schema is not None:
                partition, _, name = rel.rpartition("/")
                mismatches += table_mismatches(table, schema, partition, name)
                if mismatches:
                    continue  # keep scanning to report every bad file; nothing is combined
            digest.update(rel.encode() + b"\0" + hashlib.sha256(blob).digest())
            frame = table.to_pandas()
            frame[DATE_COLUMN] = part.day.isoformat()
            frames.append(frame)
            files.append(f)
    raise_mismatches(uri, mismatches)
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise DataError(f"data.source {uri!r}: the window holds no rows")
    if target is not None and target not in frame.columns:
        raise DataError(
            f"data.source {uri!r}: target column {target!r} (data.target) is missing; "
            f"columns are {sorted(c for c in frame.columns if c != DATE_COLUMN)}"
        )
    return Snapshot(
        frame=frame,
        source=uri,
        days=[p.day for p in chosen],
        files=files,
        content_hash=digest.hexdigest(),
        missing_days=missing,
    )
