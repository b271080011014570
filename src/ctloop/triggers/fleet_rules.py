"""Fleet mode (``drift.aggregation: prometheus``): recording rules that merge every watcher replica's counts.

Rendered from the same config as the alert. Over the last ``drift.fleet_window`` (time, not rows) they
compute, per ``(model, version, feature)``: the rows counted by all replicas, PSI and JS distance against
the reference shares, the row-count-scaled threshold, a 0/1 drifted flag, and per ``(model, version)``
the drifted share and the minimum row count. The drift alert then reads :data:`SHARE`.

The window's counts are the counters' *unextrapolated* increase, ``x - (x offset W or x * 0)``
(``x * 0`` for a series younger than the window: every counter starts at zero when a watcher starts
following a version). Prometheus' ``increase()`` would scale each replica's counts by its own
extrapolation factor (it depends on that target's scrape times), and PSI over such a mix is not the PSI
of the rows. A series with a counter reset inside the window (a restarted replica) falls back to
``increase()`` until the reset leaves the window.
"""

from __future__ import annotations

from typing import Any

from ctloop.config import ProjectConfig
from ctloop.drift.stats import EPS
from ctloop.watcher.fleet import (
    BIN_ROWS,
    REFERENCE_ROWS,
    REFERENCE_SHARE,
    THRESHOLD_COEFFICIENT,
    THRESHOLD_FLOOR,
)

BIN_WINDOW = "ctloop:drift_bin_rows:window"
FEATURE_ROWS = "ctloop:drift_feature_rows:window"
MIN_ROWS = "ctloop:drift_min_rows:window"
BIN_SHARE = "ctloop:drift_bin_share:window"
REF_SHARE = "ctloop:drift_reference_share:max"
PSI = "ctloop:drift_psi:window"
JS = "ctloop:drift_js:window"
THRESHOLD = "ctloop:drift_threshold:window"
DRIFTED = "ctloop:drift_feature_drifted:window"
SHARE = "ctloop:drift_share:window"
BY_BIN = "model, version, feature, bin"
BY_FEATURE = "model, version, feature"
BY_VERSION = "model, version"


def fleet_mode(cfg: ProjectConfig) -> bool:
    """Whether the drift verdict comes from Prometheus (``drift.aggregation: prometheus``)."""
    return cfg.drift.aggregation == "prometheus"


def _window_counts(sel: str, window: str) -> str:
    counter = f"{BIN_ROWS}_total{sel}"
    exact = f"({counter} - ({counter} offset {window} or {counter} * 0))"
    return (f"sum by ({BY_BIN}) ({exact} and (resets({counter}[{window}]) == 0) "
            f"or increase({counter}[{window}]))")


def _psi() -> str:
    a, e = f"clamp_min({BIN_SHARE}, {EPS:g})", f"clamp_min({REF_SHARE}, {EPS:g})"
    return f"sum by ({BY_FEATURE}) (({a} - {e}) * ln({a} / {e}))"


def _js() -> str:
    m = f"(0.5 * ({BIN_SHARE} + {REF_SHARE}))"

    def kl(x: str) -> str:
        return f"sum by ({BY_FEATURE}) (({x} > 0) * log2(({x} > 0) / {m}))"

    return f"sqrt(clamp_max(clamp_min(0.5 * {kl(BIN_SHARE)} + 0.5 * {kl(REF_SHARE)}, 0), 1))"


def _threshold(sel: str, method: str) -> str:
    msel = sel[:-1] + f', method="{method}"}}'
    coef = f"max by ({BY_FEATURE}) ({THRESHOLD_COEFFICIENT}{msel})"
    floor = f"max by ({BY_FEATURE}) ({THRESHOLD_FLOOR}{msel})"
    inv = (f"(1 / {FEATURE_ROWS} + on ({BY_VERSION}) group_left () "
           f"(1 / max by ({BY_VERSION}) ({REFERENCE_ROWS}{sel})))")
    scaled = f"{coef} * {inv}" if method == "psi" else f"{coef} * sqrt{inv}"
    return f"({scaled} >= {floor}) or {floor}"


def recording_rules(cfg: ProjectConfig) -> list[dict[str, Any]]:
    """The recording rules of the fleet verdict (one model), in evaluation order."""
    sel = f'{{model="{cfg.name}"}}'
    d = cfg.drift
    score = PSI if d.method == "psi" else JS
    return [
        {"record": BIN_WINDOW, "expr": _window_counts(sel, d.fleet_window)},
        {"record": FEATURE_ROWS, "expr": f"sum by ({BY_FEATURE}) ({BIN_WINDOW})"},
        {"record": MIN_ROWS, "expr": f"min by ({BY_VERSION}) ({FEATURE_ROWS})"},
        {"record": BIN_SHARE,
         "expr": f"{BIN_WINDOW} / on ({BY_FEATURE}) group_left () ({FEATURE_ROWS} > 0)"},
        {"record": REF_SHARE, "expr": f"max by ({BY_BIN}) ({REFERENCE_SHARE}{sel})"},
        {"record": PSI, "expr": _psi()},
        {"record": JS, "expr": _js()},
        {"record": THRESHOLD, "expr": _threshold(sel, d.method)},
        {"record": DRIFTED,
         "expr": f"({score} > bool {THRESHOLD}) * on ({BY_VERSION}) group_left () "
                 f"({MIN_ROWS} >= bool {d.min_rows})"},
        {"record": SHARE, "expr": f"avg by ({BY_VERSION}) ({DRIFTED})"},
    ]


def fleet_rule_groups(cfg: ProjectConfig) -> list[dict[str, Any]]:
    """The recording-rule group in fleet mode; nothing in local mode."""
    if not fleet_mode(cfg):
        return []
    return [{"name": f"ctloop-{cfg.name}-fleet", "interval": cfg.triggers.evaluation_interval,
             "rules": recording_rules(cfg)}]
