"""Estimated performance without labels: ctloop's estimator vs NannyML's CBPE on the same stream.

One datagen stream: reference days split into train (75%) and holdout (25%); a model is trained with
ctloop's sklearn trainer and scores the holdout and an analysis stream (clean, covariate shift only, or
pure concept drift). Both estimators get the same work: fit on the holdout's scores and labels (ctloop:
isotonic calibration; NannyML: ``CBPE.fit``), then estimate accuracy and ROC AUC per chunk of
``--chunk`` predictions of the analysis stream without labels. Reported per stream: the mean absolute
error of estimated vs realized accuracy over chunks for both, and fit + estimate time for both (one
warm-up, then best of ``--repeat``; NannyML's time is measured inside its own process, without imports
and data loading), with the time ratio.

NannyML runs in its own virtualenv (never ctloop's): ``--nannyml-venv`` (default ``.venv-nannyml`` in the
repository root) is created with ``python3 -m venv`` and ``pip install nannyml==0.13.1 pyarrow`` when it
has no NannyML yet.

Run: ``.venv/bin/python benchmarks/bench_estimation.py [--days 20 --rows-per-day 1000 --chunk 500]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from ctloop.datagen import DriftSpec, generate_day  # noqa: E402
from ctloop.model import load_model  # noqa: E402
from ctloop.project import example_schema  # noqa: E402
from ctloop.quality.calibration import fit_calibration  # noqa: E402
from ctloop.quality.estimate import estimate_window  # noqa: E402
from ctloop.train import train_model  # noqa: E402

NANNYML = "nannyml==0.13.1"
START = dt.date(2026, 3, 1)

# Runs inside NannyML's venv: reads the holdout/analysis parquet files, prints one JSON line.
NANNYML_WORKER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
ref, ana, chunk, repeat = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def run():
    est = nml.CBPE(y_pred_proba="p", y_pred="yhat", y_true="y", problem_type="classification_binary",
                   metrics=["accuracy", "roc_auc"], chunk_size=chunk)
    est.fit(ref)
    return est.estimate(ana)
run()  # warm-up
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter(); res = run(); best = min(best, time.perf_counter() - t0)
df = res.filter(period="analysis").to_df()
print(json.dumps({"seconds": best, "accuracy": df[("accuracy", "value")].tolist(),
                  "roc_auc": df[("roc_auc", "value")].tolist(), "version": nml.__version__}))
'''


def nannyml_python(venv: Path) -> Path:
    """The venv's python, creating the venv and installing NannyML into it when missing."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(py), "-c", "import nannyml"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", NANNYML, "pyarrow"], check=True)
    return py


def days(first: dt.date, n: int, rows: int, drift: DriftSpec | None = None) -> pd.DataFrame:
    return pd.concat([generate_day(first + dt.timedelta(days=i), rows, 0, drift) for i in range(n)],
                     ignore_index=True)


def best_of(fn, repeat: int) -> tuple[float, Any]:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def ctloop_estimate(hold_p: np.ndarray, hold_y: np.ndarray, p: np.ndarray, chunk: int) -> list[float]:
    """Fit on the holdout, estimate accuracy per chunk (the same work NannyML does)."""
    cal = fit_calibration(hold_p, hold_y)
    return [estimate_window(p[i:i + chunk], cal).values["accuracy"] for i in range(0, len(p), chunk)]


def run_stream(name: str, drift: DriftSpec | None, a: argparse.Namespace, model_dir: Path,
               holdout: pd.DataFrame, py: Path | None, tmp: Path) -> dict[str, Any]:
    model = load_model(model_dir)
    stream = days(START, a.days, a.rows_per_day, drift)
    p, y = model.predict_proba(stream), stream["label"].to_numpy()
    hold_p, hold_y = model.predict_proba(holdout), holdout["label"].to_numpy()
    yhat = (p >= 0.5).astype(int)
    realized = [float((yhat[i:i + a.chunk] == y[i:i + a.chunk]).mean()) for i in range(0, len(p), a.chunk)]
    t_ours, ours = best_of(lambda: ctloop_estimate(hold_p, hold_y, p, a.chunk), a.repeat)
    res: dict[str, Any] = {
        "stream": name, "chunks": len(realized), "chunk_rows": a.chunk, "holdout_rows": len(holdout),
        "realized_accuracy_mean": float(np.mean(realized)),
        "ctloop_mae": float(np.mean(np.abs(np.array(ours) - realized))), "ctloop_s": t_ours,
    }
    if py is not None:
        pd.DataFrame({"p": hold_p, "yhat": (hold_p >= 0.5).astype(int), "y": hold_y}).to_parquet(tmp / "ref.pq")
        pd.DataFrame({"p": p, "yhat": yhat}).to_parquet(tmp / "ana.pq")
        out = subprocess.run([str(py), "-c", NANNYML_WORKER, str(tmp / "ref.pq"), str(tmp / "ana.pq"),
                              str(a.chunk), str(a.repeat)], capture_output=True, text=True, check=True)
        nml = json.loads(out.stdout.strip().splitlines()[-1])
        theirs = np.array(nml["accuracy"], dtype=float)
        if theirs.size != len(realized):
            raise RuntimeError(f"NannyML returned {theirs.size} chunks, expected {len(realized)}")
        res.update({"nannyml": nml["version"], "nannyml_mae": float(np.mean(np.abs(theirs - realized))),
                    "nannyml_s": nml["seconds"], "speedup_vs_nannyml": nml["seconds"] / t_ours,
                    "max_abs_diff_ctloop_vs_nannyml": float(np.max(np.abs(theirs - np.array(ours))))})
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=20, help="analysis days per stream")
    ap.add_argument("--rows-per-day", type=int, default=1000)
    ap.add_argument("--reference-days", type=int, default=14)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--nannyml-venv", type=Path, default=ROOT / ".venv-nannyml")
    ap.add_argument("--skip-nannyml", action="store_true")
    a = ap.parse_args()
    if (a.days * a.rows_per_day) % a.chunk:
        ap.error("--days x --rows-per-day must be a multiple of --chunk (same chunks for both)")
    py = None if a.skip_nannyml else nannyml_python(a.nannyml_venv)
    ref = days(START - dt.timedelta(days=a.reference_days), a.reference_days, a.rows_per_day)
    train = ref.sample(frac=0.75, random_state=0)
    holdout = ref.drop(train.index).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        train_model("sklearn", train, example_schema(), {}, 0, tmp / "model")
        streams = [("clean", None), ("covariate shift", DriftSpec(start=START, concept=0.0)),
                   ("pure concept drift", DriftSpec(concept_start=START))]
        for name, drift in streams:
            run_stream(name, drift, a, tmp / "model", holdout, py, tmp)


if __name__ == "__main__":
    main()
