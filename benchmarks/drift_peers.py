"""Library peers of the drift benchmark, run inside the peer's own virtualenv (see ``bench_drift.py``).

Reads the reference and current frames from parquet (string categorical columns come back as Python
``str`` objects, the peers' native input), warms the peer up (import, then one run on a small frame),
then times ``--repeat`` runs and prints one JSON line: best seconds, every run, flagged columns.

Peers:
* ``evidently``: ``Report([DataDriftPreset()])`` with its defaults.
* ``nannyml``: ``UnivariateDriftCalculator`` with Jensen-Shannon and Wasserstein (continuous) and
  Jensen-Shannon (categorical), 10 chunks, fitted on the reference outside the timed part (like
  ctloop's profile and thresholds); a column is flagged when any chunk alerts.

Run (by ``bench_drift.py``): ``PEER_VENV/bin/python benchmarks/drift_peers.py --peer nannyml --ref R
--cur C --num n0,n1 --cat c0 --repeat 3``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import pandas as pd


def evidently_runner(ref: pd.DataFrame, num: list[str], cat: list[str]) -> Callable[[pd.DataFrame], set[str]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)

    def run(cur: pd.DataFrame) -> set[str]:
        snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=definition),
                                               Dataset.from_pandas(ref, data_definition=definition))
        flagged = set()
        for m in snap.dict()["metrics"]:
            cfg = m.get("config", {})
            col, value, threshold = cfg.get("column"), m.get("value"), cfg.get("threshold")
            if not col or not isinstance(value, int | float) or threshold is None:
                continue
            # p-value methods drift below the threshold, distance methods at or above it
            if (value < threshold) if "p_value" in str(cfg.get("method", "")) else (value >= threshold):
                flagged.add(col)
        return flagged

    return run


def nannyml_runner(ref: pd.DataFrame, num: list[str], cat: list[str]) -> Callable[[pd.DataFrame], set[str]]:
    import nannyml as nml

    calc = nml.UnivariateDriftCalculator(
        column_names=num + cat, continuous_methods=["jensen_shannon", "wasserstein"],
        categorical_methods=["jensen_shannon"], chunk_number=10)
    calc.fit(ref)

    def run(cur: pd.DataFrame) -> set[str]:
        df = calc.calculate(cur).filter(period="analysis").to_df()
        flagged = set()
        for col in num + cat:
            alerts = [c for c in df.columns if c[0] == col and c[-1] == "alert"]
            if any(bool(df[c].any()) for c in alerts):
                flagged.add(col)
        return flagged

    return run


RUNNERS = {"evidently": evidently_runner, "nannyml": nannyml_runner}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--peer", choices=sorted(RUNNERS), required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--cur", required=True)
    ap.add_argument("--num", required=True)
    ap.add_argument("--cat", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    num, cat = a.num.split(","), a.cat.split(",")
    ref, cur = pd.read_parquet(a.ref), pd.read_parquet(a.cur)
    t0 = time.perf_counter()
    run = RUNNERS[a.peer](ref, num, cat)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(cur.iloc[:2000].reset_index(drop=True))  # warm-up on a small frame, not timed
    warm = time.perf_counter() - t0
    times: list[float] = []
    flagged: set[str] = set()
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        flagged = run(cur)
        times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"peer": a.peer, "best_s": min(times), "runs_s": times, "setup_s": setup,
                           "warmup_s": warm, "flagged": sorted(flagged),
                           "categorical_dtype": str(cur[cat[0]].dtype)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
