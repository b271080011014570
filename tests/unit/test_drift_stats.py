"""Drift statistics against small hand-computed cases, and the binning/window/rule building blocks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from ctloop.drift import (
    Reference,
    WindowRing,
    bootstrap_threshold,
    js_distance,
    missing_share_change,
    proportions,
    psi,
    unseen_share,
)
from ctloop.errors import DriftError, EventError
from ctloop.profile import bin_categorical, bin_numeric
from tests.helpers_drift import CATEGORICAL, NUMERIC, columns, reference_profile, stream

pytestmark = pytest.mark.unit


def test_psi_hand_computed() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    # (0.25-0.5)ln(0.25/0.5) + (0.75-0.5)ln(0.75/0.5) = 0.173287 + 0.101366
    assert psi([50, 50], [25, 75]) == pytest.approx(0.2746531, abs=1e-6)
    # empty reference bin floored at eps=1e-4: (0.9-1)ln(0.9) + (0.1-1e-4)ln(0.1/1e-4)
    assert psi([100, 0], [90, 10]) == pytest.approx(0.0105361 + 0.0999 * math.log(1000), abs=1e-6)
    # counts and shares give the same score; it is symmetric
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(psi([2, 2], [1, 3]))
    assert psi([25, 75], [50, 50]) == pytest.approx(psi([50, 50], [25, 75]))


def test_js_distance_hand_computed() -> None:
    assert js_distance([3, 3], [1, 1]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    # m=[.75,.25]; KL(p|m)=.2075187, KL(q|m)=.4150375 (base 2); sqrt of their mean
    assert js_distance([1, 1], [1, 0]) == pytest.approx(math.sqrt(0.5 * (0.2075187 + 0.4150375)), abs=1e-6)
    p, q = [5, 1, 0, 4], [1, 1, 7, 1]
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)


def test_unseen_and_missing_hand_computed() -> None:
    # [a, b, OTHER, missing]: 2 of the 10 present values are outside the vocabulary
    assert unseen_share([5, 3, 2, 10], 2) == pytest.approx(0.2)
    assert unseen_share([0, 0, 0, 4], 2) == 0.0
    assert missing_share_change(0.1, 30, 100) == pytest.approx(0.2)
    assert missing_share_change(0.25, 0, 0) == pytest.approx(-0.25)


def test_stacked_padded_rows_match_single_rows() -> None:
    ref = np.array([[10, 20, 30, 0, 0], [5, 5, 0, 0, 0]], dtype=float)
    cur = np.array([[12, 18, 25, 5, 0], [1, 9, 0, 0, 0]], dtype=float)
    assert psi(ref, cur) == pytest.approx([psi(ref[0, :4], cur[0, :4]), psi(ref[1, :2], cur[1, :2])])
    expect = [js_distance(ref[0], cur[0]), js_distance(ref[1, :2], cur[1, :2])]
    assert js_distance(ref, cur) == pytest.approx(expect)
    assert unseen_share(cur, np.array([2, 0])) == pytest.approx([25 / 55, 1 / 1])
    np.testing.assert_allclose(proportions(np.zeros((2, 3))), 0.0)


def test_scores_are_effect_sizes_not_sample_size_dependent() -> None:
    assert psi([1, 3], [2, 2]) == pytest.approx(psi([1000, 3000], [200_000, 200_000]))


def test_reference_binning_matches_the_profile_functions() -> None:
    profile = reference_profile()
    ref = Reference.from_profile(profile)
    frame = stream(997, seed=5)
    frame.loc[frame.index[:7], "region"] = "mars"
    frame.loc[frame.index[7:11], "plan"] = None
    counts = ref.count_columns(columns(frame), len(frame))
    for i, c in enumerate(NUMERIC):
        p = profile.numeric[c]
        expect = bin_numeric(frame[c].to_numpy(dtype=float), p.edges)
        np.testing.assert_array_equal(counts[i, : len(p.edges) + 1], expect)
        assert counts[i, len(p.edges) + 1] == frame[c].isna().sum()
    for k, c in enumerate(CATEGORICAL):
        p = profile.categorical[c]
        i = len(NUMERIC) + k
        expect = bin_categorical(frame[c], p.vocabulary)
        np.testing.assert_array_equal(counts[i, : len(p.vocabulary) + 1], expect)
        assert counts[i, len(p.vocabulary) + 1] == frame[c].isna().sum()
    assert counts[len(NUMERIC), len(profile.categorical["region"].vocabulary)] == 7
    assert counts.sum(axis=1) == pytest.approx(len(frame))


def test_reference_rejects_bad_values_and_profiles() -> None:
    ref = Reference.from_profile(reference_profile())
    cols = columns(stream(5, seed=1))
    cols["age"] = np.array(["1", "x", None, "3", "4"], dtype=object)
    with pytest.raises(EventError, match="'age'"):
        ref.prepare(cols, 5)
    with pytest.raises(DriftError, match="no entry for model feature"):
        Reference.from_profile(reference_profile(), numeric=["age", "shoe_size"])


def test_absent_column_counts_as_missing_and_numbers_in_categoricals_are_text() -> None:
    ref = Reference.from_profile(reference_profile())
    counts = ref.count_columns({"region": pd.Series([1, "north", None]).to_numpy(dtype=object)}, 3)
    r = len(NUMERIC)
    vocab = ref.vocabularies[0]
    assert counts[0, ref.n_bins[0] - 1] == 3 and counts[0].sum() == 3
    expect = np.zeros(ref.width)
    expect[[len(vocab), vocab.index("north"), len(vocab) + 1]] = 1
    np.testing.assert_array_equal(counts[r], expect)


@pytest.mark.parametrize("rows", [50, 5000])  # small slices binary-search, large ones compare per edge
def test_small_and_large_slices_count_alike(rows: int) -> None:
    ref = Reference.from_profile(reference_profile())
    frame = stream(rows, seed=8)
    frame.loc[frame.index[::7], "age"] = np.nan
    frame.loc[frame.index[1], "income"] = np.inf
    frame.loc[frame.index[2], "income"] = -np.inf
    batch = ref.prepare(columns(frame), rows)
    whole = batch.counts(0, rows)
    pieces = sum(batch.counts(a, min(a + 37, rows)) for a in range(0, rows, 37))
    np.testing.assert_array_equal(whole, pieces)
    for i, c in enumerate(NUMERIC):
        edges = ref.edges[i]
        expect = bin_numeric(frame[c].to_numpy(float), edges)
        np.testing.assert_array_equal(whole[i, : edges.size + 1], expect)


def test_window_ring_tumbling_and_sliding_sums() -> None:
    values = np.arange(23, dtype=float)

    def add(ring: WindowRing, batches: list[int]) -> list[tuple[float, int, int]]:
        out, pos = [], 0
        for n in batches:
            chunk = values[pos : pos + n]
            out += [(float(w.counts[0]), w.rows, w.chunks)
                    for w in ring.add(n, lambda a, b, c=chunk: np.array([c[a:b].sum()]))]
            pos += n
        return out

    tumbling = add(WindowRing((1,), step_rows=5, slots=1), [3, 9, 11])
    assert tumbling == [(sum(range(0, 5)), 5, 1), (sum(range(5, 10)), 5, 1), (sum(range(10, 15)), 5, 1),
                        (sum(range(15, 20)), 5, 1)]
    sliding = add(WindowRing((1,), step_rows=5, slots=3), [23])
    assert sliding == [(sum(range(0, 5)), 5, 1), (sum(range(0, 10)), 10, 2), (sum(range(0, 15)), 15, 3),
                       (sum(range(5, 20)), 15, 3)]


def test_bootstrap_threshold_controls_false_alarms_and_shrinks_with_window() -> None:
    p = np.array([300, 250, 250, 200], dtype=float)
    t_small = bootstrap_threshold(p, 3000, 500, psi, 0.01, samples=4000, seed=1)
    t_big = bootstrap_threshold(p, 3000, 5000, psi, 0.01, samples=4000, seed=1)
    assert t_big < t_small
    assert bootstrap_threshold(p, 3000, 500, psi, 0.01, samples=4000, seed=1) == t_small
    rng = np.random.default_rng(99)
    ref = rng.multinomial(3000, p / p.sum(), size=3000)
    win = rng.multinomial(500, p / p.sum(), size=3000)
    alarms = float(np.mean(np.asarray(psi(ref, win)) > t_small))
    assert alarms < 0.03  # ~1% wanted; independent draws


def test_pandas_categorical_columns_count_like_strings() -> None:
    ref = Reference.from_profile(reference_profile())
    frame = stream(500, seed=9)
    frame.loc[frame.index[:5], "region"] = "mars"
    frame.loc[frame.index[5:9], "plan"] = None
    as_text = ref.count_columns(columns(frame), len(frame))
    cols = {c: frame[c].astype("category") if c in CATEGORICAL else frame[c] for c in frame.columns}
    np.testing.assert_array_equal(ref.count_columns(cols, len(frame)), as_text)


def test_few_and_many_categorical_values_count_alike() -> None:
    ref = Reference.from_profile(reference_profile())
    values = ["north", "mars", None, float("nan"), 3, "south", "west"] * 6  # 42 values: the small path
    few = ref.count_columns({"region": np.array(values, dtype=object)}, len(values))
    many = ref.count_columns({"region": np.array(values * 50, dtype=object)}, len(values) * 50)
    np.testing.assert_array_equal(few * 50, many)
    vocab = ref.vocabularies[0]
    assert few[len(NUMERIC), len(vocab)] == 12 and few[len(NUMERIC), len(vocab) + 1] == 12


def test_nested_values_for_a_numeric_feature_are_rejected() -> None:
    ref = Reference.from_profile(reference_profile())
    with pytest.raises(EventError, match="'age': expected one number per row"):
        ref.prepare({"age": [[1.0, 2.0]]}, 1)
