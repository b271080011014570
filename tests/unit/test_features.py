"""Declared derived features: each transform on small hand-computed cases, fitted state, spec errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ctloop.config import FeatureSpec, parse_config
from ctloop.errors import ConfigError
from ctloop.features import apply, check_spec, fit, from_doc, output_names, to_doc

pytestmark = pytest.mark.unit


def F(**kw: object) -> FeatureSpec:
    return FeatureSpec.model_validate(kw)


FRAME = pd.DataFrame({
    "income": [0.0, math.e - 1, None, -2.0],
    "balance": [10.0, 5.0, 1.0, 3.0],
    "plan": ["basic", "plus", None, "basic"],
    "signup": ["2026-01-05", "2026-02-28T13:00:00", None, "2025-12-31"],
})


def test_each_transform() -> None:
    specs = [
        F(name="log_income", transform="log1p", column="income"),
        F(name="bal_per_income", transform="ratio", numerator="balance", denominator="income"),
        F(name="bal_clip", transform="clip", column="balance", min=2, max=6),
        F(name="bal_bucket", transform="bucketize", column="balance", boundaries=[2, 6]),
        F(name="income_missing", transform="is_missing", column="income"),
        F(name="signup_month", transform="date_part", column="signup", part="month"),
        F(name="signup_dow", transform="date_part", column="signup", part="dayofweek"),
        F(name="plan", transform="one_hot_top_k", column="plan", k=1),
    ]
    specs[-1] = F(name="plan_top", transform="one_hot_top_k", column="plan", k=1)
    state = fit(FRAME, specs)
    assert state == {"plan_top": ["basic"]}
    out = apply(FRAME, specs, state)
    assert list(FRAME.columns) == ["income", "balance", "plan", "signup"]  # input untouched
    np.testing.assert_allclose(out["log_income"], [0.0, 1.0, np.nan, np.nan])  # log1p(-2) is undefined
    np.testing.assert_allclose(out["bal_per_income"], [np.nan, 5 / (math.e - 1), np.nan, -1.5])  # x/0 → NaN
    np.testing.assert_allclose(out["bal_clip"], [6.0, 5.0, 2.0, 3.0])
    np.testing.assert_allclose(out["bal_bucket"], [2.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(out["income_missing"], [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(out["signup_month"], [1.0, 2.0, np.nan, 12.0])
    np.testing.assert_allclose(out["signup_dow"], [0.0, 5.0, np.nan, 2.0])  # Monday 0 … Sunday 6
    np.testing.assert_allclose(out["plan_top=basic"], [1.0, 0.0, 0.0, 1.0])
    assert output_names(specs, state) == [c for c in out.columns if c not in FRAME.columns]


def test_no_features_is_identity_and_doc_round_trip() -> None:
    assert apply(FRAME, []) is FRAME
    specs = [F(name="top2", transform="one_hot_top_k", column="plan", k=2)]
    state = fit(FRAME, specs)
    assert state == {"top2": ["basic", "plus"]}  # most frequent first, ties alphabetical
    back_specs, back_state = from_doc(to_doc(specs, state))
    assert back_specs == specs and back_state == state
    pd.testing.assert_frame_equal(apply(FRAME, back_specs, back_state), apply(FRAME, specs, state))


def test_spec_errors_name_the_field() -> None:
    cols = ["income", "balance", "label"]
    with pytest.raises(ConfigError, match=r"features\[0\].column: unknown column 'incme'"):
        check_spec([F(name="x", transform="log1p", column="incme")], cols, "label")
    with pytest.raises(ConfigError, match=r"features\[0\].numerator: 'label' is the target"):
        check_spec([F(name="x", transform="ratio", numerator="label", denominator="income")], cols, "label")
    with pytest.raises(ConfigError, match=r"features\[1\].name: 'x' clashes"):
        check_spec([F(name="x", transform="log1p", column="income"),
                    F(name="x", transform="log1p", column="balance")], cols, "label")
    with pytest.raises(ConfigError, match=r"input column\(s\) \['balance'\] are missing"):
        apply(pd.DataFrame({"income": [1.0]}), [F(name="x", transform="log1p", column="balance")])


@pytest.mark.parametrize(("feature", "message"), [
    ({"name": "x", "transform": "eval", "column": "income"}, "features.0.transform"),
    ({"name": "x", "transform": "bucketize", "column": "income"}, "needs boundaries"),
    ({"name": "x", "transform": "bucketize", "column": "income", "boundaries": [3, 1]}, "strictly increasing"),
    ({"name": "x", "transform": "clip", "column": "income"}, "needs min, max or both"),
])
def test_config_rejects_bad_features(feature: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"name": "churn", "data": {"source": "data"}, "features": [feature]})
