"""Gate policy: absolute bounds, beat-the-champion deltas, per-slice minimums, infra check."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ctloop.config import GateConfig, parse_config
from ctloop.datagen import DriftSpec, generate_day
from ctloop.errors import ConfigError
from ctloop.evaluate import ChampionEval, decide, decision_from_dict, infra_check, run_gate
from ctloop.project import example_schema
from ctloop.train import train_model

pytestmark = pytest.mark.unit

GOOD = {"roc_auc": 0.80, "accuracy": 0.75, "log_loss": 0.45, "rows": 500.0}


def gate(**kw: object) -> GateConfig:
    return GateConfig.model_validate({"min_metric": {"roc_auc": 0.7}, "max_metric": {"log_loss": 0.7}, **kw})


def test_no_champion_only_absolute_checks_and_says_so() -> None:
    d = decide(GOOD, gate(), recent_metrics=GOOD, champion=None)
    assert d.passed
    assert [c.name for c in d.checks] == ["min_roc_auc", "max_log_loss"]
    assert any("no champion yet" in n for n in d.notes)


def test_worse_than_champion_on_recent_slice_is_rejected_with_reason() -> None:
    champ = ChampionEval(3, metrics={**GOOD, "roc_auc": 0.79}, recent_metrics={**GOOD, "roc_auc": 0.85})
    d = decide(GOOD, gate(), recent_metrics={**GOOD, "roc_auc": 0.70}, champion=champ)
    assert not d.passed
    failed = {c.name: c for c in d.failed}
    assert set(failed) == {"beat_champion_recent_roc_auc"}
    check = failed["beat_champion_recent_roc_auc"]
    assert check.value == pytest.approx(-0.15)
    assert "recent slice" in check.reason and "does not beat" in check.reason and "v3" in check.reason
    holdout = next(c for c in d.checks if c.name == "beat_champion_holdout_roc_auc")
    assert holdout.passed and holdout.value == pytest.approx(0.01)
    md = d.markdown()
    assert "REJECTED" in md and "champion v3 (recent)" in md and check.reason in md


def test_delta_and_log_loss_direction() -> None:
    g = gate(beat_champion={"metric": "log_loss", "holdout_delta": 0.02, "recent_delta": None})
    champ = ChampionEval(1, metrics={**GOOD, "log_loss": 0.50}, recent_metrics=GOOD)
    ok = decide({**GOOD, "log_loss": 0.47}, g, GOOD, champ)  # 0.03 lower is better by 0.03 >= 0.02
    assert ok.passed and [c.name for c in ok.checks][-1] == "beat_champion_holdout_log_loss"
    bad = decide({**GOOD, "log_loss": 0.49}, g, GOOD, champ)  # better by only 0.01
    assert not bad.passed and bad.failed[0].threshold == 0.02


def test_broken_or_undefined_champion_comparison_fails_closed() -> None:
    broken = ChampionEval(2, error="ModelError: manifest not found")
    d = decide(GOOD, gate(), GOOD, broken)
    assert not d.passed and all("could not be evaluated" in c.reason for c in d.failed)
    single_class = ChampionEval(2, metrics=GOOD, recent_metrics={**GOOD, "roc_auc": math.nan})
    d2 = decide(GOOD, gate(), {**GOOD, "roc_auc": math.nan}, single_class)
    assert [c.name for c in d2.failed] == ["beat_champion_recent_roc_auc"]
    assert "undefined" in d2.failed[0].reason


def test_beat_champion_off_is_stated() -> None:
    d = decide(GOOD, gate(beat_champion=None), GOOD, ChampionEval(1, GOOD, GOOD))
    assert d.passed and any("beat_champion: null" in n for n in d.notes)


def test_decision_record_round_trips_and_feeds_kfp_metrics() -> None:
    champ = ChampionEval(4, metrics=GOOD, recent_metrics={**GOOD, "roc_auc": math.nan})
    d = decide(GOOD, gate(), GOOD, champ)
    text = json.dumps(d.to_dict())
    back = decision_from_dict(json.loads(text))
    assert json.dumps(back.to_dict()) == text and back.failed[0].name == "beat_champion_recent_roc_auc"
    km = d.kfp_metrics()
    assert km["champion_version"] == 4 and km["gate_passed"] == 0.0
    assert "champion_recent_roc_auc" not in km and all(math.isfinite(v) for v in km.values())


@pytest.mark.parametrize(
    ("gate_yaml", "field"),
    [
        ({"beat_champion": {"metric": "f1"}}, "gate.beat_champion.metric"),
        ({"beat_champion": {"recent_delta": 2}}, "gate.beat_champion.recent_delta"),
        ({"slices": [{"column": "plan", "min": 1.5}]}, "gate.slices.0.min"),
        ({"infra": {"sample_rows": 0}}, "gate.infra.sample_rows"),
        ({"beat_champion": {"bogus": 1}}, "gate.beat_champion.bogus"),
    ],
)
def test_gate_config_errors_name_the_field(gate_yaml: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config({"name": "m", "data": {"source": "d"}, "gate": gate_yaml})


# -- with real models ------------------------------------------------------------------------------
START = dt.date(2026, 1, 1)
DRIFT = DriftSpec(START + dt.timedelta(days=6))


def _days(first: int, n: int, rows: int = 400, seed: int = 3) -> pd.DataFrame:
    frames = []
    for i in range(first, first + n):
        day = START + dt.timedelta(days=i)
        f = generate_day(day, rows, seed, DRIFT)
        f["date"] = day.isoformat()
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate-models")
    schema = example_schema()
    params = {"estimator": "hist_gradient_boosting", "max_iter": 40}
    from threadpoolctl import threadpool_limits

    out = {}
    with threadpool_limits(1):  # far faster than OpenMP threads fighting on a shared machine
        for name, frame in (("stable", _days(0, 6)), ("drifted", _days(6, 4))):
            train_model("sklearn", frame, schema, params, 0, root / name)
            out[name] = root / name
    return out


def test_real_models_stale_challenger_rejected_on_recent_fresh_one_passes(models: dict[str, Path]) -> None:
    holdout = pd.concat([_days(3, 1, 300, 4), _days(12, 1, 300, 4)], ignore_index=True)  # both regimes
    recent = _days(12, 1, 300, 5)  # drifted, unseen
    g = gate(min_metric={"roc_auc": 0.5}, max_metric={},
             beat_champion={"metric": "roc_auc", "holdout_delta": -0.5, "recent_delta": 0.0})
    stale = run_gate(g, "label", models["stable"], holdout, recent, champion=(1, models["drifted"]))
    assert not stale.passed
    assert [c.name for c in stale.failed] == ["beat_champion_recent_roc_auc"]
    assert stale.champion is not None and stale.champion.recent_metrics["rows"] == len(recent)
    fresh = run_gate(g, "label", models["drifted"], holdout, recent, champion=(1, models["stable"]))
    assert fresh.passed, fresh.markdown()
    assert any(c.name == "infra_load_predict" and c.passed for c in fresh.checks)


def test_slice_minimums(models: dict[str, Path]) -> None:
    holdout = _days(3, 2, 300, 4)
    g = gate(min_metric={}, max_metric={}, slices=[{"column": "plan", "min": 0.99, "min_rows": 60}],
             infra={"enabled": False})
    d = run_gate(g, "label", models["stable"], holdout, holdout.iloc[:0], champion=None)
    names = {c.name for c in d.checks}
    assert {"slice_plan=basic_roc_auc", "slice_plan=plus_roc_auc"} <= names
    assert not d.passed and all(c.value < 0.99 for c in d.failed)
    assert {s["value"] for s in d.slices} >= {"basic", "plus"}
    assert any("recent slice is empty" in n for n in d.notes)
    missing = run_gate(gate(slices=[{"column": "nope", "min": 0.5}], infra={"enabled": False}), "label",
                       models["stable"], holdout, holdout, None)
    assert any("'nope' is not in the holdout" in c.reason for c in missing.failed)


def test_infra_check_fails_for_an_artifact_the_server_cannot_load(models: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    import shutil

    sample = _days(3, 1, 50, 4)
    ok = infra_check(models["stable"], sample, GateConfig().infra)
    assert ok.passed and ok.value == 32
    broken = tmp_path / "broken"
    shutil.copytree(models["stable"], broken)
    (broken / "model.joblib").write_bytes(b"not a pickle")
    bad = infra_check(broken, sample, GateConfig().infra)
    assert not bad.passed and "load_model" in bad.reason and "model.joblib" in bad.reason
