"""Policy spec grammar of ``ctloop backtest --policy`` and the recommendation rule."""

from __future__ import annotations

import pytest

from ctloop.backtest.results import recommend
from ctloop.backtest.spec import parse_spec, policy_config
from ctloop.config import ProjectConfig
from ctloop.errors import BacktestError

pytestmark = pytest.mark.unit


def test_specs_parse() -> None:
    assert parse_spec("never").kind == "never"
    assert parse_spec("schedule:7d").every_days == 7
    assert parse_spec("volume:5000").volume_rows == 5000
    s = parse_spec("drift:drift.psi_threshold=0.1,drift.consecutive_windows=3")
    assert (s.kind, s.overrides) == ("drift", {"drift.psi_threshold": 0.1, "drift.consecutive_windows": 3})
    v = parse_spec("volume:800:triggers.cooldown_minutes=0")
    assert (v.volume_rows, v.overrides) == (800, {"triggers.cooldown_minutes": 0})


@pytest.mark.parametrize(("spec", "named"), [
    ("nightly", "'nightly'"),
    ("schedule", "schedule needs a period"),
    ("schedule:7x", "'7x'"),
    ("volume:-3", "'-3'"),
    ("drift:0.1", "takes no argument"),
    ("drift:psi_threshold", "takes no argument"),
    ("drift:drift.psi_threshold", "takes no argument"),
    ("drift:psi=0.1", "'psi=0.1'"),
    ("schedule:7d:a.b=1:c.d=2", "too many"),
])
def test_bad_specs_name_the_bad_part(spec: str, named: str) -> None:
    with pytest.raises(BacktestError, match="--policy") as info:
        parse_spec(spec)
    assert named in str(info.value)
    assert info.value.exit_code == 2


def test_overrides_are_validated_like_the_config(cfg: ProjectConfig) -> None:
    tuned = policy_config(cfg, parse_spec("drift:drift.psi_threshold=0.1"))
    assert tuned.drift.psi_threshold == 0.1 and cfg.drift.psi_threshold == 0.2
    with pytest.raises(BacktestError, match=r"drift\.psi_treshold: unknown key"):
        policy_config(cfg, parse_spec("drift:drift.psi_treshold=0.1"))
    with pytest.raises(BacktestError, match=r"drift\.consecutive_windows"):
        policy_config(cfg, parse_spec("drift:drift.consecutive_windows=0"))
    with pytest.raises(BacktestError, match="estimated_min"):
        policy_config(cfg, parse_spec("estimated"))


def test_recommendation_is_the_cheapest_within_tolerance() -> None:
    rows = [
        {"policy": "never", "mean_accuracy": 0.60, "retrains": 0, "training_seconds": 0.0},
        {"policy": "schedule:1d", "mean_accuracy": 0.80, "retrains": 9, "training_seconds": 20.0},
        {"policy": "drift", "mean_accuracy": 0.797, "retrains": 2, "training_seconds": 5.0},
    ]
    rec = recommend(rows, 0.005)
    assert rec is not None and rec["policy"] == "drift" and rec["tolerance"] == 0.005
    strict = recommend(rows, 0.001)
    assert strict is not None and strict["policy"] == "schedule:1d"
