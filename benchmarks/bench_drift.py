"""Drift scoring and event-ingest benchmark (prints ratios against baselines measured in the same run).

1. Scoring: ``rows`` x (20 numeric + 5 string categorical), 4 drifted columns (3 numeric, 1 categorical),
   every method reading the same parquet files. ctloop's monitor (reference profile → binned counts →
   PSI/JS with calibrated thresholds), on the Arrow read path (``pyarrow.parquet`` columns,
   dictionary-encoded in C++) and on pandas ``object`` string columns; a scipy baseline (two-sample KS
   per numeric column, chi-squared per categorical column, p < 0.05); and two library peers, each in its
   own virtualenv (created under ``--venvs`` on first use): Evidently's ``DataDriftPreset`` and NannyML's
   univariate drift (Jensen-Shannon, Wasserstein), see ``drift_peers.py``. Every method is warmed up
   (imported and run once) before timing; best of 3 at ≤100k rows, best of ``--repeat-large`` above.
2. Ingest: the watcher over HTTP (``ctloop watch``, KServe-format CloudEvents) vs requests/s of a KServe
   ModelServer serving a ctloop model: one-row request events, the two events KServe's logger really
   sends per inference (request + response), batched events (50 inferences per POST), and the two-event
   stream spread over 1, 2 and 3 watcher replicas (fleet mode) on the same machine.

Run: ``python benchmarks/bench_drift.py [--rows 100000 1000000] [--skip-ingest] [--venvs DIR]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def ctloop_scorer(reference: Reference, cols: dict[str, Any], rows: int):  # type: ignore[no-untyped-def]
    """Seconds to calibrate, and a function that bins + scores one window of all rows."""
    cfg = DriftConfig(window_rows=rows, min_rows=1, consecutive_windows=1)
    t_cal, monitor = timed(lambda: DriftMonitor(reference, cfg))

    def run() -> set[str]:
        monitor.restart()
        return set(monitor.ingest(cols, rows)[0].drifted)

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


# Library peers run in their own virtualenvs (never the project's), created here on first use.
PEERS = {"evidently": ["evidently==0.7.23", "pandas<3", "pyarrow"],
         "nannyml": ["nannyml==0.13.1", "statsmodels", "pyarrow"]}  # nannyml imports statsmodels undeclared


def peer_python(venvs: Path, name: str) -> Path:
    """The peer venv's interpreter (``python -m venv`` + pinned ``pip install`` when it is missing)."""
    py = venvs / name / "bin" / "python"
    if not py.exists():
        print(f"creating {venvs / name} ({' '.join(PEERS[name])})", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venvs / name)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEERS[name]], check=True)
    return py


def run_peer(py: Path, name: str, ref: Path, cur: Path, repeat: int) -> dict[str, Any]:
    """One peer on the same parquet files: warmed up (import + a small run), best of ``repeat``."""
    proc = subprocess.run([str(py), str(ROOT / "benchmarks" / "drift_peers.py"), "--peer", name, "--ref", str(ref),
                           "--cur", str(cur), "--num", ",".join(NUM), "--cat", ",".join(CAT),
                           "--repeat", str(repeat)], capture_output=True, text=True, check=False,
                          env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"})  # no telemetry
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_scoring(rows_list: list[int], ref_rows: int, peers: list[str], venvs: Path,
                  repeat_large: int) -> list[dict[str, Any]]:
    """Every method on the same parquet files with string categorical columns, warm, best of N each."""
    import pyarrow.parquet as pq

    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-drift-"))
    ref = make_frame(ref_rows, seed=1, drift=False)
    ref.to_parquet(tmp / "ref.parquet")
    ref = pd.read_parquet(tmp / "ref.parquet")
    t_prof, profile = timed(lambda: compute_profile(ref, NUM, CAT, target="label"))
    reference = Reference.from_profile(profile)
    pys = {p: peer_python(venvs, p) for p in peers}
    out = []
    for rows in rows_list:
        path = tmp / f"cur-{rows}.parquet"
        make_frame(rows, seed=2, drift=True).to_parquet(path)
        cur = pd.read_parquet(path)  # string columns as Python str objects (what the peers get)
        # the Arrow read path: parquet's dictionary pages become Arrow dictionary arrays, strings stay in
        # Arrow buffers and ctloop only looks up the few distinct values
        table = pq.read_table(path, read_dictionary=CAT)
        arrow_cols = {c: table.column(c) for c in NUM + CAT}
        object_cols = {c: cur[c] for c in NUM + CAT}
        repeat = 3 if rows <= 100_000 else repeat_large
        t_cal, run_arrow = ctloop_scorer(reference, arrow_cols, rows)
        _t, run_object = ctloop_scorer(reference, object_cols, rows)
        for fn in (run_arrow, run_object, lambda cur=cur: score_scipy(ref, cur.iloc[:1000])):
            fn()  # warm-up: every in-process method runs once before timing
        t_arrow = t_object = t_scipy = float("inf")
        for _ in range(repeat):  # interleaved, best of N each: load drift on a shared machine hits all
            t, ours = timed(run_arrow)
            t_arrow = min(t_arrow, t)
            t, ours_obj = timed(run_object)
            t_object = min(t_object, t)
            t, scipy_flags = timed(lambda cur=cur: score_scipy(ref, cur))
            t_scipy = min(t_scipy, t)
        res: dict[str, Any] = {
            "rows": rows, "ref_rows": ref_rows, "repeat": repeat, "profile_s": t_prof, "calibrate_s": t_cal,
            "ctloop_arrow_s": t_arrow, "ctloop_object_s": t_object,
            "ctloop_found": len(ours & DRIFTED), "ctloop_false": len(ours - DRIFTED),
            "ctloop_object_same_flags": ours == ours_obj,
            "scipy_s": t_scipy, "scipy_found": len(scipy_flags & DRIFTED), "scipy_false": len(scipy_flags - DRIFTED),
            "speedup_vs_scipy": t_scipy / t_arrow,
        }
        for p, py in pys.items():
            r = run_peer(py, p, tmp / "ref.parquet", path, repeat)
            flags = set(r["flagged"])
            res.update({f"{p}_s": r["best_s"], f"{p}_runs_s": r["runs_s"], f"{p}_warmup_s": r["warmup_s"],
                        f"{p}_found": len(flags & DRIFTED), f"{p}_false": len(flags - DRIFTED),
                        f"speedup_vs_{p}": r["best_s"] / t_arrow, f"{p}_input_dtype": r["categorical_dtype"]})
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


def _inference_events(recs: list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    """The two structured CloudEvents KServe's logger sends for one 1-row inference (request, response)."""
    from tests.helpers_drift import REQUEST, RESPONSE

    eid = f"bench-{i}"
    base = {"specversion": "1.0", "id": eid, "source": "http://localhost/churn", "inferenceservicename": "churn",
            "datacontenttype": "application/json"}
    return [{**base, "type": REQUEST, "data": {"instances": [recs[i % len(recs)]]}},
            {**base, "type": RESPONSE, "data": {"predictions": [0.25 + 0.5 * ((i * 7919) % 100) / 100]}}]


def _binary(ev: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    headers = {f"ce-{k}": str(v) for k, v in ev.items() if k not in ("data", "datacontenttype")}
    headers["content-type"] = "application/json"
    return headers, json.dumps(ev["data"]).encode()


def _start_watchers(tmp: Path, n: int) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    from tests.conftest import free_port

    drift: dict[str, Any] = {"window_rows": 2000, "max_body_bytes": 50_000_000}
    if n > 1:
        drift.update(aggregation="prometheus", replicas=n)
    cfg = tmp / f"ctloop-{n}.yaml"
    cfg.write_text(json.dumps({"name": "churn", "data": {"source": "data"}, "registry": {"uri": "registry"},
                               "drift": drift}))
    procs, urls = [], []
    for _ in range(n):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "ctloop.cli", "watch", "--config", str(cfg), "--port",
                                       str(port), "--no-triggers"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    for p, u in zip(procs, urls, strict=True):
        _wait(f"{u}/healthz", p)
        for _ in range(600):  # the champion's reference loaded and its thresholds calibrated
            if httpx_json(f"{u}/healthz").get("version") is not None:
                break
            time.sleep(0.1)
    return procs, urls


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


Body = tuple[dict[str, str], bytes]


async def _drive_many(urls: list[str], units: list[list[Body]], concurrency: int) -> float:
    """POST ``units`` (an inference's events stay together) round robin over ``urls``."""
    per = [[b for u in units[i :: len(urls)] for b in u] for i in range(len(urls))]
    conns = max(concurrency // len(urls), 1)
    t0 = time.perf_counter()
    await asyncio.gather(*(_drive(f"{u}/events", b, conns) for u, b in zip(urls, per, strict=True)))
    return time.perf_counter() - t0


def bench_ingest(requests: int, concurrency: int, replicas: list[int]) -> dict[str, Any]:
    from ctloop.registry import Registry
    from ctloop.watcher.events import BATCH_CONTENT_TYPE
    from tests.conftest import free_port
    from tests.helpers_drift import FEATURES, binary_event, records, stream, train_model

    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-"))
    model_dir = train_model(tmp / "model")
    reg = Registry(str(tmp / "registry"), "churn")
    reg.promote(reg.register(model_dir, {}), "bench")
    frame = stream(20_000, seed=5)
    recs = records(frame)
    res: dict[str, Any] = {"features": len(FEATURES), "requests": requests, "concurrency": concurrency}
    mport = free_port()
    model = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers_drift_server", "--ctloop-model-dir", str(model_dir),
         "--ctloop-name", "churn", "--ctloop-port", str(mport), "--ctloop-watcher", ""],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{mport}/v1/models/churn", model)
        ct = {"content-type": "application/json"}
        model_bodies = [(ct, json.dumps({"instances": [recs[i % len(recs)]]}).encode()) for i in range(requests)]
        asyncio.run(_drive(f"http://127.0.0.1:{mport}/v1/models/churn:predict", model_bodies[:100], concurrency))
        res["model_server_req_s"] = requests / asyncio.run(
            _drive(f"http://127.0.0.1:{mport}/v1/models/churn:predict", model_bodies, concurrency))
    finally:
        _stop([model])
    pairs = [[_binary(ev) for ev in _inference_events(recs, i)] for i in range(requests)]
    warm = [[_binary(ev) for ev in _inference_events(recs, requests + i)] for i in range(100)]
    batch = 50  # inferences per batched POST (100 events)
    batched = [[({"content-type": BATCH_CONTENT_TYPE},
                 json.dumps([ev for i in range(a, a + batch) for ev in _inference_events(recs, i)]).encode())]
               for a in range(0, requests, batch)]
    one_row = [[binary_event("request", {"instances": [recs[i % len(recs)]]}, "churn")] for i in range(requests)]
    for n in replicas:
        procs, urls = _start_watchers(tmp, n)
        try:
            asyncio.run(_drive_many(urls, warm, concurrency))  # warm-up
            t = asyncio.run(_drive_many(urls, pairs, concurrency))
            res[f"replicas_{n}_inferences_s_two_events"] = requests / t
            res[f"replicas_{n}_per_replica_inferences_s"] = requests / t / n
            if n == 1:
                res["watcher_rows_s_1_row_request_events"] = requests / asyncio.run(
                    _drive_many(urls, one_row, concurrency))
                res["watcher_inferences_s_batched_50"] = requests / asyncio.run(
                    _drive_many(urls, batched, concurrency))
                res["ratio_two_events_vs_model_server"] = res["replicas_1_inferences_s_two_events"] / \
                    res["model_server_req_s"]
                res["ratio_batched_vs_model_server"] = res["watcher_inferences_s_batched_50"] / \
                    res["model_server_req_s"]
            accepted = sum(httpx_json(f"{u}/status")["events"].get("accepted", 0) for u in urls)
            res[f"replicas_{n}_accepted_events"] = accepted
        finally:
            _stop(procs)
    print(json.dumps(res), flush=True)
    return res


def httpx_json(url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(url, timeout=10).json())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--ref-rows", type=int, default=100_000)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-scoring", action="store_true")
    ap.add_argument("--peers", nargs="*", default=sorted(PEERS), choices=sorted(PEERS),
                    help="library peers, each in its own venv under --venvs (created on first use)")
    ap.add_argument("--venvs", type=Path, default=Path.home() / ".cache" / "ctloop-bench-venvs")
    ap.add_argument("--repeat-large", type=int, default=2, help="runs per method above 100k rows (best of)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    a = ap.parse_args()
    if not a.skip_scoring:
        bench_scoring(a.rows, a.ref_rows, a.peers, a.venvs, a.repeat_large)
    if not a.skip_ingest:
        bench_ingest(a.requests, a.concurrency, a.replicas)


if __name__ == "__main__":
    main()
