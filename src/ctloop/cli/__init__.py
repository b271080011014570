"""The ``ctloop`` command line (typer + rich): ``app`` and the ``main`` entry point.

``ctloop.cli.app`` wires the command groups; each group lives in its own module here
(``project``, ``schema``, ``pipeline``, ``registry``, ``serve``, ``watch``, ``triggers``, ``labels``,
``status``, ``check``, ``backtest``, ``demo``, ``manifests``).
"""

from ctloop.cli.app import app, main

__all__ = ["app", "main"]
