"""``serving.workers``: several model-server processes on one port.

The parent starts ``workers`` fresh processes (``spawn``); each binds the port with ``SO_REUSEPORT`` (the
kernel spreads connections), loads the model, follows the champion alias and logs payloads on its own.
Metrics use prometheus_client's multiprocess mode: every worker writes its samples to a shared folder and
``/metrics`` on any worker returns the sums over all of them (gauges: the minimum over live workers), so
Prometheus scrapes one consistent total. SIGTERM/SIGINT on the parent stops every worker; a worker that
dies stops the others, and the parent exits non-zero.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from typing import Any

from ctloop.config import ProjectConfig
from ctloop.errors import ModelError

log = logging.getLogger("ctloop.serving")


def _worker(config_json: str, port: int | None, model_dir: str | None, metrics_dir: str) -> None:
    """One worker process: multiprocess metrics on, then the ordinary server with a shared port."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read when prometheus_client is first imported
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s %(message)s")
    from ctloop.config import config_from_json
    from ctloop.serving.server import serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    serve(config_from_json(config_json), port=port, model_dir=model_dir, reuse_port=True,
          multiprocess_dir=metrics_dir)


def run_workers(cfg: ProjectConfig, port: int | None, model_dir: str | None) -> None:
    """Run ``cfg.serving.workers`` server processes until SIGTERM/SIGINT (or one of them dies).

    Raises:
        ModelError: A worker exited on its own (e.g. the model failed to load); see its log.
    """
    n = cfg.serving.workers
    ctx = multiprocessing.get_context("spawn")
    metrics_dir = tempfile.mkdtemp(prefix="ctloop-metrics-")
    procs = [ctx.Process(target=_worker, args=(cfg.to_json(), port, model_dir, metrics_dir),
                         name=f"ctloop-serve-{i}", daemon=False) for i in range(n)]
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    failed: list[str] = []
    try:
        for p in procs:
            p.start()
        log.info("serving with %d workers on port %s", n, port or cfg.serving.port)
        while not stopping:
            dead = [p for p in procs if p.exitcode is not None]
            if dead:
                failed = [f"{p.name} exited with {p.exitcode}" for p in dead]
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(20)
            if p.is_alive():
                p.kill()
                p.join(5)
        for s, h in old.items():
            signal.signal(s, h)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if failed:
        raise ModelError(f"serving.workers: {'; '.join(failed)}; every worker was stopped (see the log above)")
