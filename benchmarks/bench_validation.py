"""Validation + profile of 1M rows x 25 columns vs a bare ``pandas.read_parquet`` of the same file.

Run: ``python benchmarks/bench_validation.py [--rows N] [--repeat R]``. Prints both times (best of R) and
their ratio. The validation side does what the validate step does: reads the file (categorical string
columns dictionary-encoded) and runs every check (schema with pandera, batch profile on the champion's
bins, PSI, reference ranges, duplicate rows) in one vectorised pass per column.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctloop.config import ValidationConfig
from ctloop.profile import compute_profile
from ctloop.schema import ColumnSpec, Schema
from ctloop.validation import read_batch, validate_frame

N_NUMERIC, N_CATEGORICAL = 20, 4


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """20 numeric features, 4 categorical features and a binary label (25 columns)."""
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i in range(N_NUMERIC):
        col = rng.normal(i, 1 + i / 10, rows)
        if i % 5 == 0:
            col[rng.random(rows) < 0.01] = np.nan
        data[f"x{i}"] = col
    for j in range(N_CATEGORICAL):
        values = np.array([f"c{j}_{k}" for k in range(5 + 3 * j)])
        data[f"cat{j}"] = pd.Series(values[rng.integers(0, values.size, rows)], dtype="string")
    data["label"] = (rng.random(rows) < 0.3).astype("int64")
    return pd.DataFrame(data)


def make_schema() -> Schema:
    cols = {f"x{i}": ColumnSpec(dtype="numeric", nullable=i % 5 == 0, min=-1e6, max=1e6)
            for i in range(N_NUMERIC)}
    for j in range(N_CATEGORICAL):
        cols[f"cat{j}"] = ColumnSpec(dtype="categorical", categories=[f"c{j}_{k}" for k in range(5 + 3 * j)])
    cols["label"] = ColumnSpec(dtype="binary")
    return Schema(target="label", columns=cols)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    schema = make_schema()
    ref_frame = make_frame(200_000, seed=1)
    reference = compute_profile(ref_frame, schema.numeric_features, schema.categorical_features, "label")
    cfg = ValidationConfig()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.parquet"
        make_frame(args.rows, seed=2).to_parquet(path, index=False)
        read_t, val_t, dict_t = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            frame = read_batch(str(path), schema)
            dict_t.append(time.perf_counter() - t0)
            del frame
            t0 = time.perf_counter()
            frame = pd.read_parquet(path)
            read_t.append(time.perf_counter() - t0)
            del frame
            t0 = time.perf_counter()
            frame = read_batch(str(path), schema)  # what the validate step does: read, then check
            report = validate_frame(frame, schema, cfg, reference)
            val_t.append(time.perf_counter() - t0)
            del frame
        assert report.passed, report.error_message()
    r, v, d = min(read_t), min(val_t), min(dict_t)
    print(f"rows={args.rows} columns=25 checks={len(report.checks)} repeat={args.repeat}")
    print(f"bare pandas.read_parquet:       {r:.3f} s")
    print(f"read + validation + profile:    {v:.3f} s  (the validate step's work)")
    print(f"  of which reading (dictionary): {d:.3f} s; checks + profile: {v - d:.3f} s")
    print(f"ratio (read+validate / read):   {v / r:.2f}x")


if __name__ == "__main__":
    main()
