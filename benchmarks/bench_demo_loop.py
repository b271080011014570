"""Closed-loop latency: drift detected → new champion serving, and its parts, per alerting mode.

Runs ``ctloop demo`` (library entry point) once per mode: real Prometheus + Alertmanager where installed,
and the embedded evaluator. Baseline measured in the same run: the demo's first pipeline run (a bare
``run_local`` on the same kind of data), so the ratio says how much the loop adds on top of training.

    .venv/bin/python benchmarks/bench_demo_loop.py [--rows-per-day 800] [--out /tmp/ctloop-bench-demo]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ctloop.demo import DemoSettings, run_demo
from ctloop.demo.stack import monitoring_binaries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows-per-day", type=int, default=800)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ctloop-bench-demo-"))
    modes = (["on"] if monitoring_binaries() else []) + ["off"]
    rows = []
    for mode in modes:
        r = run_demo(out / mode, DemoSettings(prometheus=mode, rows_per_day=args.rows_per_day))
        t = r.timings
        rows.append((r.mode, t))
        print(f"{r.mode}: " + ", ".join(f"{k}={v:.2f}" for k, v in t.items()), flush=True)
    print()
    print("| alerting | window fill | alert | pipeline | swap | closed loop | bare pipeline run (baseline) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, t in rows:
        print(f"| {mode} | {t['window_fill_s']:.2f} s | {t['alert_s']:.2f} s | {t['pipeline_s']:.2f} s | "
              f"{t['swap_s']:.2f} s | **{t['closed_loop_s']:.2f} s** | {t['first_run_s']:.2f} s | "
              f"{t['closed_loop_s'] / t['first_run_s']:.2f}× |")


if __name__ == "__main__":
    main()
