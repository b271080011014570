"""Serving throughput/latency, side by side on the same trained churn model, one worker each:

(a) ``ctloop serve`` (compiled fast path), also with payload logging on: events to a real ``ctloop watch``
    (which shares the machine's cores) and to a sink that discards them (the server's own cost; with the
    default thread sender and with ``serving.logger.sender: process``), and with micro-batching on
    (64 rows / 500 us);
(b) a bare FastAPI app doing ``pandas.DataFrame`` + ``predict_proba`` on the same model folder;
(c) MLServer + mlserver-sklearn (separate venv, V2: it has no V1) serving the same joblib pipeline;
(d) ctloop's own HTTP stack returning a constant (the limit of the server itself).

Every server runs as a subprocess on 127.0.0.1 with one OpenMP thread, and is driven by ``wrk`` (Debian
package ``wrk``): single-row requests at c=1 and c=16, and 100-row requests at c=16 (rows/s). Each
server gets the same warm-up and the best of ``--rounds`` runs. Prints a Markdown table and the
ratios against (b), (c) and (d) measured in the same run.

    python benchmarks/bench_serving.py [--duration 5] [--rounds 1] [--trainer sklearn|torch]
        [--venvs DIR] [--skip-mlserver] [--only "(a)" "(d)"]
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
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], body: dict[str, Any], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            r = httpx.post(url, json=body, timeout=5)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _wrk(url: str, body: dict[str, Any], conns: int, duration: int, work: Path) -> dict[str, float]:
    script = work / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(json.dumps(body))}\n")
    out = subprocess.run(["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{duration}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    if "Requests/sec" not in out or " 0 requests in" in out:
        raise SystemExit(f"wrk got no answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": _ms(*p50.groups()), "p99_ms": _ms(*p99.groups()),  # type: ignore[union-attr]
            "non2xx": float(bad.group(1)) if bad else 0.0}


def _v2_body(frame: Any, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """MLServer's V2 request for a pandas-decoded pipeline input, asking for predict_proba."""
    n = len(frame)
    inputs = [{"name": c, "shape": [n], "datatype": "FP64",
               "data": [None if v != v else float(v) for v in frame[c]]} for c in numeric]
    inputs += [{"name": c, "shape": [n], "datatype": "BYTES", "data": [str(v) for v in frame[c]],
                "parameters": {"content_type": "str"}} for c in categorical]
    return {"parameters": {"content_type": "pd"}, "inputs": inputs, "outputs": [{"name": "predict_proba"}]}


def _mlserver(python: Path, model_dir: Path, work: Path, log: Any) -> tuple[subprocess.Popen[bytes], str]:
    folder = work / "mlserver"
    (folder / "churn").mkdir(parents=True)
    shutil.copy(model_dir / "model.joblib", folder / "churn" / "model.joblib")
    (folder / "churn" / "model-settings.json").write_text(json.dumps({
        "name": "churn", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"}}))
    port = _free_port()
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port(), "host": "127.0.0.1",
        "parallel_workers": 0, "debug": False, "metrics_endpoint": None}))
    mlserver = python.parent / "mlserver"
    proc = subprocess.Popen([str(mlserver), "start", str(folder)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
    return proc, f"http://127.0.0.1:{port}/v2/models/churn/infer"


def _metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _train(trainer: str, work: Path, cfg: Any) -> Path:
    from ctloop.schema import load_schema
    from tests.helpers_serving import training_frame

    model_dir = work / "model"
    schema = load_schema(cfg.schema_.path)
    if trainer == "torch":
        from ctloop.torch_trainer.trainer import train_torch

        train_torch(training_frame(0, 2000), schema, {"hidden": [64, 32], "max_epochs": 5}, 0, model_dir)
    else:
        from ctloop.train import train_sklearn

        train_sklearn(training_frame(0, 2000), schema, dict(cfg.model.params), 0, model_dir)
    return model_dir


def main() -> None:  # noqa: C901 - one linear script
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--trainer", choices=["sklearn", "torch"], default="sklearn")
    ap.add_argument("--venvs", type=Path, default=Path.home() / ".cache" / "ctloop-bench-venvs",
                    help="where the peers' separate virtualenvs live (created on first use)")
    ap.add_argument("--skip-mlserver", action="store_true")
    ap.add_argument("--only", nargs="+", default=None,
                    help="run only the servers whose name contains one of these (e.g. '(a)')")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    import yaml

    from ctloop.config import load_config
    from ctloop.model import load_model
    from ctloop.registry import Registry
    from tests.conftest import make_project
    from tests.helpers_serving import records, training_frame

    work = Path(tempfile.mkdtemp(prefix="ctloop-bench-serving-"))
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(work / "servers.log", "wb")  # noqa: SIM115
    try:
        project = make_project(work / "proj", days=2, rows_per_day=200)
        cfg = load_config(project)
        model_dir = _train(args.trainer, work, cfg)
        manifest = json.loads((model_dir / "model.json").read_text())
        print(f"model: {args.trainer} {manifest.get('estimator', '')}; fast path: "
              f"{manifest['fast_path'].get('status')} {manifest['fast_path'].get('kind', '')}", flush=True)
        reg = Registry(cfg.registry.uri, cfg.name)
        reg.promote(reg.register(model_dir, {"run_id": "bench"}), "bench")
        model = load_model(model_dir)
        one = training_frame(9, 1)
        hundred = training_frame(10, 100)
        v1 = {"one": {"instances": records(one, model.features)},
              "hundred": {"instances": records(hundred, model.features)}}

        # the payload-logging variant posts to a real watcher
        watch_port = _free_port()
        raw = yaml.safe_load(project.read_text())
        raw["drift"] = {**raw.get("drift", {}), "port": watch_port}
        raw.setdefault("serving", {})["logger"] = {"url": f"http://127.0.0.1:{watch_port}/events"}
        logged = project.parent / "ctloop-logged.yaml"
        logged.write_text(yaml.safe_dump(raw))
        watcher = subprocess.Popen([sys.executable, "-m", "ctloop.cli", "watch", "--config", str(logged),
                                    "--port", str(watch_port)], stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append(watcher)

        sink_port = _free_port()
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "benchmarks/null_sink_app.py"), "--port",
                                       str(sink_port)], stdout=log, stderr=subprocess.STDOUT, env=env))
        raw["serving"]["logger"] = {"url": f"http://127.0.0.1:{sink_port}/events"}
        nulled = project.parent / "ctloop-null-sink.yaml"
        nulled.write_text(yaml.safe_dump(raw))
        raw["serving"]["logger"] = {"url": f"http://127.0.0.1:{sink_port}/events", "sender": "process"}
        nulled_process = project.parent / "ctloop-null-sink-process.yaml"
        nulled_process.write_text(yaml.safe_dump(raw))

        raw["serving"].pop("logger")
        raw["serving"]["batching"] = {"enabled": True, "max_batch_size": 64, "max_wait_us": 500}
        batched = project.parent / "ctloop-batching.yaml"
        batched.write_text(yaml.safe_dump(raw))

        servers: dict[str, tuple[subprocess.Popen[bytes], str, dict[str, Any], dict[str, Any]]] = {}

        def start(name: str, cmd: list[str], path: str) -> None:
            port = _free_port()
            p = subprocess.Popen([*cmd, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
            procs.append(p)
            servers[name] = (p, f"http://127.0.0.1:{port}{path.format(name=cfg.name)}", v1["one"], v1["hundred"])

        ctl = [sys.executable, "-m", "ctloop.cli", "serve", "--model-dir", str(model_dir)]
        start("(a) ctloop", [*ctl, "--config", str(project)], "/v1/models/{name}:predict")
        start("(a) ctloop, logging on (watcher)", [*ctl, "--config", str(logged)], "/v1/models/{name}:predict")
        start("(a) ctloop, logging on (null sink)", [*ctl, "--config", str(nulled)], "/v1/models/{name}:predict")
        start("(a) ctloop, logging on (null sink, process sender)", [*ctl, "--config", str(nulled_process)],
              "/v1/models/{name}:predict")
        start("(a) ctloop, micro-batching 64 rows / 500 us", [*ctl, "--config", str(batched)],
              "/v1/models/{name}:predict")
        start("(b) bare FastAPI + pandas", [sys.executable, str(ROOT / "benchmarks/bare_serving_app.py"),
                                            "--model-dir", str(model_dir)], "/predict")
        start("(d) ctloop stack, constant", [sys.executable, str(ROOT / "benchmarks/constant_serving_app.py"),
                                             "--config", str(project), "--model-dir", str(model_dir)],
              "/v1/models/{name}:predict")
        if not args.skip_mlserver and args.trainer == "sklearn" and (not args.only or "(c)" in args.only):
            import sklearn
            from peer_venv import ensure_venv

            # the same scikit-learn as the project, so the joblib pipeline unpickles unchanged
            python = ensure_venv(args.venvs, "mlserver", [*MLSERVER_PACKAGES, f"scikit-learn=={sklearn.__version__}"])
            p, url = _mlserver(python, model_dir, work, log)
            procs.append(p)
            servers["(c) MLServer + mlserver-sklearn (V2)"] = (
                p, url, _v2_body(one, model.numeric_features, model.categorical_features),
                _v2_body(hundred, model.numeric_features, model.categorical_features))
        if args.only:
            servers = {k: v for k, v in servers.items() if any(o in k for o in args.only)}
        for _name, (p, url, body, _) in servers.items():
            _wait(url, p, body)
            _wrk(url, body, 4, 2, work)  # the same warm-up for every server

        best: dict[tuple[str, str], dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, (_, url, body1, body100) in servers.items():
                for key, body, conns in (("c1", body1, 1), ("c16", body1, 16), ("rows", body100, 16)):
                    r = _wrk(url, body, conns, args.duration, work)
                    if (name, key) not in best or r["rps"] > best[(name, key)]["rps"]:
                        best[(name, key)] = r
        watched = "(a) ctloop, logging on (watcher)"
        logged_base = servers[watched][1].split("/v1/")[0] if watched in servers else None
        time.sleep(1.0)  # the last flush_seconds of events
        if logged_base:
            posts = _metric(logged_base, "ctloop_serving_payload_posts_total")
            dropped = _metric(logged_base, "ctloop_serving_payload_events_dropped_total")
            sent = _metric(logged_base, "ctloop_serving_payload_events_sent_total")

        print("\n| server | c=1 req/s | c=1 p50 / p99 ms | c=16 req/s | c=16 p50 / p99 ms "
              "| 100-row requests, c=16: rows/s | non-2xx |")
        print("|---|---|---|---|---|---|---|")
        for name in servers:
            a, b, c = best[(name, "c1")], best[(name, "c16")], best[(name, "rows")]
            bad = int(a["non2xx"] + b["non2xx"] + c["non2xx"])
            print(f"| {name} | {a['rps']:.0f} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {b['rps']:.0f} | "
                  f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {c['rps'] * 100:.0f} | {bad} |")
        ours = best[("(a) ctloop", "c16")]["rps"]
        print("\nratios at c=16 (single-row requests/s):")
        for name in servers:
            if name != "(a) ctloop":
                print(f"- {name} / (a) ctloop: {best[(name, 'c16')]['rps'] / ours:.3f}   "
                      f"(a) ctloop / {name}: {ours / best[(name, 'c16')]['rps']:.2f}x")
        if logged_base:
            rows = _metric(f"http://127.0.0.1:{watch_port}", 'ctloop_watcher_rows_total{kind="request"}')
            print(f"\npayload logging: {int(posts)} POSTs to the watcher carried {int(sent)} events "
                  f"({int(dropped)} dropped) and {int(rows)} request rows the watcher ingested: "
                  f"{rows / max(posts, 1):.1f} rows per POST")
        for name in ("(a) ctloop, logging on (null sink)", "(a) ctloop, logging on (null sink, process sender)"):
            if name in servers:
                base = servers[name][1].split("/v1/")[0]
                print(f"{name}: {int(_metric(base, 'ctloop_serving_payload_events_sent_total'))} events sent, "
                      f"{int(_metric(base, 'ctloop_serving_payload_events_dropped_total'))} dropped, "
                      f"{int(_metric(base, 'ctloop_serving_payload_posts_total'))} POSTs")
        print("goals: (a)/(b) >= 15x, (a)/(c) >= 15x, (a)/(d) >= 0.5x at c=16; p99 <= 10 ms at c=16; "
              "logging on >= 0.9x off; <= 1 POST per 32 rows")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        if os.environ.get("CTLOOP_BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
