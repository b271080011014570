"""Fleet mode, end to end with real servers: three ``ctloop watch`` processes each get a round-robin third
of one event stream, one real Prometheus (Debian ``prometheus``) scrapes them and evaluates the rendered
recording rules. The recorded per-feature PSI and JS equal a single watcher's on all events (same rows)
within 1e-9 relative; the drift alert fires on a drifted stream and stays quiet on a clean one."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from ctloop.config import ProjectConfig, load_config
from ctloop.datagen import DriftSpec
from ctloop.drift import DriftMonitor
from ctloop.drift.stats import js_distance, psi
from ctloop.registry import Registry
from ctloop.triggers.rules import rule_groups
from ctloop.watcher.events import parse_events
from ctloop.watcher.state import load_reference
from tests.conftest import free_port, require_binary
from tests.helpers_drift import START, binary_event, records, stream, train_model
from tests.helpers_triggers import http_ok, managed, wait_for

pytestmark = pytest.mark.integration
NAME = "churn"
REPLICAS = 3
ROWS = 1200
EVENT_ROWS = 20


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("fleet-model") / "m")


def _project(root: Path, model_dir: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    doc = {"name": NAME, "data": {"source": str(root / "data")}, "registry": {"uri": str(root / "registry")},
           "drift": {"aggregation": "prometheus", "replicas": REPLICAS, "fleet_window": "10m",
                     "window_rows": 1000, "min_rows": 500, "poll_seconds": 0.2, "drift_share_alert": 0.25,
                     "alert_for": "1s"},
           "triggers": {"evaluation_interval": "1s", "token_file": str(root / "no-token")}}
    path = root / "ctloop.yaml"
    path.write_text(yaml.safe_dump(doc))
    reg = Registry(str(root / "registry"), NAME)
    reg.promote(reg.register(model_dir, {"run_id": uuid.uuid4().hex}), "test")
    return path


class Fleet:
    """Three watcher processes and a Prometheus scraping them, all on 127.0.0.1 free ports."""

    def __init__(self, root: Path, cfg_path: Path) -> None:
        self.root, self.cfg_path = root, cfg_path
        self.cfg: ProjectConfig = load_config(cfg_path)

    def __enter__(self) -> Fleet:
        self.stack = contextlib.ExitStack()
        ports = [free_port() for _ in range(REPLICAS)]
        self.watchers = [f"http://127.0.0.1:{p}" for p in ports]
        for i, p in enumerate(ports):
            self.stack.enter_context(managed(
                [sys.executable, "-m", "ctloop.cli", "watch", "--config", str(self.cfg_path), "--port", str(p),
                 "--no-triggers"], self.root / f"watcher-{i}.log"))
        rules = self.root / "rules.yml"
        rules.write_text(yaml.safe_dump(rule_groups(self.cfg), sort_keys=False))
        prom_port = free_port()
        prom_cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "scrape_configs": [{"job_name": "ctloop-watcher", "static_configs": [
                        {"targets": [w.removeprefix("http://") for w in self.watchers]}]}]}
        pc = self.root / "prometheus.yml"
        pc.write_text(yaml.safe_dump(prom_cfg))
        self.stack.enter_context(managed(
            [require_binary("prometheus"), f"--config.file={pc}", f"--storage.tsdb.path={self.root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], self.root / "prometheus.log"))
        self.prom = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: http_ok(f"{self.prom}/-/ready"), 60, "prometheus ready")
        for w in self.watchers:
            wait_for(lambda w=w: httpx.get(f"{w}/healthz").json()["version"] == 1, 120, f"{w} following v1")
        wait_for(lambda: len(self.query('ctloop_drift_rows_total{model="churn"}')) == REPLICAS, 60,
                 "every replica scraped")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def by_feature(self, expr: str) -> dict[str, float]:
        return {s["metric"]["feature"]: float(s["value"][1]) for s in self.query(expr)}

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.prom}/api/v1/alerts", timeout=10) as r:
            return list(json.load(r)["data"]["alerts"])


def _events(frame: pd.DataFrame) -> Iterator[tuple[dict[str, str], bytes]]:
    for a in range(0, len(frame), EVENT_ROWS):
        yield binary_event("request", {"instances": records(frame.iloc[a : a + EVENT_ROWS])}, NAME)


def _single_watcher(model_dir: Path, cfg: ProjectConfig, events: list[tuple[dict[str, str], bytes]]
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """PSI and JS per feature of one watcher (the monitor the service runs) that saw every event."""
    ref = load_reference(model_dir)
    mon = DriftMonitor(ref, cfg.drift)
    counts = np.zeros_like(ref.counts)
    mon.on_counts = lambda c: counts.__iadd__(c)
    for headers, body in events:
        for ev in parse_events(headers, body, ref.numeric, ref.categorical):
            mon.add(ref.prepare(ev.columns, ev.rows))
    assert mon.rows_seen == ROWS
    s_psi, s_js = psi(ref.counts, counts), js_distance(ref.counts, counts)
    return dict(zip(ref.features, np.asarray(s_psi).tolist(), strict=True)), \
        dict(zip(ref.features, np.asarray(s_js).tolist(), strict=True))


def _run_stream(tmp_path: Path, model_dir: Path, frame: pd.DataFrame) -> tuple[Fleet, dict[str, float],
                                                                                dict[str, float], list[Any]]:
    cfg_path = _project(tmp_path / "p", model_dir)
    events = list(_events(frame))
    with Fleet(tmp_path, cfg_path) as fleet:
        for i, (headers, body) in enumerate(events):  # round robin over the replicas
            r = httpx.post(f"{fleet.watchers[i % REPLICAS]}/events", headers=headers, content=body)
            assert r.status_code == 202, r.text
        wait_for(lambda: set(fleet.by_feature("ctloop:drift_feature_rows:window").values()) == {float(ROWS)},
                 60, "the recorded window to hold every row")
        per_replica = [httpx.get(f"{w}/status").json()["windows"]["rows_seen"] for w in fleet.watchers]
        assert per_replica == [ROWS // REPLICAS] * REPLICAS  # each replica saw only its third
        wait_for(lambda: fleet.query("ctloop:drift_share:window"), 30, "the fleet drift share")
        prom_psi = fleet.by_feature('ctloop:drift_psi:window{model="churn"}')
        prom_js = fleet.by_feature('ctloop:drift_js:window{model="churn"}')
        want_psi, want_js = _single_watcher(model_dir, fleet.cfg, events)
        assert set(prom_psi) == set(want_psi) and set(prom_js) == set(want_js)
        for f, v in want_psi.items():
            assert math.isclose(prom_psi[f], v, rel_tol=1e-9), (f, prom_psi[f], v)
        for f, v in want_js.items():
            assert math.isclose(prom_js[f], v, rel_tol=1e-9), (f, prom_js[f], v)
        share = fleet.query("ctloop:drift_share:window")
        alerts: list[Any] = []
        if float(share[0]["value"][1]) >= fleet.cfg.drift.drift_share_alert:
            alerts = wait_for(lambda: [a for a in fleet.alerts() if a["state"] == "firing"], 60,
                              "the drift alert to fire")
        else:  # several evaluations of the rules and the alert (for: 1s) after the share was recorded
            wait_for(lambda: fleet.query("count_over_time(ctloop:drift_share:window[10m]) >= 5"), 60,
                     "five evaluations of the fleet rules")
            alerts = [a for a in fleet.alerts() if a["labels"].get("alertname") == "CtloopDriftShareHigh"]
    return fleet, prom_psi, {"share": float(share[0]["value"][1])}, alerts


def test_three_replicas_clean_stream_exact_psi_and_no_alert(tmp_path: Path, model_dir: Path) -> None:
    frame = stream(ROWS, seed=7, day=START + dt.timedelta(days=3))
    _fleet, prom_psi, share, alerts = _run_stream(tmp_path, model_dir, frame)
    assert len(prom_psi) == len(load_reference(model_dir).features)
    assert share["share"] == 0.0
    assert alerts == []


def test_three_replicas_drifted_stream_exact_psi_and_alert_fires(tmp_path: Path, model_dir: Path) -> None:
    frame = stream(ROWS, seed=21, day=START + dt.timedelta(days=30), drift=DriftSpec(start=START))
    _fleet, _psi, share, alerts = _run_stream(tmp_path, model_dir, frame)
    assert share["share"] >= 0.25
    (alert,) = alerts
    assert alert["labels"]["alertname"] == "CtloopDriftShareHigh" and alert["labels"]["model"] == NAME
