"""Helpers for the data validation tests: tiny batches, a reference profile, HTML report parsing."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from ctloop.config import ValidationConfig
from ctloop.datagen import generate_day
from ctloop.profile import Profile, compute_profile
from ctloop.project import example_schema
from ctloop.schema import Schema

DAY = dt.date(2026, 1, 1)


def batch(rows: int = 600, seed: int = 0, day: dt.date = DAY) -> pd.DataFrame:
    """A clean batch of the synthetic stream (with the ``date`` column, as ingest writes it)."""
    frame = generate_day(day, rows, seed)
    frame["date"] = day.isoformat()
    return frame


def schema() -> Schema:
    """The example project's reviewed schema."""
    return example_schema()


def reference(seed: int = 1) -> Profile:
    """A reference profile computed the way the trainer does it (another seed than :func:`batch`)."""
    s = schema()
    return compute_profile(batch(1200, seed), s.numeric_features, s.categorical_features, s.target)


def vcfg(**kw: object) -> ValidationConfig:
    """Validation thresholds (defaults, with overrides)."""
    return ValidationConfig.model_validate({"min_rows": 100, **kw})


class ReportParser(HTMLParser):
    """Collects the check rows ``(status, check, column)`` and feature sections of an HTML report."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str, str]] = []
        self.features: list[str] = []
        self.svgs = 0
        self.status = ""
        self._in_status = False
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and a.get("data-check"):
            self.rows.append((a.get("class") or "", a["data-check"] or "", a.get("data-column") or ""))
        if tag == "section" and "feature" in (a.get("class") or ""):
            self.features.append((a.get("id") or "").removeprefix("feature-"))
        if tag == "svg":
            self.svgs += 1
        self._in_status = a.get("id") == "status"

    def handle_data(self, data: str) -> None:
        if self._in_status:
            self.status += data

    def handle_endtag(self, tag: str) -> None:
        self._in_status = False


def parse_report(path: str | Path) -> ReportParser:
    """Parse an HTML validation report."""
    p = ReportParser()
    p.feed(Path(path).read_text())
    p.close()
    return p
