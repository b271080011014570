"""A first run on real, duplicate-rich survey data: partitioned by day, schema inferred, ``ctloop run``.

The data is the Fair (1978) extramarital-affairs survey of the 1974 Redbook magazine readers, 6,366
answers, shipped inside statsmodels (``statsmodels.datasets.fair``, offline). Every feature is a
coded or binned answer, so identical rows are normal (about 18% of the rows repeat an earlier one).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]
ANSWERS = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ", "occupation",
           "occupation_husb"]
DAYS = 6


def write_survey(root: Path) -> int:
    """The survey as categorical answers plus a 0/1 label, shuffled (seeded) and split into daily partitions."""
    from statsmodels.datasets import fair

    raw = fair.load_pandas().data
    frame = pd.DataFrame({c: raw[c].map(lambda v: f"{v:g}") for c in ANSWERS})
    frame["affair"] = (raw["affairs"] > 0).astype("int64")
    frame = frame.iloc[np.random.default_rng(0).permutation(len(frame))].reset_index(drop=True)
    bounds = np.linspace(0, len(frame), DAYS + 1).astype(int)
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        part = frame.iloc[lo:hi]
        day = root / f"date={dt.date(2026, 1, 1) + dt.timedelta(days=i)}"
        day.mkdir(parents=True)
        part.to_parquet(day / "part-0.parquet", index=False)
    return len(frame)


def config(root: Path, extra: str = "") -> Path:
    path = root / "ctloop.yaml"
    path.write_text(f"""name: survey
data:
  source: data
  target: affair
  window_days: {DAYS}
model:
  trainer: sklearn
  params: {{estimator: hist_gradient_boosting, max_iter: 60}}
gate:
  min_metric: {{roc_auc: 0.65}}
{extra}""")
    return path


def test_first_run_on_duplicate_rich_survey_data_trains(tmp_path: Path) -> None:
    rows = write_survey(tmp_path / "data")
    infer = run_cli("schema", "infer", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "schema.yaml"),
                    "--target", "affair")
    assert infer.returncode == 0, infer.stdout + infer.stderr
    proc = run_cli("run", "--config", str(config(tmp_path)), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded" and out["promoted"] and out["version"] == 1, out
    assert out["metrics"]["roc_auc"] > 0.65
    report = json.loads(Path(out["paths"]["reports"]["validate"]["json"]).read_text())
    assert report["rows"] == rows and report["passed"]
    dup = next(c for c in report["checks"] if c["check"] == "duplicate_share_increase")
    assert dup["status"] == "skipped" and "no reference yet (first run, no champion)" in dup["message"]
    assert dup["value"] > 0.15  # the survey really is duplicate-rich

    # the absolute form applies when the user sets it (now with the champion as reference too)
    strict = config(tmp_path, "validation:\n  duplicate_share_max: {error: 0.10}\n")
    again = run_cli("run", "--config", str(strict))
    assert again.returncode == 3, again.stdout + again.stderr
    text = " ".join(again.stdout.split())
    assert "check 'duplicate_share':" in text and "duplicated rows (validation.duplicate_share_max)" in text
