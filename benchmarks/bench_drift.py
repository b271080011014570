"""Drift scoring and event-ingest benchmark (prints ratios against baselines measured in the same run).

1. Scoring: ``rows`` x (20 numeric + 5 categorical), 4 drifted columns (3 numeric, 1 categorical).
   ctloop's monitor (reference profile → binned counts → PSI/JS with calibrated thresholds) vs a scipy
   baseline (two-sample KS per numeric column, chi-squared per categorical column, p < 0.05) and, when
   the optional ``evidently`` package imports, Evidently's ``DataDriftPreset`` on the same frames.
2. Ingest: inferences/s the watcher sustains over HTTP (``ctloop watch``), each inference being the two
   events a model server sends (request and response), in KServe's logger form (one binary-mode event per
   POST) and in ``ctloop serve``'s form (CloudEvents batched mode, 64 inferences per POST), vs requests/s
   ``ctloop serve`` sustains on the same machine.

Run: ``python benchmarks/bench_drift.py [--rows 100000 1000000] [--skip-ingest]``.
"""

from __future__ import annotations

import argparse
import asyncio
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

from ctloop.config import DriftConfig  # noqa: E402
from ctloop.drift import DriftMonitor, Reference  # noqa: E402
from ctloop.profile import compute_profile  # noqa: E402

NUM = [f"n{i}" for i in range(20)]
CAT = [f"c{i}" for i in range(5)]
DRIFTED = {"n0", "n1", "n2", "c0"}
VOCAB = [f"v{i}" for i in range(8)]


def make_frame(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    """Synthetic frame; with ``drift`` n0 (mean +0.25 sd), n1 (scale x1.3), n2 (lognormal shift), c0 move."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i, c in enumerate(NUM):
        if i % 3 == 2:
            v = np.exp(rng.normal(0.0 + (0.2 if drift and c == "n2" else 0.0), 0.5, rows))
        else:
            v = rng.normal(10.0 * i, 1.0 + i, rows)
            if drift and c == "n0":
                v += 0.25 * (1.0 + i)
            if drift and c == "n1":
                v = 10.0 * i + (v - 10.0 * i) * 1.3
        cols[c] = v
    p = np.linspace(1.0, 2.0, len(VOCAB))
    p /= p.sum()
    for c in CAT:
        q = p
        if drift and c == "c0":
            q = 0.8 * p + 0.2 * np.eye(len(VOCAB))[0]
        cols[c] = np.asarray(VOCAB, dtype=object)[rng.choice(len(VOCAB), size=rows, p=q)]
    return pd.DataFrame(cols)


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def ctloop_scorer(reference: Reference, cur: pd.DataFrame):  # type: ignore[no-untyped-def]
    """Seconds to calibrate, and a function that bins + scores one window of all rows."""
    cfg = DriftConfig(window_rows=len(cur), min_rows=1, consecutive_windows=1)
    t_cal, monitor = timed(lambda: DriftMonitor(reference, cfg))
    cols = {c: cur[c] for c in NUM + CAT}

    def run() -> set[str]:
        monitor.restart()
        return set(monitor.ingest(cols, len(cur))[0].drifted)

    return t_cal, run


def score_scipy(ref: pd.DataFrame, cur: pd.DataFrame) -> set[str]:
    """KS per numeric column, chi-squared per categorical column; p < 0.05 flags."""
    from scipy.stats import chi2_contingency, ks_2samp

    flagged = set()
    for c in NUM:
        if ks_2samp(ref[c].to_numpy(), cur[c].to_numpy()).pvalue < 0.05:
            flagged.add(c)
    for c in CAT:
        table = pd.concat([ref[c].value_counts(), cur[c].value_counts()], axis=1).fillna(0).to_numpy()
        if chi2_contingency(table)[1] < 0.05:
            flagged.add(c)
    return flagged


def score_evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> set[str] | None:
    """Evidently's DataDriftPreset (None when evidently is not installed)."""
    try:
        from evidently import DataDefinition, Dataset, Report  # type: ignore[import-not-found]
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
    except ImportError:
        return None
    definition = DataDefinition(numerical_columns=NUM, categorical_columns=CAT)
    report = Report([DataDriftPreset()])
    snap = report.run(Dataset.from_pandas(cur, data_definition=definition),
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


def bench_scoring(rows_list: list[int], ref_rows: int, category: bool,
                  evidently: bool) -> list[dict[str, Any]]:
    ref = make_frame(ref_rows, seed=1, drift=False)
    if category:
        ref = ref.astype({c: "category" for c in CAT})
    t_prof, profile = timed(lambda: compute_profile(ref, NUM, CAT, target="label"))
    reference = Reference.from_profile(profile)
    out = []
    for rows in rows_list:
        cur = make_frame(rows, seed=2, drift=True)
        if category:
            cur = cur.astype({c: "category" for c in CAT})
        t_cal, run_ours = ctloop_scorer(reference, cur)
        t_ours = t_scipy = float("inf")
        for _ in range(3):  # interleaved, best of 3 each: load drift on a shared machine hits both
            t, ours = timed(run_ours)
            t_ours = min(t_ours, t)
            t, scipy_flags = timed(lambda cur=cur: score_scipy(ref, cur))
            t_scipy = min(t_scipy, t)
        t_ev, ev_flags = timed(lambda cur=cur: score_evidently(ref, cur) if evidently else None)
        ev_method = "Evidently DataDriftPreset defaults" if ev_flags is not None else "not installed"
        res = {
            "rows": rows, "ref_rows": ref_rows,
            "categorical_dtype": "category" if category else "object",
            "profile_s": t_prof, "calibrate_s": t_cal, "ctloop_s": t_ours,
            "ctloop_found": len(ours & DRIFTED), "ctloop_false": len(ours - DRIFTED),
            "scipy_s": t_scipy, "scipy_found": len(scipy_flags & DRIFTED),
            "scipy_false": len(scipy_flags - DRIFTED), "speedup_vs_scipy": t_scipy / t_ours,
        }
        if ev_flags is not None:
            res.update({"evidently": ev_method, "evidently_s": t_ev,
                        "evidently_found": len(ev_flags & DRIFTED),
                        "evidently_false": len(ev_flags - DRIFTED),
                        "speedup_vs_evidently": t_ev / t_ours})
        out.append(res)
        print(json.dumps(res), flush=True)
    return out


# --- ingest ---------------------------------------------------------------------------------------------


async def _drive(url: str, bodies: list[tuple[dict[str, str], bytes]], concurrency: int) -> float:
    """Seconds to POST every body over ``concurrency`` keep-alive HTTP/1.1 connections.

    A minimal raw-socket client: a general-purpose client library costs more CPU per request than the
    servers under test, and on two cores it would measure itself.
    """
    from urllib.parse import urlsplit

    u = urlsplit(url)
    queue: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        try:
            while not queue.empty():
                headers, body = queue.get_nowait()
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"POST {u.path} HTTP/1.1\r\nhost: {u.netloc}\r\ncontent-length: {len(body)}\r\n"
                             f"{head}\r\n".encode() + body)
                await writer.drain()
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                payload = await reader.readexactly(length)
                if not status.split()[1].startswith(b"2"):
                    raise RuntimeError(f"{url}: {status!r} {payload[:200]!r}")
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def _pair_bodies(recs: list[dict[str, Any]], n: int, size: int, batched: int) -> list[tuple[dict[str, str], bytes]]:
    """What a model server sends for ``n`` inferences of ``size`` rows: a request and a response event each.

    ``batched == 0``: KServe's logger form, one binary-mode event per POST (two POSTs per inference).
    ``batched > 0``: ``ctloop serve``'s form, ``batched`` inferences per POST (CloudEvents batched mode).
    """
    from ctloop.serving.payload import REQUEST_TYPE, RESPONSE_TYPE, EventContext, _Pair, batch_body
    from tests.helpers_drift import binary_event

    pairs = []
    for i in range(n):
        a = (i * size) % (len(recs) - size)
        req = {"instances": recs[a : a + size]}
        resp = {"predictions": [0.5] * size, "labels": [0] * size, "model_version": "1"}
        pairs.append((f"ev-{i}", req, resp))
    if not batched:
        out = []
        for eid, req, resp in pairs:
            out.append(binary_event("request", req, "churn", eid))
            out.append(binary_event("response", resp, "churn", eid))
        return out
    ctx = EventContext("churn", "default")
    bodies = []
    for k in range(0, n, batched):
        chunk = [_Pair(eid, json.dumps(req).encode(), json.dumps(resp).encode(), REQUEST_TYPE, RESPONSE_TYPE,
                       "2026-01-01T00:00:00+00:00") for eid, req, resp in pairs[k : k + batched]]
        body, _ = batch_body(chunk, "ctloop-serving", ctx)
        bodies.append(({"content-type": "application/cloudevents-batch+json"}, body))
    return bodies


def bench_ingest(requests: int, concurrency: int) -> dict[str, Any]:
    """The watcher's ingest rate (inferences/s, two events each) against ``ctloop serve``'s request rate."""
    from ctloop.registry import Registry
    from tests.conftest import free_port
    from tests.helpers_drift import FEATURES, records, stream, train_model

    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-"))
    model_dir = train_model(tmp / "model")
    reg = Registry(str(tmp / "registry"), "churn")
    reg.promote(reg.register(model_dir, {}), "bench")
    (tmp / "ctloop.yaml").write_text(json.dumps({"name": "churn", "data": {"source": "data"},
                                                 "registry": {"uri": "registry"},
                                                 "drift": {"window_rows": 2000,
                                                           "max_body_bytes": 50_000_000}}))
    frame = stream(20_000, seed=5)
    recs = records(frame)
    procs = []
    try:
        mport, wport = free_port(), free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ctloop.cli", "serve", "--config", str(tmp / "ctloop.yaml"), "--model-dir",
             str(model_dir), "--port", str(mport)], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ctloop.cli", "watch", "--config", str(tmp / "ctloop.yaml"), "--port",
             str(wport)], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(f"http://127.0.0.1:{mport}/v1/models/churn", procs[0])
        _wait(f"http://127.0.0.1:{wport}/healthz", procs[1])
        murl, wurl = f"http://127.0.0.1:{mport}/v1/models/churn:predict", f"http://127.0.0.1:{wport}/events"
        ct = {"content-type": "application/json"}
        model_bodies = [(ct, json.dumps({"instances": [recs[i % len(recs)]]}).encode())
                        for i in range(requests)]
        t_model = asyncio.run(_drive(murl, model_bodies, concurrency))
        res: dict[str, Any] = {"model_server_req_s": requests / t_model, "features": len(FEATURES)}
        for size in (1, 100):
            n = requests if size == 1 else max(requests // 10, 20)
            for form, batched in (("kserve_binary", 0), ("ctloop_batched_64", 64)):
                bodies = _pair_bodies(recs, n, size, batched if size == 1 else max(1, batched // size))
                t = asyncio.run(_drive(wurl, bodies, concurrency))
                res[f"watcher_rows_s_{size}_row_{form}"] = n * size / t
                res[f"ratio_{size}_row_{form}"] = (n * size / t) / res["model_server_req_s"]
        print(json.dumps(res, indent=1), flush=True)
        return res
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--ref-rows", type=int, default=100_000)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-scoring", action="store_true")
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--categorical", choices=["object", "category"], default="object",
                    help="in-memory dtype of the categorical columns (same for every method)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    if not a.skip_scoring:
        bench_scoring(a.rows, a.ref_rows, a.categorical == "category", not a.skip_evidently)
    if not a.skip_ingest:
        bench_ingest(a.requests, a.concurrency)


if __name__ == "__main__":
    main()
