"""Label-feed checks (label share per day, runs of one-class days) and first-run duplicate checks."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ctloop.label_checks import DayLabels, day_labels, one_class_runs
from ctloop.profile import Profile
from ctloop.validation import ValidationReport, validate_frame
from tests.helpers_validation import batch, reference, schema, vcfg

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 1, 1)


def window(days: int = 6, rows: int = 300) -> pd.DataFrame:
    return pd.concat([batch(rows, seed=10 + i, day=DAY + dt.timedelta(days=i)) for i in range(days)],
                     ignore_index=True)


def check(rep: ValidationReport, name: str):  # type: ignore[no-untyped-def]
    (found,) = [c for c in rep.checks if c.check == name]
    return found


def test_clean_days_pass_both_label_checks() -> None:
    rep = validate_frame(window(), schema(), vcfg(), reference())
    assert rep.passed, rep.error_message()
    assert check(rep, "label_share_change").status == "pass"
    assert check(rep, "label_days_one_class").status == "pass"
    assert len(day_labels(window(), "label")) == 6


def test_newest_days_all_one_class_are_errors_naming_the_days() -> None:
    f = window()
    f.loc[f["date"].isin(["2026-01-05", "2026-01-06"]), "label"] = 0  # the label feed broke for two days
    assert f["label"].nunique() == 2  # the window as a whole still has both classes
    rep = validate_frame(f, schema(), vcfg(), reference())
    assert not rep.passed
    share = check(rep, "label_share_change")
    assert share.status == "error" and "days beyond 30.00%: 2026-01-05, 2026-01-06" in share.message
    runs = check(rep, "label_days_one_class")
    assert runs.status == "error"
    assert "days 2026-01-05..2026-01-06 (600 rows) hold only class 0" in runs.message
    assert "champion's reference" in runs.message


def test_first_run_without_champion_still_catches_one_class_days() -> None:
    f = window()
    f.loc[f["date"] == "2026-01-06", "label"] = 1
    rep = validate_frame(f, schema(), vcfg(), None)
    share = check(rep, "label_share_change")
    assert share.status == "skipped" and "no reference yet (first run, no champion)" in share.message
    runs = check(rep, "label_days_one_class")
    assert runs.status == "error" and "days 2026-01-06 (300 rows) hold only class 1" in runs.message
    assert "the other days" in runs.message


def test_label_share_jump_without_a_single_class_day() -> None:
    f = window()
    newest = f.index[f["date"] == "2026-01-06"]
    f.loc[newest, "label"] = (pd.Series(range(len(newest)), index=newest) % 20 > 0).astype("int64")  # 95% ones
    rep = validate_frame(f, schema(), vcfg(), reference())
    share = check(rep, "label_share_change")
    assert share.status == "error" and "on 2026-01-06" in share.message and share.value > 0.3
    assert check(rep, "label_days_one_class").status == "pass"
    relaxed = validate_frame(f, schema(), vcfg(label_share_change={"warn": 0.1, "error": None}), reference())
    assert check(relaxed, "label_share_change").status == "warning" and relaxed.passed


def test_small_days_and_rare_classes_are_not_flagged_by_chance() -> None:
    f = window(days=4, rows=40)  # days below validation.label_day_min_rows (50) are not graded
    f.loc[f["date"] == "2026-01-04", "label"] = 0
    rep = validate_frame(f, schema(), vcfg(min_rows=10), reference())
    assert check(rep, "label_share_change").status == "skipped"
    rare_days = [DayLabels(d.day, d.rows, {"0": d.rows}) for d in day_labels(window(days=3, rows=60), "label")]
    assert one_class_runs(rare_days[:1], None) == []  # one day, no other days: nothing to compare against
    # at a 98% share, 60 rows of that class in a row are likely (0.98**60 ≈ 0.3): not an error
    common = Profile(rows=1000, target="label", label_balance={"0": 0.98, "1": 0.02}, numeric={}, categorical={})
    assert one_class_runs(rare_days[:1], common) == []
    assert one_class_runs(rare_days, common) == []  # 180 rows: 0.98**180 ≈ 0.03, still chance


def duplicate_rich() -> pd.DataFrame:
    f = window(days=3, rows=200)
    f = pd.concat([f, f.iloc[:240]], ignore_index=True)  # 240 of 840 rows repeat an earlier one ...
    if "id" in f.columns:
        f["id"] = [f"row-{i}" for i in range(len(f))]  # ... as answers of other respondents (own row ids)
    return f


def test_duplicates_without_a_champion_are_skipped_and_say_so() -> None:
    rep = validate_frame(duplicate_rich(), schema(), vcfg(), None)
    dup = check(rep, "duplicate_share_increase")
    assert dup.status == "skipped" and "no reference yet (first run, no champion)" in dup.message
    assert "duplicate_share_max" in dup.message and dup.value == pytest.approx(240 / 840)
    assert check(rep, "duplicate_share").status == "skipped"  # the absolute form is off by default
    assert rep.passed, rep.error_message()


def test_absolute_duplicate_share_applies_when_set() -> None:
    rep = validate_frame(duplicate_rich(), schema(), vcfg(duplicate_share_max={"error": 0.2}), None)
    dup = check(rep, "duplicate_share")
    assert dup.status == "error" and "28.57% duplicated rows" in dup.message and dup.threshold == 0.2
    assert not rep.passed
    with_ref = validate_frame(duplicate_rich(), schema(), vcfg(), reference())
    assert check(with_ref, "duplicate_share_increase").status == "error"  # against the champion: graded
