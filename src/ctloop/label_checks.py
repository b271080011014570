"""Label-feed checks of the validation gate: the label's share per day.

A label feed that breaks for a few days (every label the same class) still leaves both classes in a
window, so the whole-window checks pass. Looking day by day catches it:

- ``label_share_change``: each day's class shares against the champion's label balance (its
  reference profile); the largest change is graded by ``validation.label_share_change``.
- ``label_days_one_class``: a run of consecutive days whose labels are all one class, long enough
  that chance cannot explain it (at the class's share elsewhere, the odds of that run are below
  :data:`CHANCE`). Needs no champion, so it also guards a first run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctloop.config import ValidationConfig
from ctloop.profile import Profile
from ctloop.validation import CheckResult, grade, threshold_of

DATE_COLUMN = "date"
CHANCE = 1e-6  # a one-class run less likely than this under the usual class shares is an error


@dataclass(frozen=True)
class DayLabels:
    """One day's labelled rows and its class counts (classes as strings, as in a profile)."""

    day: str
    rows: int
    counts: dict[str, int]

    def share(self, cls: str) -> float:
        """Share of ``cls`` among the day's labelled rows."""
        return self.counts.get(cls, 0) / self.rows if self.rows else 0.0


def day_labels(frame: pd.DataFrame, target: str) -> list[DayLabels]:
    """Class counts per day (oldest first); empty when the frame has no ``date`` or label column."""
    if DATE_COLUMN not in frame.columns or target not in frame.columns:
        return []
    day_codes, day_names = _codes(frame[DATE_COLUMN])
    cls_codes, cls_names = _codes(frame[target])
    keep = cls_codes >= 0
    k = len(cls_names)
    counts = np.bincount(day_codes[keep] * k + cls_codes[keep], minlength=len(day_names) * k).reshape(-1, k)
    per_day = {}
    for i, day in enumerate(map(str, day_names)):
        c = {_cls(str(cls_names[j])): int(counts[i, j]) for j in range(k) if counts[i, j]}
        if c:
            per_day[day] = c
    return [DayLabels(day, sum(c.values()), c) for day, c in sorted(per_day.items())]


def _codes(s: pd.Series) -> tuple[np.ndarray, list[object]]:
    """Integer codes (-1 for missing) and the distinct values, in one pass."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64), list(s.cat.categories)
    if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        v = s.to_numpy()
        lo, hi = (int(v.min()), int(v.max())) if v.size else (0, -1)
        if hi - lo < 1024:  # small integer labels (0/1): the values are their own codes
            return v.astype(np.int64) - lo, list(range(lo, hi + 1))
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int64), list(uniques)


def share_changes(days: list[DayLabels], reference: Profile, min_rows: int) -> list[tuple[DayLabels, float]]:
    """Each graded day with its largest class-share change against the reference's label balance."""
    ref = {_cls(k): v for k, v in reference.label_balance.items()}
    out = []
    for d in days:
        if d.rows < min_rows:
            continue
        classes = set(ref) | set(d.counts)
        out.append((d, max(abs(d.share(c) - ref.get(c, 0.0)) for c in classes)))
    return out


def _cls(key: str) -> str:
    """A profile's class key as a day's class key (``"1.0"`` and ``"1"`` are the same class)."""
    try:
        value = float(key)
    except ValueError:
        return key
    return str(int(value)) if value.is_integer() else key


def one_class_runs(days: list[DayLabels], reference: Profile | None,
                   chance: float = CHANCE) -> list[tuple[list[DayLabels], str, float]]:
    """Runs of consecutive days whose labels are all one class, too long to be chance.

    The class's usual share comes from the reference's label balance, else from the other days of the
    batch. Returns ``(days, class, usual share)`` per run.
    """
    runs: list[list[DayLabels]] = []
    prev: str | None = None
    for d in days:
        only = next(iter(d.counts)) if len(d.counts) == 1 else None
        if only is not None and only == prev:
            runs[-1].append(d)
        elif only is not None:
            runs.append([d])
        prev = only
    out = []
    for run in runs:
        cls = next(iter(run[0].counts))
        usual = _usual_share(cls, run, days, reference)
        rows = sum(d.rows for d in run)
        if usual is not None and usual < 1.0 and (usual <= 0.0 or rows * math.log(usual) < math.log(chance)):
            out.append((run, cls, usual))
    return out


def _usual_share(cls: str, run: list[DayLabels], days: list[DayLabels], reference: Profile | None) -> float | None:
    if reference is not None and reference.label_balance:
        return {_cls(k): v for k, v in reference.label_balance.items()}.get(cls, 0.0)
    others = [d for d in days if d not in run]
    rows = sum(d.rows for d in others)
    return sum(d.counts.get(cls, 0) for d in others) / rows if rows else None


def span(run: list[DayLabels]) -> str:
    """``first..last`` (or the one day) of a run of days."""
    return run[0].day if len(run) == 1 else f"{run[0].day}..{run[-1].day}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def label_results(frame: pd.DataFrame, target: str, reference: Profile | None,
                  cfg: ValidationConfig) -> list[CheckResult]:
    """The ``label_share_change`` and ``label_days_one_class`` rows of the report."""
    days = day_labels(frame, target)
    if not days:
        return [CheckResult("label_share_change", target, "skipped",
                            f"column {target!r}: check 'label_share_change': skipped, no labelled rows per "
                            f"{DATE_COLUMN!r} column")]
    return [_share_result(days, target, reference, cfg), _one_class_result(days, target, reference)]


def _share_result(days: list[DayLabels], target: str, reference: Profile | None,
                  cfg: ValidationConfig) -> CheckResult:
    name = "label_share_change"
    head = f"column {target!r}: check {name!r}:"
    if reference is None or not reference.label_balance:
        return CheckResult(name, target, "skipped", f"{head} skipped, no reference yet (first run, no champion)")
    graded = share_changes(days, reference, cfg.label_day_min_rows)
    if not graded:
        return CheckResult(name, target, "skipped", f"{head} skipped, no day has {cfg.label_day_min_rows} "
                                                   "labelled rows (validation.label_day_min_rows)")
    worst, change = max(graded, key=lambda x: x[1])
    status = grade(change, cfg.label_share_change)
    limit = threshold_of(status, cfg.label_share_change)
    beyond = [d.day for d, c in graded if limit is not None and c > limit]
    shares = ", ".join(f"{c}: {_pct(worst.share(c))}" for c in sorted(worst.counts))
    msg = (f"{head} largest daily change of the label share against the champion's label balance "
           f"{_pct(change)} on {worst.day} ({shares})")
    if status != "pass" and beyond:
        msg += f"; days beyond {_pct(limit or 0.0)}: {', '.join(beyond)}"
    return CheckResult(name, target, status, msg, change, limit)


def _one_class_result(days: list[DayLabels], target: str, reference: Profile | None) -> CheckResult:
    name = "label_days_one_class"
    head = f"column {target!r}: check {name!r}:"
    runs = one_class_runs(days, reference)
    if not runs:
        return CheckResult(name, target, "pass", f"{head} no run of days with a single label class "
                                                  "beyond chance")
    where = "the champion's reference" if reference is not None and reference.label_balance else "the other days"
    parts = [f"days {span(run)} ({sum(d.rows for d in run)} rows) hold only class {cls} (its share in {where}: "
             f"{_pct(usual)})" for run, cls, usual in runs]
    return CheckResult(name, target, "error", f"{head} {'; '.join(parts)}; is the label feed broken?",
                       float(sum(len(r) for r, _, _ in runs)))
