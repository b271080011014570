"""Rich consoles that stay grep-able when piped: no wrapping at 80 columns in CI logs or files."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console

PIPED_WIDTH = 1000


def piped_width(stream: TextIO) -> int | None:
    """The width for ``stream``: ``None`` (the terminal's own) on a terminal; ``COLUMNS`` when set;
    else wide enough that tables and single-line facts never wrap."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return None
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) > 0 else PIPED_WIDTH


def make_console(stderr: bool = False, **kwargs: object) -> Console:
    """A console on stdout (or stderr) that does not wrap when its stream is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=piped_width(stream), **kwargs)  # type: ignore[arg-type]
