"""Trigger sources that the service evaluates itself: new-data volume and the cron schedule."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import pyarrow.parquet as pq
from croniter import croniter

from ctloop.config import ProjectConfig
from ctloop.data import _fs, list_partitions
from ctloop.errors import DataError, TriggerError
from ctloop.registry import Registry
from ctloop.triggers.policy import Trigger


@dataclass(frozen=True)
class VolumeCount:
    """Labelled rows newer than the champion's data watermark."""

    rows: int
    watermark: str | None
    champion: int | None
    days: int


def champion_watermark(cfg: ProjectConfig) -> tuple[int | None, str | None]:
    """The champion version and the last data day it was trained on (``None`` without a champion)."""
    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    version = reg.alias("champion")
    if version is None:
        return None, None
    return version, reg.get(version).metadata.get("data", {}).get("last_day")


def count_new_rows(cfg: ProjectConfig) -> VolumeCount:
    """Count rows with a label in partitions after the champion's watermark (all rows without one).

    Raises:
        DataError: When the source cannot be listed or a parquet file cannot be read.
    """
    champion, watermark = champion_watermark(cfg)
    after = dt.date.fromisoformat(watermark) if watermark else None
    fs, _root = _fs(cfg.data.source)
    rows = days = 0
    for part in list_partitions(cfg.data.source):
        if after is not None and part.day <= after:
            continue
        days += 1
        for f in part.files:
            try:
                table = pq.read_table(io.BytesIO(fs.cat_file(f)), columns=[cfg.data.target])
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(
                    f"{f}: cannot read column {cfg.data.target!r} to count new rows ({exc})"
                ) from exc
            col = table.column(cfg.data.target)
            rows += len(col) - col.null_count
    return VolumeCount(rows, watermark, champion, days)


def volume_trigger(cfg: ProjectConfig, count: VolumeCount | None = None) -> Trigger | None:
    """A volume trigger when ``triggers.volume_rows`` new labelled rows have arrived, else ``None``.

    The episode is the champion, its watermark and how many multiples of the threshold arrived, so the
    same backlog fires once, and a further ``volume_rows`` rows fire again.
    """
    need = cfg.triggers.volume_rows
    if need is None:
        return None
    c = count or count_new_rows(cfg)
    if c.rows < need:
        return None
    step = c.rows // need
    return Trigger(
        "volume",
        cfg.name,
        episode=f"champion={c.champion}|watermark={c.watermark}|x{step}",
        reason=f"{c.rows} new labelled rows since {c.watermark or 'the beginning'} "
        f"(threshold {need}, triggers.volume_rows)",
        detail={"rows": c.rows, "watermark": c.watermark, "champion": c.champion, "days": c.days},
    )


def schedule_slot(expr: str, now: dt.datetime) -> dt.datetime:
    """The most recent cron fire time at or before ``now`` (UTC)."""
    now = now.astimezone(dt.UTC)
    probe = now + dt.timedelta(seconds=1) if now.microsecond == 0 else now
    slot = croniter(expr, probe).get_prev(dt.datetime)
    return slot.astimezone(dt.UTC)


def schedule_trigger(cfg: ProjectConfig, now: dt.datetime, reason: str = "") -> Trigger:
    """The schedule trigger for the slot ``now`` falls in (the watcher and a CronJob agree on it).

    Raises:
        TriggerError: When no ``triggers.schedule`` is configured.
    """
    expr = cfg.triggers.schedule
    if not expr:
        raise TriggerError("a schedule trigger was requested but triggers.schedule is not set in the config")
    slot = schedule_slot(expr, now)
    return Trigger(
        "schedule",
        cfg.name,
        episode=f"{expr}|{slot.isoformat()}",
        reason=reason or f"schedule {expr!r} slot {slot.isoformat()}",
        detail={"slot": slot.isoformat(), "cron": expr},
    )


def next_slot(expr: str, after: dt.datetime) -> dt.datetime:
    """The next cron fire time strictly after ``after`` (UTC)."""
    return croniter(expr, after.astimezone(dt.UTC)).get_next(dt.datetime).astimezone(dt.UTC)
