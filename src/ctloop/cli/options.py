"""Options and helpers shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ctloop.console import make_console

if TYPE_CHECKING:
    from ctloop.config import ProjectConfig

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path to ctloop.yaml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]


def console(json_mode: bool = False) -> Console:
    """The command's console; with ``--json`` the human output goes to stderr so stdout stays JSON."""
    return make_console(stderr=json_mode)


def load(config: Path) -> ProjectConfig:
    """Load and validate ``ctloop.yaml`` (imported lazily: ``--help`` stays fast)."""
    from ctloop.config import load_config

    return load_config(config)
