"""The reference profile format (ctloop-profile/v1 and v2) and schema inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ctloop.errors import SchemaError
from ctloop.profile import OTHER, Profile, bin_categorical, bin_numeric, compute_profile, numeric_edges
from ctloop.schema import infer_schema, load_schema
from tests.conftest import make_project, run_cli
from tests.helpers_validation import batch, reference, schema

pytestmark = pytest.mark.unit


def test_profile_counts_agree_with_the_shared_binning_functions() -> None:
    s = schema()
    f = batch(800)
    f.loc[:40, "region"] = None
    p = compute_profile(f, s.numeric_features, s.categorical_features, s.target, bins=12, max_vocabulary=3)
    for c in s.numeric_features:
        v = f[c].to_numpy(dtype=float, na_value=np.nan)
        assert p.numeric[c].edges == numeric_edges(v, 12).tolist()
        assert p.numeric[c].counts == bin_numeric(v, p.numeric[c].edges).tolist()
        assert p.numeric[c].min == np.nanmin(v) and p.numeric[c].max == np.nanmax(v)
    for c in s.categorical_features:
        assert p.categorical[c].counts == bin_categorical(f[c], p.categorical[c].vocabulary).tolist()
    region = p.categorical["region"]
    assert len(region.vocabulary) == 3 and region.counts[-1] > 0  # 4th region lands in OTHER
    assert region.missing_share == pytest.approx(41 / 800)
    assert sum(p.label_balance.values()) == pytest.approx(1.0)
    assert p.duplicate_share == 0.0 and OTHER == "__other__"


def test_profile_on_reference_bins_lines_up() -> None:
    ref = reference()
    s = schema()
    b = compute_profile(batch(300), s.numeric_features, s.categorical_features, s.target, reference=ref)
    for c in s.numeric_features:
        assert b.numeric[c].edges == ref.numeric[c].edges
        assert len(b.numeric[c].counts) == len(ref.numeric[c].counts)
    for c in s.categorical_features:
        assert b.categorical[c].vocabulary == ref.categorical[c].vocabulary


def test_profile_json_round_trip_and_v1_files_without_new_fields(tmp_path: Path) -> None:
    ref = reference()
    path = ref.save(tmp_path)
    assert Profile.load(tmp_path) == ref
    raw = json.loads(path.read_text())
    assert raw["format"] == "ctloop-profile/v2"
    assert set(raw) >= {"rows", "target", "label_balance", "numeric", "categorical"}
    raw.pop("duplicate_share")
    assert Profile.model_validate(raw).duplicate_share is None  # older v1 files stay readable


def test_infer_schema_ranges_domains_nullability() -> None:
    f = batch(400)
    f["free_text"] = [f"id-{i}" for i in range(len(f))]
    inferred = infer_schema(f, "label", max_categories=50)
    assert "date" not in inferred.columns
    age = inferred.columns["age"]
    assert (age.dtype, age.min, age.max) == ("numeric", f["age"].min(), f["age"].max())
    assert inferred.columns["num_products"].dtype == "integer"
    assert inferred.columns["balance"].nullable and not inferred.columns["age"].nullable
    assert inferred.columns["plan"].categories == ["basic", "plus", "premium"]
    assert inferred.columns["free_text"].categories is None  # too many values for a domain
    assert inferred.columns["label"].dtype == "binary"
    with pytest.raises(SchemaError, match="0/1"):
        infer_schema(f.assign(label=f["label"] + 5), "label")
    with pytest.raises(SchemaError, match="'churned'"):
        infer_schema(f, "churned")


def test_schema_infer_cli(tmp_path: Path) -> None:
    make_project(tmp_path / "p", days=2, rows_per_day=60)
    out = tmp_path / "schema.yaml"
    r = run_cli("schema", "infer", "--data", str(tmp_path / "p" / "data"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "review" in r.stdout and "credit_score" in r.stdout
    loaded = load_schema(out)
    assert loaded.columns["region"].categories == ["east", "north", "south", "west"]
    assert yaml.safe_load(out.read_text())["columns"]["age"]["min"] >= 18
    again = run_cli("schema", "infer", "--data", str(tmp_path / "p" / "data"), "--out", str(out))
    assert again.returncode == 2 and "already exists" in " ".join(again.stderr.split())
    one = tmp_path / "one.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}).to_parquet(one)
    r = run_cli("schema", "infer", "--data", str(one), "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert set(load_schema(out).columns) == {"x", "label"}
