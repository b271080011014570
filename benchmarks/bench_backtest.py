"""``ctloop backtest`` speed: time per simulated day and per retrain, against one ``ctloop run`` of the same data.

Goal (issue 18): 90 days × 5 policies of the demo stream (800 rows/day) in ≤ 120 s on a 2-core machine.
Baseline measured in the same run: one KFP-local pipeline run (``ctloop run``'s ``run_local``) on the
starting champion's window of the same stream. The backtest's retrains call the same step functions
in-process, so "per retrain" against "one ctloop run" says what skipping the KFP local runner saves.

    .venv/bin/python benchmarks/bench_backtest.py [--days 90] [--rows-per-day 800] [--jobs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from ctloop.backtest.results import build_results
from ctloop.backtest.run import BacktestRequest, run_backtest
from ctloop.config import load_config
from ctloop.datagen import DriftSpec, write_stream
from ctloop.project import init_project
from ctloop.runner import run_local

POLICIES = ("never", "schedule:7d", "volume:5000", "drift", "performance")
START = dt.date(2026, 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--rows-per-day", type=int, default=800)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = args.out or Path(tempfile.mkdtemp(prefix="ctloop-bench-backtest-"))
    init_project(root)
    cfg = load_config(root / "ctloop.yaml")
    history = cfg.data.window_days
    first = START + dt.timedelta(days=history)
    write_stream(root / "data", START, history + args.days, 0, args.rows_per_day,
                 DriftSpec(first + dt.timedelta(days=args.days // 3)))
    # baseline: one pipeline run under the KFP local runner, on the starting champion's window
    t0 = time.perf_counter()
    run = run_local(cfg, {"cause": "manual", "reason": "benchmark baseline"},
                    cutoff_date=str(first - dt.timedelta(days=1)))
    base = time.perf_counter() - t0
    print(f"baseline: one ctloop run (KFP local runner) {base:.2f} s, status {run.status}", flush=True)
    req = BacktestRequest(str(root / "data"), first, first + dt.timedelta(days=args.days - 1), POLICIES,
                          jobs=args.jobs)
    t0 = time.perf_counter()
    raw = run_backtest(cfg, req)
    total = time.perf_counter() - t0
    doc = build_results(cfg, raw, {"model": cfg.name, "stream": req.stream, "start": str(req.start),
                                   "end": str(req.end), "label_delay_days": 0, "policies": list(POLICIES)}, 0.0, 0.005)
    never = next(r for r in raw["runs"] if r["policy"] == "never")
    per_day = never["seconds"] / len(never["days"])
    retrains = [r for run_ in raw["runs"] for r in run_["retrains"]]
    per_retrain = sum(r["seconds"] for r in retrains) / max(len(retrains), 1)
    sim_days = sum(len(r["days"]) for r in raw["runs"])
    print()
    print("| policy | mean acc | retrains | rejected | replay s |")
    print("|---|---|---|---|---|")
    for s in doc["summary"]:
        print(f"| {s['policy']} | {s['mean_accuracy']:.4f} | {s['retrains']} | {s['rejected']} | "
              f"{s['replay_seconds']:.1f} |")
    print()
    goal = "met" if total <= 120 else "NOT met"
    print(f"backtest: {args.days} days × {len(POLICIES)} policies = {sim_days} simulated days, {len(retrains)} "
          f"retrains, jobs={args.jobs}: **{total:.1f} s** (goal ≤ 120 s: {goal})")
    print(f"per simulated day (never, no retrain): {per_day * 1000:.0f} ms; "
          f"per retrain (in-process steps): {per_retrain:.2f} s; one ctloop run (baseline): {base:.2f} s; "
          f"ratio per retrain / ctloop run: {per_retrain / base:.2f}×; whole backtest / ctloop run: "
          f"{total / base:.1f}×")


if __name__ == "__main__":
    main()
