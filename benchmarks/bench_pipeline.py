"""Wall time of `ctloop run` on the demo data and the share spent outside the step functions.

Runs the real pipeline under the KFP local runner, then (baseline, same run) calls the same step
functions in-process on the same data. Prints both and the orchestration overhead share.

    python benchmarks/bench_pipeline.py [--days 30] [--rows-per-day 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from ctloop import steps
from ctloop.config import load_config
from ctloop.datagen import write_stream
from ctloop.project import init_project
from ctloop.runner import run_local


def in_process(cfg, work: Path) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    info = steps.ingest_step(cfg, "", str(work / "ds.parquet"))
    steps.validate_step(cfg, str(work / "ds.parquet"), str(work / "report.json"), str(work / "report.html"),
                        str(work / "summary.md"), fail=False)
    steps.validate_gate_step(cfg, str(work / "report.json"))
    steps.split_step(cfg, str(work / "ds.parquet"), str(work / "tr"), str(work / "te"), str(work / "rc"))
    steps.train_step(cfg, str(work / "tr"), str(work / "model"))
    steps.evaluate_step(cfg, str(work / "model"), str(work / "te"), str(work / "rc"), str(work / "dec.json"))
    data = {k: info[k] for k in ("source", "first_day", "last_day", "rows", "content_hash")}
    v = steps.register_step(cfg, str(work / "model"), str(work / "dec.json"), data, "bench",
                            '{"cause": "manual"}')["version"]
    steps.deploy_step(cfg, v, "bench")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rows-per-day", type=int, default=500)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ctloop-bench-"))
    init_project(root)
    write_stream(root / "data", dt.date(2026, 1, 1), args.days, 7, args.rows_per_day)
    cfg = load_config(root / "ctloop.yaml")
    run_local(cfg)  # warm-up: file system caches, compiled bytecode, a first champion
    res = run_local(cfg, force=True)  # same data as the warm-up: retrain anyway
    assert res.status in ("succeeded", "rejected"), res.error
    inside = sum(res.step_seconds.values())
    work = root / "inproc"
    work.mkdir()
    bare = in_process(cfg, work)
    out = {
        "rows": args.days * args.rows_per_day,
        "ctloop_run_wall_s": round(res.wall_seconds, 2),
        "sum_step_functions_s": round(inside, 2),
        "outside_step_functions_share": round(1 - inside / res.wall_seconds, 3),
        "same_steps_in_process_s": round(bare, 2),
        "wall_over_in_process_ratio": round(res.wall_seconds / bare, 2),
        "per_step_s": res.step_seconds,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
