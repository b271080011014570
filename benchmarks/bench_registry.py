"""Registry cost of crash safety: register + promote vs. a plain folder copy + JSON write.

Baseline (same run, same model folder): ``shutil.copytree`` of the model folder plus an unsynced
``json.dump`` of the metadata and of the alias — what a registry without fsync, exclusive claims or
alias transactions would do. Prints the per-operation times and the ratio.

    python benchmarks/bench_registry.py [--rounds 30] [--model-kb 512] [--s3-rounds 10]

With ``--s3-rounds N`` (N > 0) it also starts a real S3 API server (moto, server mode, 127.0.0.1) and
times register + promote on ``s3://`` (conditional writes: ``If-None-Match`` claims, ``If-Match`` alias
moves) against a plain s3fs upload of the same folder plus unconditional PUTs of the metadata and the
alias, on the same server in the same run (one untimed warm-up round each).
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
    ap.add_argument("--s3-rounds", type=int, default=10, help="0 skips the S3 (moto server) part")
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
    if args.s3_rounds > 0:
        bench_s3(args.s3_rounds, args.model_kb)


def bench_s3(rounds: int, model_kb: int) -> None:
    """register+promote on a moto S3 server vs. plain s3fs put + unconditional JSON PUTs."""
    import fsspec

    from tests.helpers_s3 import moto_server

    with tempfile.TemporaryDirectory() as tmp, moto_server() as srv:
        model = _model(Path(tmp) / "model", model_kb)
        bucket = srv.new_bucket("bench")
        reg = Registry(f"s3://{bucket}/registry", "bench")
        fs = fsspec.filesystem("s3")
        ours, base = [], []
        for i in range(rounds + 1):  # round 0 warms both paths up (connections, bucket), untimed
            t0 = time.perf_counter()
            v = reg.register(model, {"decision": {"passed": True}, "run_id": f"r{i}"})
            reg.promote(v, "bench")
            t1 = time.perf_counter()
            dest = f"{bucket}/plain/{i}"
            fs.put(str(model), f"{dest}/model", recursive=True)
            fs.pipe_file(f"{dest}/metadata.json", json.dumps({"run_id": f"r{i}"}).encode())
            fs.pipe_file(f"{bucket}/plain/champion.json", json.dumps({"version": i}).encode())
            t2 = time.perf_counter()
            if i:
                ours.append(t1 - t0)
                base.append(t2 - t1)
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"s3 (moto) register+promote (conditional writes): median {m_ours * 1000:.2f} ms over {rounds} rounds")
    print(f"s3 (moto) plain put + json (baseline):           median {m_base * 1000:.2f} ms")
    print(f"s3 ratio: {m_ours / m_base:.2f}x the baseline")


if __name__ == "__main__":
    main()
