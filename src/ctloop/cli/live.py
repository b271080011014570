"""A rich ``Live`` display for the CLI whose last line is always closed.

On a console that is not a terminal (output piped or captured), rich leaves the last rendered line of
a ``Live`` display open: no newline. The caller's next print closes it on success; an error raised
inside the display would be glued onto it (``…└───┘error: registry.uri …``). :func:`live_display`
closes the line when the block fails, so the error starts on its own line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console, RenderableType
from rich.live import Live


@contextlib.contextmanager
def live_display(renderable: RenderableType, console: Console, refresh_per_second: float = 4,
                 transient: bool = False) -> Iterator[Live]:
    """``rich.live.Live`` as a context manager that ends the display's last line when the block raises."""
    done = False
    try:
        with Live(renderable, console=console, refresh_per_second=refresh_per_second,
                  transient=transient) as live:
            yield live
        done = True
    finally:
        if not done and not transient and not console.is_terminal:
            console.line()
