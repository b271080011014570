"""Helpers for the serving tests: trained model folders, a registry with a champion, a real server
process on loopback, and a real HTTP sink that records payload events."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from ctloop.config import ProjectConfig
from ctloop.datagen import generate_day
from ctloop.registry import Registry
from ctloop.schema import load_schema
from ctloop.train import train_sklearn
from tests.conftest import free_port

DAY = dt.date(2026, 1, 1)


def training_frame(seed: int = 0, rows: int = 400) -> pd.DataFrame:
    """A small labelled frame from the synthetic stream."""
    return generate_day(DAY, rows, seed)


def train_model_dir(cfg: ProjectConfig, out: Path, seed: int = 0, C: float = 1.0) -> Path:
    """Train a small logistic-regression model folder (model.json, model.joblib, profile.json)."""
    schema = load_schema(cfg.schema_.path)
    train_sklearn(training_frame(seed), schema, {"estimator": "logistic_regression", "C": C, "max_iter": 200},
                  seed, out)
    return out


def add_version(cfg: ProjectConfig, work: Path, seed: int, promote: bool = True) -> int:
    """Train, register and (optionally) promote a new version; return its number."""
    reg = Registry(cfg.registry.uri, cfg.name)
    d = train_model_dir(cfg, work / f"model-{seed}-{time.monotonic_ns()}", seed=seed, C=0.05 + seed)
    v = reg.register(d, {"run_id": f"test-{seed}"})
    if promote:
        reg.promote(v, "test")
    return v


def add_corrupt_version(cfg: ProjectConfig, work: Path, good_dir: Path) -> int:
    """Register a version whose model.joblib is garbage and promote it."""
    bad = work / f"bad-{time.monotonic_ns()}"
    shutil.copytree(good_dir, bad)
    (bad / "model.joblib").write_bytes(b"this is not a pickle")
    reg = Registry(cfg.registry.uri, cfg.name)
    v = reg.register(bad, {"run_id": "corrupt"})
    reg.promote(v, "test corrupt")
    return v


def write_config(project_yaml: Path, extra_serving: dict[str, Any]) -> Path:
    """Append serving settings to a project's ctloop.yaml (returns the path)."""
    import yaml

    raw = yaml.safe_load(project_yaml.read_text())
    raw.setdefault("serving", {}).update(extra_serving)
    project_yaml.write_text(yaml.safe_dump(raw, sort_keys=False))
    return project_yaml


class CliProcess:
    """``python -m ctloop.cli ARGS`` in a subprocess, its output in ``log_path``; always stopped by
    :meth:`stop`."""

    def __init__(self, args: list[str], log_path: Path, mode: str = "wb") -> None:
        self.log_path = log_path
        self._log = open(log_path, mode)  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "ctloop.cli", *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def log(self) -> str:
        """The process's output so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


class ServerProcess(CliProcess):
    """``ctloop serve`` in a subprocess on a free loopback port; always stopped by :meth:`stop`."""

    def __init__(self, config: Path, model_dir: Path | None = None, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--config", str(config), "--port", str(self.port)]
        if model_dir is not None:
            args += ["--model-dir", str(model_dir)]
        super().__init__(args, log_path or config.parent / f"server-{self.port}.log")

    def wait_ready(self, name: str, timeout: float = 60.0) -> ServerProcess:
        """Block until the model answers ready (or fail with the server log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/v2/models/{name}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log()}")

    def metric(self, text_name: str) -> float:
        """Sum of a metric's samples whose line starts with ``text_name`` on /metrics."""
        body = httpx.get(f"{self.base}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith(text_name) and not line.startswith("#"))


class EventSink:
    """A real HTTP server on loopback that records every POSTed event (headers + body)."""

    def __init__(self, delay: float = 0.0, status: int = 202) -> None:
        self.posts = 0
        self.events: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if delay:
                    time.sleep(delay)
                with sink.lock:
                    sink.posts += 1
                    if status < 300:
                        sink.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[dict[str, str], bytes]]:
        """Wait until at least ``n`` events arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= n:
                    return list(self.events)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"expected {n} events, got {len(self.events)}: {self.events[:2]}")

    def snapshot(self) -> list[tuple[dict[str, str], bytes]]:
        """The events received so far."""
        with self.lock:
            return list(self.events)

    def cloudevents(self) -> list[dict[str, Any]]:
        """Every event received, flattened out of batched deliveries: attributes plus parsed ``data``."""
        out: list[dict[str, Any]] = []
        for headers, body in self.snapshot():
            if headers.get("content-type", "").startswith("application/cloudevents-batch+json"):
                out.extend(json.loads(body))
            else:  # binary mode: ce-* headers, the body is the data
                attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
                out.append({**attrs, "datacontenttype": headers.get("content-type"), "data": json.loads(body)})
        return out

    def wait_for_events(self, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` events arrived (counting inside batches); return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.cloudevents()
            if len(events) >= n:
                return events
            time.sleep(0.05)
        raise AssertionError(f"expected {n} events, got {len(self.cloudevents())}")

    def stop(self) -> None:
        """Shut the sink down."""
        self.server.shutdown()
        self.server.server_close()


def records(frame: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """JSON-safe V1 records of ``frame``'s feature columns."""
    return json.loads(frame[features].to_json(orient="records"))
