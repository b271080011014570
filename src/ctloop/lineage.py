"""Lineage facts recorded with every registered version: trigger cause, data, config and code."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from ctloop.errors import ConfigError

TRIGGER_CAUSES = ("manual", "schedule", "volume", "drift", "alert", "performance")


def parse_trigger(trigger_json: str) -> dict[str, Any]:
    """Parse the pipeline's ``trigger_json`` (``{"cause": ..., ...}``); empty means manual.

    Raises:
        ConfigError: Not a JSON object, or no string ``cause``.
    """
    if not trigger_json:
        return {"cause": "manual"}
    try:
        trigger = json.loads(trigger_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"trigger_json: not valid JSON ({exc}); expected an object like "
                          f"{{\"cause\": \"manual\"}}") from exc
    if not isinstance(trigger, dict) or not isinstance(trigger.get("cause"), str) or not trigger["cause"]:
        raise ConfigError(f"trigger_json: expected an object with a string 'cause' "
                          f"({', '.join(TRIGGER_CAUSES)}), got {trigger_json[:200]!r}")
    return trigger


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """The package version and a SHA-256 over the ctloop sources that produced the model."""
    from ctloop import __version__

    root = Path(__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return {"ctloop": __version__, "source_sha256": h.hexdigest()}


def describe_trigger(trigger: dict[str, Any] | None) -> str:
    """One line: the cause and its identifying details (alert fingerprint, schedule, rows, reason)."""
    if not trigger:
        return "unknown"
    details = [f"{k}={v}" for k, v in sorted(trigger.items()) if k != "cause" and v not in (None, "")]
    return str(trigger.get("cause", "unknown")) + (f" ({', '.join(details)})" if details else "")
