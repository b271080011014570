"""Serving throughput/latency: ctloop's KServe server vs a bare FastAPI app, same model, same payload.

Both servers run as subprocesses on 127.0.0.1 and are driven by ``wrk`` (Debian package ``wrk``) at
c=1 and c=8, interleaved over several rounds (the best round of each is kept, which damps noise
from other work on the machine). Prints a Markdown table with the ratios ctloop / bare.

    python benchmarks/bench_serving.py [--duration 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, body: dict, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.post(url, json=body, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready")


def _wrk(url: str, body: dict, conns: int, duration: int, work: Path) -> dict[str, float]:
    script = work / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(json.dumps(body))}\n")
    out = subprocess.run(["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{duration}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    if "Requests/sec" not in out or " 0 requests in" in out:
        raise SystemExit(f"wrk got no answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale,  # type: ignore[union-attr]
            "non2xx": float(bad.group(1)) if bad else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--estimator", default=None,
                    help="override the estimator (logistic_regression makes server overhead visible)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    from ctloop.config import load_config
    from ctloop.registry import Registry
    from tests.conftest import make_project
    from tests.helpers_serving import records, training_frame

    work = Path(tempfile.mkdtemp(prefix="ctloop-bench-serving-"))
    procs: list[subprocess.Popen] = []
    try:
        project = make_project(work / "proj", days=2, rows_per_day=200)
        cfg = load_config(project)
        from ctloop.schema import load_schema
        from ctloop.train import train_sklearn

        model_dir = work / "model"
        params = dict(cfg.model.params)
        if args.estimator:
            params = {"estimator": args.estimator}
        train_sklearn(training_frame(0, 2000), load_schema(cfg.schema_.path), params, 0, model_dir)
        print(f"model: {params}")
        reg = Registry(cfg.registry.uri, cfg.name)
        reg.promote(reg.register(model_dir, {"run_id": "bench"}))
        from ctloop.model import load_model

        body = {"instances": records(training_frame(9, 1), load_model(model_dir).features)}

        ctloop_port, bare_port = _free_port(), _free_port()
        log = open(work / "servers.log", "wb")  # noqa: SIM115
        # one OpenMP thread per server (both alike): spinning OpenMP pools distort a shared small machine
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-m", "ctloop.cli", "serve", "--config", str(project),
                                       "--port", str(ctloop_port)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env))
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "benchmarks/bare_serving_app.py"),
                                       "--model-dir", str(model_dir), "--port", str(bare_port)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env))
        urls = {"ctloop": f"http://127.0.0.1:{ctloop_port}/v1/models/{cfg.name}:predict",
                "bare": f"http://127.0.0.1:{bare_port}/predict"}
        for name, url in urls.items():
            _wait(url, procs[0 if name == "ctloop" else 1], body)
            _wrk(url, body, 4, 2, work)  # warm-up

        best: dict[tuple[str, int], dict[str, float]] = {}
        for _ in range(args.rounds):
            for conns in (1, 8):
                for name in ("bare", "ctloop"):
                    r = _wrk(urls[name], body, conns, args.duration, work)
                    key = (name, conns)
                    if key not in best or r["rps"] > best[key]["rps"]:
                        best[key] = r
        print("| c | bare req/s | ctloop req/s | throughput ratio | bare p99 ms | ctloop p99 ms | p99 ratio "
              "| non-2xx |")
        print("|---|---|---|---|---|---|---|---|")
        for conns in (1, 8):
            b, c = best[("bare", conns)], best[("ctloop", conns)]
            print(f"| {conns} | {b['rps']:.0f} | {c['rps']:.0f} | {c['rps'] / b['rps']:.2f}x | "
                  f"{b['p99_ms']:.2f} | {c['p99_ms']:.2f} | {c['p99_ms'] / b['p99_ms']:.2f}x | "
                  f"{int(b['non2xx'] + c['non2xx'])} |")
        print("goal: throughput ratio >= 0.95x, p99 ratio <= 1.2x")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
