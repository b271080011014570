"""The command line is a package, one module per command group, and ``--help`` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer.main

import ctloop.cli
from tests.conftest import run_cli

# command (or group) -> the module of ctloop.cli that owns it
OWNERS = {
    "init": "project", "datagen": "project", "config-reference": "project",
    "schema": "schema", "run": "pipeline", "compile": "pipeline", "registry": "registry",
    "serve": "serve", "watch": "watch", "trigger": "triggers", "cancel": "triggers", "triggers": "triggers",
    "labels": "labels", "status": "status", "check": "check", "backtest": "backtest",
    "demo": "demo", "manifests": "manifests",
}


def _owner(cmd: object) -> str:
    """The module a top-level command's callback, or a group's first subcommand, is defined in."""
    callback = getattr(cmd, "callback", None)
    if callback is None or getattr(cmd, "commands", None):
        callback = next(iter(cmd.commands.values())).callback  # type: ignore[attr-defined]
    return callback.__module__


def test_every_command_lives_in_its_group_module() -> None:
    group = typer.main.get_command(ctloop.cli.app)
    commands = group.commands  # type: ignore[attr-defined]
    assert set(commands) == set(OWNERS)
    wrong = {name: _owner(cmd) for name, cmd in commands.items()
             if _owner(cmd) != f"ctloop.cli.{OWNERS[name]}"}
    assert wrong == {}


def test_no_flat_cli_modules_are_left() -> None:
    src = Path(ctloop.cli.__file__).parents[1]
    assert sorted(p.name for p in src.glob("cli*.py")) == []
    modules = {p.stem for p in Path(ctloop.cli.__file__).parent.glob("*.py")}
    assert set(OWNERS.values()) <= modules


def test_module_entry_point_and_help_import_no_heavy_libraries() -> None:
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    for name in ("run", "status", "check", "backtest", "labels"):
        assert f" {name} " in out.stdout
    code = ("import sys, ctloop.cli; heavy = [m for m in ('kfp', 'pandas', 'sklearn', 'torch') if m in sys.modules];"
            "print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
