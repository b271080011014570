"""The demo's processes on 127.0.0.1 free ports: model server, watcher + trigger service, and (when
installed) Prometheus and Alertmanager. Everything started here is stopped by the caller's ExitStack,
also on Ctrl-C and errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from ctloop.errors import DemoError

__all__ = ["DemoError", "asgi_in_thread", "free_port", "http_ok", "managed_process", "model_server",
           "monitoring_binaries", "prometheus_stack", "wait_until"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05,
               log: Path | None = None) -> Any:
    """Poll ``pred`` until truthy; raise :class:`DemoError` naming ``what`` (and the log) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            v = pred()
            if v:
                return v
        time.sleep(interval)
    where = f" (see {log})" if log else ""
    raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}{where}")


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 200."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def managed_process(cmd: list[str], log: Path, env: dict[str, str] | None = None,
                    cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` in its own process group with output to ``log``; always stop it (TERM, then KILL)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        try:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
        except OSError as exc:
            raise DemoError(f"cannot start {cmd[0]} ({exc})") from exc
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@contextlib.contextmanager
def asgi_in_thread(app: Any, port: int) -> Iterator[str]:
    """Serve an ASGI app under uvicorn on 127.0.0.1:``port`` in a thread; always stopped."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    th = threading.Thread(target=server.run, name="ctloop-demo-watcher", daemon=True)
    th.start()
    try:
        wait_until(lambda: server.started or not th.is_alive(), 60, "the watcher to start")
        if not server.started:
            raise DemoError(f"the watcher did not start on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(timeout=15)


@contextlib.contextmanager
def model_server(config: Path, port: int, name: str, log: Path) -> Iterator[str]:
    """``ctloop serve`` in a subprocess; yields its base URL once the model answers ready."""
    cmd = [sys.executable, "-m", "ctloop.cli", "serve", "--config", str(config), "--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with managed_process(cmd, log, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: proc.poll() is not None or http_ok(f"{base}/v2/models/{name}/ready"), 120,
                   "the model server to be ready", interval=0.2, log=log)
        if proc.poll() is not None:
            raise DemoError(f"the model server exited with {proc.returncode} (see {log})")
        yield base


def monitoring_binaries() -> tuple[str, str] | None:
    """Paths of ``prometheus`` and ``prometheus-alertmanager`` (Debian names; ``alertmanager`` too)."""
    prom = shutil.which("prometheus")
    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    return (prom, am) if prom and am else None


@contextlib.contextmanager
def prometheus_stack(work: Path, rules: Path, am_config: Path, watcher_port: int,
                     binaries: tuple[str, str]) -> Iterator[dict[str, str]]:
    """Alertmanager (webhook → the watcher's /alerts) and Prometheus (scrapes the watcher every 1 s,
    evaluates the rendered rules every 1 s), both on free loopback ports; always stopped."""
    prom_bin, am_bin = binaries
    am_port, prom_port = free_port(), free_port()
    (work / "alertmanager-data").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        am_log = work / "alertmanager.log"
        stack.enter_context(managed_process(
            [am_bin, f"--config.file={am_config}", f"--storage.path={work / 'alertmanager-data'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="], am_log))
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "ctloop-watcher",
                                "static_configs": [{"targets": [f"127.0.0.1:{watcher_port}"]}]}],
        }
        pc = work / "prometheus.yml"
        pc.write_text(yaml.safe_dump(cfg))
        prom_log = work / "prometheus.log"
        stack.enter_context(managed_process(
            [prom_bin, f"--config.file={pc}", f"--storage.tsdb.path={work / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s"], prom_log))
        am, prom = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
        wait_until(lambda: http_ok(f"{am}/-/ready"), 60, "Alertmanager to be ready", interval=0.2, log=am_log)
        wait_until(lambda: http_ok(f"{prom}/-/ready"), 60, "Prometheus to be ready", interval=0.2, log=prom_log)
        yield {"prometheus": prom, "alertmanager": am}
