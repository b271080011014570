"""The compiled fast path vs the reference path, and ONNX (skl2onnx + onnxruntime) as the other candidate.

In-process, one thread, same model and rows for every path: max |ΔP| on 2,000 unseen rows and µs per
call at batch 1 and batch 100 (best of 5 repeats). ONNX is measured when ``skl2onnx``/``onnxruntime``
import (``pip install skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.32.0``; the ``onnx-bench`` extra).

    python benchmarks/bench_fast_path.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _best_us(fn: Any, repeat: int = 5, number: int = 50) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best * 1e6


def _onnx(model: Any, frame: Any) -> tuple[Any, Any] | None:
    try:
        import onnxruntime as ort
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError:
        return None
    inputs = ([(c, FloatTensorType([None, 1])) for c in model.numeric_features]
              + [(c, StringTensorType([None, 1])) for c in model.categorical_features])
    est = model.predictor.steps[-1][1]
    onx = convert_sklearn(model.predictor, initial_types=inputs, options={id(est): {"zipmap": False}})
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def feeds(f: Any) -> dict[str, np.ndarray]:
        x = model.prepare(f)
        out = {c: x[c].to_numpy("float32").reshape(-1, 1) for c in model.numeric_features}
        out.update({c: x[c].to_numpy(object).reshape(-1, 1) for c in model.categorical_features})
        return out

    return sess, feeds


def main() -> None:
    from threadpoolctl import threadpool_limits

    from ctloop.fastpath.artifact import frame_columns, load_fast
    from ctloop.model import load_model
    from ctloop.project import example_schema
    from ctloop.torch_trainer.trainer import train_torch
    from ctloop.train import train_sklearn
    from tests.helpers_serving import training_frame

    schema = example_schema()
    train, hold = training_frame(0, 2000), training_frame(7, 2000)
    work = Path(tempfile.mkdtemp(prefix="ctloop-bench-fast-"))
    models = {"hist_gradient_boosting": lambda d: train_sklearn(train, schema, {}, 0, d),
              "logistic_regression": lambda d: train_sklearn(train, schema, {"estimator": "logistic_regression"},
                                                             0, d),
              "torch MLP [64, 32]": lambda d: train_torch(train, schema, {"hidden": [64, 32], "max_epochs": 5}, 0, d)}
    print("| model | path | max abs dP (2,000 rows) | us/call, 1 row | us/call, 100 rows | vs reference, 1 row |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for name, fit in models.items():
            d = work / name.split()[0]
            fit(d)
            m = load_model(d)
            fast = load_fast(d, m.manifest)
            assert fast is not None
            ref = m.predict_proba(hold)
            one, hundred = hold.head(1), hold.head(100)
            cols1 = frame_columns(one, m.numeric_features, m.categorical_features)
            cols100 = frame_columns(hundred, m.numeric_features, m.categorical_features)
            r1, r100 = _best_us(partial(m.predict_proba, one)), _best_us(partial(m.predict_proba, hundred))
            print(f"| {name} | reference (pandas + predict_proba) | 0 | {r1:.0f} | {r100:.0f} | 1 |")
            delta = np.max(np.abs(fast.predict_proba(frame_columns(hold, m.numeric_features,
                                                                   m.categorical_features)) - ref))
            f1, f100 = _best_us(partial(fast.predict_proba, cols1)), _best_us(partial(fast.predict_proba, cols100))
            print(f"| {name} | ctloop compiled (numpy, float64) | {delta:.1e} | {f1:.0f} | {f100:.0f} | "
                  f"{r1 / f1:.0f}x |")
            if m.manifest.get("trainer") == "sklearn":
                got = _onnx(m, hold)
                if got is None:
                    print(f"| {name} | ONNX | not measured (skl2onnx/onnxruntime not installed) | | | |")
                    continue
                sess, feeds = got
                p = sess.run(None, feeds(hold))[1][:, 1]
                o1, o100 = feeds(one), feeds(hundred)
                t1, t100 = _best_us(partial(sess.run, None, o1)), _best_us(partial(sess.run, None, o100))
                print(f"| {name} | ONNX (skl2onnx 1.20 + onnxruntime, float32) | {np.max(np.abs(p - ref)):.1e} | "
                      f"{t1:.0f} | {t100:.0f} | {r1 / t1:.0f}x |")


if __name__ == "__main__":
    main()
