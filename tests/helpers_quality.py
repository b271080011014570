"""Helpers for the model-quality tests: a project with a champion that has holdout metrics, the real
watcher (``ctloop watch``) in a subprocess, and payload events carrying prediction ids."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from ctloop.config import ProjectConfig, load_config
from ctloop.registry import Registry
from tests.conftest import free_port, make_project
from tests.helpers_drift import binary_event
from tests.helpers_serving import CliProcess, records, train_model_dir, training_frame

TOKEN = "labels-test-token"
HOLDOUT = {"accuracy": 0.8, "roc_auc": 0.85, "log_loss": 0.45}


def quality_project(root: Path, monitoring: dict[str, Any] | None = None,
                    slices: list[dict[str, Any]] | None = None) -> tuple[Path, ProjectConfig, int]:
    """An example project with a token file and a champion registered with holdout ``metrics``."""
    project = make_project(root / "proj", days=2, rows_per_day=50)
    raw = yaml.safe_load(project.read_text())
    raw["monitoring"] = monitoring or {}
    raw.setdefault("drift", {}).update({"poll_seconds": 0.2, "window_rows": 200, "min_rows": 100})
    if slices:
        raw.setdefault("gate", {})["slices"] = slices
    project.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(project)
    Path(cfg.triggers.token_file).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.triggers.token_file).write_text(TOKEN + "\n")
    reg = Registry(cfg.registry.uri, cfg.name)
    d = train_model_dir(cfg, root / "model")
    v = reg.register(d, {"run_id": "quality-test", "metrics": HOLDOUT})
    reg.promote(v, "test")
    return project, cfg, v


class WatcherProcess(CliProcess):
    """``ctloop watch`` in a subprocess on a free loopback port (no trigger routes)."""

    def __init__(self, config: Path, log_path: Path | None = None) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["watch", "--config", str(config), "--port", str(self.port), "--no-triggers"],
                         log_path or config.parent / f"watcher-{self.port}.log", mode="ab")

    def wait_watching(self, timeout: float = 60.0) -> WatcherProcess:
        """Block until the watcher follows a champion."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).json().get("version") is not None:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"watcher not watching after {timeout}s:\n{self.log()}")

    def status(self) -> dict[str, Any]:
        """``GET /status``."""
        return dict(httpx.get(f"{self.url}/status", timeout=5).json())

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()


def event_pair(cfg: ProjectConfig, ids: list[str], version: int, seed: int = 0,
               proba: np.ndarray | None = None) -> list[tuple[dict[str, str], bytes]]:
    """A request and a response payload event (one shared ce-id) for ``len(ids)`` rows with these ids."""
    from ctloop.model import load_model

    frame = training_frame(seed, rows=len(ids))
    feats = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir(version)).features
    recs = records(frame, feats)
    for r, i in zip(recs, ids, strict=True):
        r[cfg.data.id_column] = i
    p = np.linspace(0.05, 0.95, len(ids)) if proba is None else proba
    eid = uuid.uuid4().hex
    resp = {"predictions": p.tolist(), "labels": [int(x >= 0.5) for x in p], "ids": ids,
            "model_version": str(version)}
    return [binary_event("request", {"instances": recs}, cfg.name, eid),
            binary_event("response", resp, cfg.name, eid)]


def post_labels(url: str, body: Any, token: str | None = TOKEN, **kw: Any) -> httpx.Response:
    """``POST /labels`` with the bearer token (``None``: no Authorization header)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, bytes):
        return httpx.post(f"{url}/labels", content=body, headers={**headers, "content-type": "application/json"},
                          timeout=30, **kw)
    return httpx.post(f"{url}/labels", json=body, headers=headers, timeout=30, **kw)
