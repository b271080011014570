"""Policy specs of ``ctloop backtest --policy``.

Grammar (one ``--policy`` per policy)::

    SPEC     := KIND [":" ARG] [":" OVERRIDES]
    KIND     := never | schedule | volume | drift | performance | estimated
    ARG      := <N>d          (schedule: retrain every N days, at the end of the day)
              | <N>           (volume: retrain after N new labelled rows since the last training window)
    OVERRIDES:= KEY=VALUE ("," KEY=VALUE)*     (dotted config paths, values parsed as YAML scalars)

Examples: ``never``, ``schedule:7d``, ``volume:5000``, ``drift``, ``drift:drift.psi_threshold=0.1``,
``performance:monitoring.performance.max_drop=0.03``, ``estimated:monitoring.performance.estimated_min=0.7``.
Overrides apply to that policy's copy of the project config and are validated like ``ctloop.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ctloop.config import ProjectConfig, parse_config
from ctloop.errors import BacktestError, ConfigError

KINDS = ("never", "schedule", "volume", "drift", "performance", "estimated")
_DAYS_RE = re.compile(r"^([1-9]\d*)d$")
_INT_RE = re.compile(r"^[1-9]\d*$")
_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")


@dataclass(frozen=True)
class PolicySpec:
    """One parsed ``--policy``: its kind, argument (days or rows) and config overrides."""

    text: str
    kind: str
    every_days: int | None = None
    volume_rows: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The spec as given (the policy's name in the results)."""
        return self.text


def _overrides(part: str, spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in part.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            raise BacktestError(f"--policy {spec!r}: {item!r} is not a config override KEY=VALUE with a dotted "
                                "key (e.g. drift.psi_threshold=0.1)")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise BacktestError(f"--policy {spec!r}: value of {key!r} is not a YAML scalar ({exc})") from exc
    return out


def parse_spec(text: str) -> PolicySpec:
    """Parse one policy spec.

    Raises:
        BacktestError: Naming the bad part (unknown kind, missing or malformed argument, bad override).
    """
    parts = text.strip().split(":")
    kind, rest = parts[0], parts[1:]
    if kind not in KINDS:
        raise BacktestError(f"--policy {text!r}: unknown policy {kind!r}; expected one of {', '.join(KINDS)}")
    arg = rest.pop(0) if rest and "=" not in rest[0] else None
    if len(rest) > 1:
        raise BacktestError(f"--policy {text!r}: too many ':' parts; overrides go in one part, comma-separated")
    overrides = _overrides(rest[0], text) if rest else {}
    every = volume = None
    if kind == "schedule":
        m = _DAYS_RE.match(arg or "")
        if not m:
            raise BacktestError(f"--policy {text!r}: schedule needs a period in days, e.g. schedule:7d "
                                f"(got {arg!r})")
        every = int(m.group(1))
    elif kind == "volume":
        if not _INT_RE.match(arg or ""):
            raise BacktestError(f"--policy {text!r}: volume needs a positive row count, e.g. volume:5000 "
                                f"(got {arg!r})")
        volume = int(arg or 0)
    elif arg is not None:
        raise BacktestError(f"--policy {text!r}: {kind} takes no argument (got {arg!r}); "
                            "config overrides are KEY=VALUE")
    return PolicySpec(text.strip(), kind, every, volume, overrides)


def _set(doc: dict[str, Any], key: str, value: Any, spec: str) -> None:
    node = doc
    *parents, leaf = key.split(".")
    for p in parents:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise BacktestError(f"--policy {spec!r}: {key!r}: {p!r} is not a config section")
        node = nxt
    node[leaf] = value


def policy_config(base: ProjectConfig, spec: PolicySpec) -> ProjectConfig:
    """The project config with the spec's overrides applied and validated.

    Raises:
        BacktestError: When an override names an unknown key or a bad value (the field path is named),
            or ``estimated`` has no ``monitoring.performance.estimated_min``.
    """
    raw = base.model_dump(mode="json", by_alias=True)
    for key, value in spec.overrides.items():
        _set(raw, key, value, spec.text)
    try:
        cfg = parse_config(raw, source=f"--policy {spec.text!r}")
    except ConfigError as exc:
        raise BacktestError(str(exc)) from exc
    if spec.kind == "estimated" and cfg.monitoring.performance.estimated_min is None:
        raise BacktestError(f"--policy {spec.text!r}: estimated needs monitoring.performance.estimated_min, e.g. "
                            "estimated:monitoring.performance.estimated_min=0.7")
    if spec.kind == "performance" and cfg.monitoring.performance.min is None \
            and cfg.monitoring.performance.max_drop is None:
        raise BacktestError(f"--policy {spec.text!r}: performance needs monitoring.performance.min or max_drop")
    return cfg
