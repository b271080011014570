"""Reference profile binning against small hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.profile import Profile, bin_categorical, bin_numeric, compute_profile, numeric_edges

pytestmark = pytest.mark.unit


def test_bin_numeric_hand_case() -> None:
    # bins: (-inf,1], (1,2], (2,inf)
    counts = bin_numeric(np.array([0.5, 1.0, 1.5, 2.0, 2.5, np.nan, 10]), [1.0, 2.0])
    assert counts.tolist() == [2, 2, 2]


def test_bin_categorical_other_and_missing() -> None:
    counts = bin_categorical(pd.Series(["a", "b", "a", "z", None]), ["a", "b"])
    assert counts.tolist() == [2, 1, 1]


def test_edges_are_quantiles() -> None:
    e = numeric_edges(np.arange(1, 101, dtype=float), 4)
    assert e.tolist() == [25.75, 50.5, 75.25]


def test_profile_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "c": ["a", "a", "b", None], "label": [0, 1, 1, 1]})
    p = compute_profile(df, ["x"], ["c"], "label", bins=2)
    assert p.numeric["x"].missing_share == 0.25
    assert p.numeric["x"].min == 1.0 and p.numeric["x"].max == 4.0
    assert sum(p.numeric["x"].counts) == 3
    assert p.categorical["c"].vocabulary == ["a", "b"]
    assert p.categorical["c"].counts == [2, 1, 0]
    assert p.label_balance == {"1": 0.75, "0": 0.25}
    assert Profile.load(p.save(tmp_path / "profile.json")) == p
