"""Registry cost of crash safety: register + promote vs. a plain folder copy + JSON write.

Baseline (same run, same model folder): ``shutil.copytree`` of the model folder plus an unsynced
``json.dump`` of the metadata and of the alias — what a registry without fsync, exclusive claims or
alias transactions would do. Prints the per-operation times and the ratio.

    python benchmarks/bench_registry.py [--rounds 30] [--model-kb 512]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ctloop.registry import Registry


def _model(folder: Path, kb: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"format": "ctloop-model/v1", "trainer": "sklearn"}))
    (folder / "model.joblib").write_bytes(os.urandom(kb * 1024))
    (folder / "profile.json").write_text(json.dumps({"format": "ctloop-profile/v1"}))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--model-kb", type=int, default=512)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = _model(root / "model", args.model_kb)
        reg = Registry(str(root / "registry"), "bench")
        ours, base = [], []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            v = reg.register(model, {"decision": {"passed": True}, "run_id": f"r{i}"})
            reg.promote(v, "bench")
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dest = root / "plain" / str(i)
            shutil.copytree(model, dest / "model")
            (dest / "metadata.json").write_text(json.dumps({"run_id": f"r{i}"}))
            (root / "plain" / "champion.json").write_text(json.dumps({"version": i}))
            base.append(time.perf_counter() - t0)
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"register+promote (crash-safe): median {m_ours * 1000:.2f} ms over {args.rounds} rounds")
    print(f"plain copy + json (baseline):  median {m_base * 1000:.2f} ms")
    print(f"ratio: {m_ours / m_base:.2f}x the baseline")


if __name__ == "__main__":
    main()
