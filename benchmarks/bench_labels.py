"""Delayed labels: label-join throughput (in-process and over HTTP) and prediction-store cost.

1. **Join in-process**: ``QualityMonitor.apply_labels`` (SQLite lookup + one transaction per batch) on
   ``parse_labels_body`` output, 1,000-label batches, against a store holding ``--stored`` predictions.
   Baseline, same run, same batches: a plain in-memory ``dict`` join (id → row, set the label; nothing
   persisted). Best of ``--repeats`` passes each (a fresh copy of the filled store and a fresh dict per
   pass, one warm-up batch before each). Goal: ≥ 200k labels/s.
2. **Join over HTTP**: ``POST /labels`` on the real watcher app (uvicorn on 127.0.0.1, bearer token),
   1,000-label batches, one client. Baseline, same server, same bodies: a route that reads the body and
   parses the JSON (the transport and parse cost alone).
3. **Store cost**: a child process stores ``--million`` × 1M predictions (ids ``YYYYMMDD-N`` as
   ``ctloop datagen`` writes, one slice column) in 1,000-row batches and reports bytes per prediction on
   disk (database + WAL) and its peak RSS. Baseline, same run: a naive SQLite table (rowid, UNIQUE TEXT
   id, REAL probability, REAL time, TEXT slice) for disk, and a Python ``dict`` of the same predictions for
   RSS. Goals: ≤ 100 B per prediction on disk, ≤ 200 MB RSS at 1M.

    python benchmarks/bench_labels.py [--stored 200000] [--batches 100] [--http-batches 50] [--million 1]
                                      [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 1000


def _cfg(root: Path, stored: int) -> Any:
    from ctloop.config import parse_config

    return parse_config({"name": "bench", "data": {"source": str(root / "data")},
                         "registry": {"uri": str(root / "registry")},
                         "triggers": {"token_file": str(root / "token")},
                         "gate": {"slices": [{"column": "plan", "min": 0.5}]},
                         "monitoring": {"labels": {"store": str(root / "p.sqlite"),
                                                   "max_predictions": max(stored, 1) * 2}}})


def _fill(monitor: Any, n: int, prefix: str = "") -> list[str]:
    ids: list[str] = []
    rng = np.random.default_rng(0)
    for start in range(0, n, BATCH):
        chunk = [f"{prefix}20260101-{i}" for i in range(start, min(n, start + BATCH))]
        p = rng.random(len(chunk))
        monitor.record(chunk, 1, p, (p >= 0.5).astype(int), {"plan": ["basic"] * len(chunk)})
        ids.extend(chunk)
    return ids


def _bodies(ids: list[str], batches: int, seed: int, ordered: bool = False) -> list[bytes]:
    """Label bodies for ``batches`` × 1,000 stored ids: in prediction order, or in random order."""
    rng = np.random.default_rng(seed)
    if ordered:
        start = int(rng.integers(0, max(1, len(ids) - batches * BATCH)))
        pick = np.arange(start, start + batches * BATCH)
    else:
        pick = rng.permutation(len(ids))[: batches * BATCH]
    out = []
    for b in range(batches):
        rows = [{"id": ids[i], "label": int(i % 3 == 0)} for i in pick[b * BATCH:(b + 1) * BATCH]]
        out.append(json.dumps({"model": "bench", "labels": rows}).encode())
    return out


def bench_in_process(stored: int, batches: int, ordered: bool, repeats: int) -> dict[str, float]:
    """Best of ``repeats`` passes over the same batches, each pass on a fresh copy of one filled store
    (a label joins once) and a fresh dict; one warm-up batch before each pass, for both."""
    from prometheus_client import CollectorRegistry

    from ctloop.quality.labels import parse_labels_body
    from ctloop.quality.monitor import QualityMonitor, open_store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = _cfg(root, stored)
        mon = QualityMonitor(cfg, open_store(cfg), CollectorRegistry())
        ids = _fill(mon, stored)
        mon.store.close()  # the last connection out checkpoints the WAL: one file to copy
        bodies = _bodies(ids, batches, 1, ordered)
        warm = _bodies(ids, 1, 99)[0]
        ours = base = float("inf")
        matched = 0
        for r in range(repeats):
            run = root / f"run{r}"
            run.mkdir()
            shutil.copyfile(root / "p.sqlite", run / "p.sqlite")
            cfg_r = _cfg(run, stored)
            mon = QualityMonitor(cfg_r, open_store(cfg_r), CollectorRegistry())
            mon.set_version(1, {})
            mon.apply_labels(parse_labels_body(warm, "bench"))
            t0 = time.perf_counter()
            matched = 0
            for body in bodies:
                matched += mon.apply_labels(parse_labels_body(body, "bench")).counts["matched"]
            ours = min(ours, time.perf_counter() - t0)
            mon.store.close()
            table = {i: [0.5, 1, 0, None] for i in ids}
            _dict_join(table, warm)
            t0 = time.perf_counter()
            for body in bodies:
                _dict_join(table, body)
            base = min(base, time.perf_counter() - t0)
    n = batches * BATCH
    return {"labels": n, "matched": matched, "ours_per_s": n / ours, "base_per_s": n / base}


def _dict_join(table: dict[str, list[Any]], body: bytes) -> None:
    """The baseline: the same parse, then set the label of each known, unlabelled id in a dict."""
    from ctloop.quality.labels import parse_labels_body

    for lab in parse_labels_body(body, "bench"):
        row = table.get(lab.id)
        if row is not None and row[3] is None:
            row[3] = lab.label


def bench_http(stored: int, batches: int) -> dict[str, float]:
    import httpx
    import uvicorn
    from prometheus_client import CollectorRegistry
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ctloop.quality.monitor import QualityMonitor, open_store
    from ctloop.watcher import build_app

    async def echo(request: Request) -> JSONResponse:
        doc = json.loads(await request.body())
        return JSONResponse({"rows": len(doc["labels"])})

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "token").write_text("bench-token")
        cfg = _cfg(root, stored)
        reg = CollectorRegistry()
        mon = QualityMonitor(cfg, open_store(cfg), reg)
        mon.set_version(1, {})
        ids = _fill(mon, stored)
        app = build_app(cfg, reg, extra_routes=[Route("/echo", echo, methods=["POST"])], quality=mon,
                        follow_champion=False)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.05)
        bodies = _bodies(ids, batches, 2)
        headers = {"authorization": "Bearer bench-token", "content-type": "application/json"}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                for path in ("/labels", "/echo"):  # warm-up, same for both
                    c.post(path, content=_bodies(ids, 1, 98)[0], headers=headers).raise_for_status()
                t0 = time.perf_counter()
                for body in bodies:
                    c.post("/labels", content=body, headers=headers).raise_for_status()
                ours = time.perf_counter() - t0
                t0 = time.perf_counter()
                for body in bodies:
                    c.post("/echo", content=body, headers=headers).raise_for_status()
                base = time.perf_counter() - t0
        finally:
            server.should_exit = True
            th.join(10)
            mon.store.close()
    n = batches * BATCH
    return {"labels": n, "ours_per_s": n / ours, "base_per_s": n / base}


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: per address space, so not inherited from the parent like ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _store_child(kind: str, n: int, path: str) -> None:
    """Run in a child process: store ``n`` predictions one way, print size and peak RSS as JSON."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    keep: Any = None
    if kind == "ctloop":
        from ctloop.quality.store import PredictionStore

        store = PredictionStore(path, max_predictions=n + 1)
        for start in range(0, n, BATCH):
            ids = [f"20260101-{i}" for i in range(start, min(n, start + BATCH))]
            p = rng.random(len(ids))
            store.add(ids, 1, p, (p >= 0.5).astype(int), 1.8e9 + start / 100,
                      {"plan": [("basic", "plus", "premium")[i % 3] for i in range(len(ids))]})
        store.close()
    elif kind == "naive":
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE p (id TEXT UNIQUE, v INTEGER, p REAL, yhat INTEGER, t REAL, plan TEXT, y INTEGER)")
        for start in range(0, n, BATCH):
            rows = [(f"20260101-{i}", 1, float(rng.random()), 0, 1.8e9 + i / 100, ("basic", "plus", "premium")[i % 3])
                    for i in range(start, min(n, start + BATCH))]
            db.execute("BEGIN")
            db.executemany("INSERT INTO p (id, v, p, yhat, t, plan) VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        db.close()
    else:  # a plain in-memory dict: the RSS baseline
        keep = {}
        for i in range(n):
            keep[f"20260101-{i}"] = (1, float(rng.random()), 0, 1.8e9 + i / 100, ("basic", "plus", "premium")[i % 3])
    elapsed = time.perf_counter() - t0
    size = sum(os.path.getsize(f) for f in (path, path + "-wal") if os.path.exists(f))
    rss_mb = _peak_rss_mb()
    print(json.dumps({"kind": kind, "n": n, "bytes": size, "rss_mb": rss_mb, "seconds": elapsed,
                      "kept": len(keep) if keep else 0}))


def bench_store(n: int) -> dict[str, dict[str, float]]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("ctloop", "naive", "dict"):
            path = str(Path(tmp) / f"{kind}.sqlite")
            r = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(n), "--path", path],
                               capture_output=True, text=True, check=True, timeout=1800)
            out[kind] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stored", type=int, default=200_000)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--http-batches", type=int, default=50)
    ap.add_argument("--million", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3, help="in-process join: best of this many passes")
    ap.add_argument("--child")
    ap.add_argument("--n", type=int)
    ap.add_argument("--path")
    a = ap.parse_args()
    if a.child:
        _store_child(a.child, a.n, a.path)
        return
    for ordered in (True, False):
        r = bench_in_process(a.stored, a.batches, ordered, a.repeats)
        print(f"join in-process, labels in {'prediction' if ordered else 'random'} order ({r['labels']} labels, "
              f"{BATCH}/batch, {a.stored} stored, {r['matched']} matched, best of {a.repeats}): "
              f"{r['ours_per_s']:,.0f} labels/s; "
              f"dict baseline {r['base_per_s']:,.0f} labels/s; ratio {r['ours_per_s'] / r['base_per_s']:.2f}x "
              "(goal >= 200,000 labels/s)")
    h = bench_http(a.stored, a.http_batches)
    print(f"join over HTTP ({h['labels']} labels, {BATCH}/batch): {h['ours_per_s']:,.0f} labels/s; "
          f"read+parse baseline {h['base_per_s']:,.0f} labels/s; ratio {h['ours_per_s'] / h['base_per_s']:.2f}x")
    n = int(a.million * 1_000_000)
    s = bench_store(n)
    c, nv, d = s["ctloop"], s["naive"], s["dict"]
    print(f"store {n:,} predictions: ctloop {c['bytes'] / n:.1f} B/prediction on disk (goal <= 100), "
          f"peak RSS {c['rss_mb']:.0f} MB (goal <= 200), {n / c['seconds']:,.0f} predictions/s stored")
    print(f"  naive SQLite table: {nv['bytes'] / n:.1f} B/prediction; ratio {c['bytes'] / nv['bytes']:.2f}x")
    print(f"  in-memory dict: peak RSS {d['rss_mb']:.0f} MB; ratio {c['rss_mb'] / d['rss_mb']:.2f}x")
    print("  (each child imports numpy; the ctloop child also imports ctloop.quality.store: RSS includes them)")


if __name__ == "__main__":
    main()
