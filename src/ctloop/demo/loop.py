"""Run the closed loop: replay traffic day by day through the real model server, let the watcher,
alerting and trigger service react, and record what happened (timeline, timings, lineage).

The day clock waits at the end of a day while the loop closes (alert → run → promotion → swap), so
the timeline reads the same on a fast or a slow machine; everything else runs in real time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig, load_config
from ctloop.demo.scenario import STREAM_DIR, DemoSettings, land_day, write_project
from ctloop.demo.stack import (
    asgi_in_thread,
    free_port,
    model_server,
    monitoring_binaries,
    prometheus_stack,
    wait_until,
)
from ctloop.errors import DemoError
from ctloop.registry import Registry

Progress = Callable[[str, dict[str, Any]], None]
FINAL = ("succeeded", "rejected", "data_rejected", "config_error", "failed", "canceled", "interrupted",
         "submit_failed")


@dataclass
class DayRecord:
    """One replayed day."""

    day: str
    drifted: bool
    rows: int = 0
    versions: list[int] = field(default_factory=list)
    accuracy: float = float("nan")  # of the served predictions on the day's labels
    accuracy_without_retraining: float = float("nan")  # the first champion on the same labels
    drift_share: float = 0.0  # the highest drift share of the day's windows
    scores: dict[str, float] = field(default_factory=dict)  # PSI per feature, the day's last window
    events: list[str] = field(default_factory=list)  # alerts, triggers, runs, promotions, swaps
    alerts: int = 0
    runs: list[str] = field(default_factory=list)
    started: float = 0.0  # epoch seconds when the day's first request was sent


@dataclass
class DemoResult:
    """Everything the demo observed; rendered as a table, a report and JSON."""

    out: str
    config: str
    mode: str  # "prometheus" | "embedded"
    days: list[DayRecord]
    windows: list[dict[str, Any]]
    markers: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    champion: int | None
    served_version: int | None
    timings: dict[str, float]
    comparison: dict[str, Any]
    endpoints: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


class Sampler:
    """Timestamps what changes: every drift window the watcher evaluates (a hook on its metrics), and, from
    a background thread, the registry's champion alias and the version the server reports on /metrics."""

    def __init__(self, watcher: Any, registry: Registry, server: str, interval: float = 0.05) -> None:
        self.watcher = watcher
        self.registry = registry
        self.server = server
        self.interval = interval
        self.windows: list[dict[str, Any]] = []
        self.champion_changes: list[tuple[float, int]] = []
        self.served_changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ctloop-demo-sampler", daemon=True)
        self._lock = threading.Lock()
        observe = watcher.metrics.observe

        def hook(ev: Any) -> None:  # called by the watcher for every evaluated window, under its lock
            observe(ev)
            self._window(ev)

        watcher.metrics.observe = hook

    def start(self) -> Sampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        n = 0
        client = httpx.Client(timeout=2.0)
        try:
            while not self._stop.wait(self.interval):
                if n % 2 == 0:
                    with contextlib.suppress(Exception):
                        self._changed(self.champion_changes, self.registry.alias("champion"))
                if n % 3 == 0:
                    with contextlib.suppress(Exception):
                        self._changed(self.served_changes, served_version(client, self.server))
                n += 1
        finally:
            client.close()

    def _changed(self, series: list[tuple[float, int]], value: int | None) -> None:
        if value is not None and (not series or series[-1][1] != value):
            with self._lock:
                series.append((time.time(), value))

    def _window(self, ev: Any) -> None:
        with self._lock:
            self.windows.append({"t": ev.timestamp, "version": self.watcher.version, "window": ev.window,
                                 "drift_share": ev.drift_share, "drifted": list(ev.drifted),
                                 "psi": {s.feature: round(float(s.psi), 4) for s in ev.features}})

    def first_change_to(self, series: list[tuple[float, int]], value: int) -> float | None:
        """When ``series`` first took ``value``."""
        with self._lock:
            return next((t for t, v in series if v == value), None)


def served_version(client: httpx.Client, base: str) -> int | None:
    """The version the model server reports on /metrics (``ctloop_serving_model_version``)."""
    for line in client.get(f"{base}/metrics").text.splitlines():
        if line.startswith("ctloop_serving_model_version"):
            v = int(float(line.rsplit(" ", 1)[1]))
            return v or None
    return None


def _iso_epoch(text: str | None) -> float | None:
    if not text:
        return None
    t = dt.datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in out]


def resolve_mode(prometheus: str) -> tuple[str, tuple[str, str] | None]:
    """``prometheus`` (``auto|on|off``) → the alerting mode and the binaries to run.

    Raises:
        DemoError: ``on`` without the binaries; an unknown value.
    """
    if prometheus not in ("auto", "on", "off"):
        raise DemoError(f"--prometheus {prometheus!r}: expected auto, on or off")
    bins = monitoring_binaries() if prometheus != "off" else None
    if prometheus == "on" and bins is None:
        raise DemoError("--prometheus on: the prometheus and prometheus-alertmanager binaries are not installed "
                        "(Debian: apt-get install prometheus prometheus-alertmanager), or use --prometheus auto")
    return ("prometheus" if bins else "embedded"), bins


def run_demo(out: str | Path, settings: DemoSettings | None = None, progress: Progress | None = None) -> DemoResult:
    """Run the whole closed loop under ``out`` (replaced) and return what happened.

    Raises:
        DemoError: A process did not start, or the loop did not close within ``settings.loop_timeout``.
    """
    s = settings or DemoSettings()
    say = progress or (lambda _kind, _info: None)
    root = Path(out).resolve()
    mode, bins = resolve_mode(s.prometheus)
    ports = {"server": free_port(), "watcher": free_port()}
    cfg_path = write_project(root, s, ports, use_prometheus=mode == "prometheus")
    cfg = load_config(cfg_path)
    say("setup", {"out": str(root), "mode": mode, "ports": ports})

    from ctloop.render import render_all

    render_all(cfg, root / "manifests")
    t0 = time.perf_counter()
    champion0 = _first_champion(cfg, say)
    first_run = time.perf_counter() - t0
    with contextlib.ExitStack() as stack:
        result = _closed_loop(stack, root, cfg, s, mode, bins, ports, champion0, say)
    result.timings["first_run_s"] = round(first_run, 3)  # a bare pipeline run: the baseline of the loop
    return result


def _first_champion(cfg: ProjectConfig, say: Progress) -> int:
    from ctloop.runner import run_local

    say("bootstrap", {"state": "running"})
    res = run_local(cfg, trigger={"cause": "bootstrap", "reason": "first champion, trained on the history days"},
                    on_event=lambda task, state: say("step", {"task": task, "state": state}))
    if not res.promoted or res.version is None:
        raise DemoError(f"the first pipeline run did not produce a champion (status {res.status}; "
                        f"log {res.log_path})")
    say("bootstrap", {"state": "done", "version": res.version, "seconds": res.wall_seconds,
                      "metrics": res.metrics})
    return res.version


def _closed_loop(stack: contextlib.ExitStack, root: Path, cfg: ProjectConfig, s: DemoSettings, mode: str,
                 bins: tuple[str, str] | None, ports: dict[str, int], champion0: int, say: Progress) -> DemoResult:
    from ctloop.model import load_model
    from ctloop.triggers.service import read_token
    from ctloop.watcher.server import build_service

    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    metrics = CollectorRegistry()  # drift and trigger metrics; the embedded evaluator reads it
    app, svc = build_service(cfg, metrics, triggers=True)  # the watcher with the trigger routes mounted
    svc.tick_seconds = 0.2
    svc.start()
    stack.callback(svc.stop)
    watcher_state = app.state.watcher
    watcher = stack.enter_context(asgi_in_thread(app, ports["watcher"]))
    wait_until(lambda: watcher_state.version == champion0, 60, "the watcher to load the champion's reference")
    endpoints = {"watcher": watcher}
    if mode == "prometheus" and bins is not None:
        endpoints |= stack.enter_context(prometheus_stack(
            root / "monitoring", root / "manifests" / "monitoring" / "rules.yml",
            root / "manifests" / "monitoring" / "alertmanager.yml", ports["watcher"], bins))
    server = stack.enter_context(model_server(root / "ctloop.yaml", ports["server"], cfg.name,
                                              logs / "model-server.log"))
    endpoints["model_server"] = server
    say("stack", {"endpoints": endpoints, "mode": mode})
    registry = Registry(cfg.registry.uri, cfg.name)
    sampler = Sampler(watcher_state, registry, server).start()
    stack.callback(sampler.stop)
    client = stack.enter_context(httpx.Client(timeout=30.0))
    token = read_token(cfg.triggers.token_file)
    first_model = load_model(registry.local_model_dir(champion0))
    threshold = cfg.drift.drift_share_alert

    days: list[DayRecord] = []
    t_onset: float | None = None
    loop: dict[str, float] = {}
    sent = 0
    for i, day in enumerate(s.replay):
        drifted = day >= s.drift_start
        rec = DayRecord(day.isoformat(), drifted)
        say("day", {"day": rec.day, "index": i, "of": len(s.replay), "drifted": drifted})
        frame = pd.read_parquet(root / STREAM_DIR / f"date={rec.day}" / "part-0.parquet")
        features = frame.drop(columns=[cfg.data.target])
        t_day = rec.started = time.time()
        if drifted and t_onset is None:
            t_onset = t_day
        labels, versions = _serve_day(client, server, cfg.name, features, s.batch_rows)
        sent += len(frame)
        rec.rows = len(frame)
        rec.versions = sorted(set(versions))
        y = frame[cfg.data.target].to_numpy()
        rec.accuracy = float(np.mean(np.asarray(labels) == y))
        rec.accuracy_without_retraining = float(np.mean((first_model.predict_proba(frame) >= 0.5) == y))
        _wait_ingested(metrics, sent)
        land_day(root, day)
        say("landed", {"day": rec.day})
        day_windows = [w for w in sampler.windows if w["t"] >= t_day]
        if day_windows:
            rec.drift_share = max(w["drift_share"] for w in day_windows)
            rec.scores = day_windows[-1]["psi"]
        if rec.drift_share >= threshold and "closed" not in loop:
            loop |= _close_loop(svc, sampler, registry, day_windows, threshold, s.loop_timeout, say)
            loop["onset"] = t_onset or t_day
        _wait_volume(cfg, svc)
        if i == len(s.replay) - 1:
            _post(client, watcher, token, {"source": "schedule",
                                           "reason": "hourly schedule slot (posted as the CronJob would)"})
        days.append(rec)
        say("day_done", {"record": rec})
    time.sleep(0.3)
    result = _collect(root, cfg, s, mode, days, sampler, svc, registry, loop, endpoints)
    say("done", {"result": result})
    return result


def _serve_day(client: httpx.Client, base: str, name: str, features: pd.DataFrame,
               batch: int) -> tuple[list[int], list[int]]:
    labels: list[int] = []
    versions: list[int] = []
    url = f"{base}/v1/models/{name}:predict"
    for start in range(0, len(features), batch):
        part = features.iloc[start:start + batch]
        r = client.post(url, json={"instances": _records(part)})
        if r.status_code != 200:
            raise DemoError(f"model server answered {r.status_code} to {url}: {r.text[:300]}")
        doc = r.json()
        labels += [int(v) for v in doc["labels"]]
        versions += [int(doc.get("model_version") or 0)] * len(part)
    return labels, versions


def _wait_ingested(metrics: CollectorRegistry, sent: int) -> None:
    def done() -> bool:
        return (metrics.get_sample_value("ctloop_watcher_rows_total", {"kind": "request"}) or 0.0) >= sent
    wait_until(done, 60, "the watcher to receive the day's payload events", interval=0.02)


def _wait_volume(cfg: ProjectConfig, svc: Any) -> None:
    """When enough new rows have landed, wait for the service's volume check to record its decision."""
    from ctloop.triggers.sources import count_new_rows

    need = cfg.triggers.volume_rows
    if need is None or count_new_rows(cfg).rows < need:
        return
    step = count_new_rows(cfg).rows // need
    wait_until(lambda: any(r.source == "volume" and r.detail.get("rows", 0) // need >= step
                           for r in svc.ledger.rows()), 15, "the volume check")


def _post(client: httpx.Client, base: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{base}/trigger", json=body, headers={"Authorization": f"Bearer {token}"})
    if r.status_code >= 400:
        raise DemoError(f"POST {base}/trigger answered {r.status_code}: {r.text[:300]}")
    return dict(r.json())


def _close_loop(svc: Any, sampler: Sampler, registry: Registry, windows: list[dict[str, Any]], threshold: float,
                timeout: float, say: Progress) -> dict[str, float]:
    """Wait for alert → run → promotion → swap; return their times (epoch seconds)."""
    detected = next(w for w in windows if w["drift_share"] >= threshold)
    say("drift", {"drift_share": detected["drift_share"], "features": detected["drifted"]})

    def fired() -> Any:
        return next((r for r in svc.ledger.rows() if r.decision == "fired" and r.source == "alert"), None)

    row = wait_until(fired, 60, "the drift alert to reach the trigger service")
    say("alert", {"reason": row.reason, "run_id": row.run_id})
    row = wait_until(lambda: (r := svc.ledger.get(row.id)).run_status in FINAL and r, timeout,
                     f"run {row.run_id} to finish", interval=0.1)
    say("run", {"run_id": row.run_id, "status": row.run_status, "version": row.version})
    out = {"detected": detected["t"], "alert": float(_iso_epoch(row.received_at) or time.time()), "closed": 1.0}
    if row.run_status != "succeeded" or row.version is None:
        return out
    version = int(row.version)
    t_prom = wait_until(lambda: sampler.first_change_to(sampler.champion_changes, version), 30,
                        f"version {version} to become champion")
    t_swap = wait_until(lambda: sampler.first_change_to(sampler.served_changes, version), 60,
                        f"the model server to serve version {version}")
    say("swap", {"version": version})
    wait_until(lambda: sampler.watcher.version == version, 30, "the watcher to follow the new champion")
    out |= {"promoted": t_prom, "serving": t_swap, "run_done": float(_iso_epoch(row.outcome_at) or t_prom)}
    return out


def _collect(root: Path, cfg: ProjectConfig, s: DemoSettings, mode: str, days: list[DayRecord], sampler: Sampler,
             svc: Any, registry: Registry, loop: dict[str, float], endpoints: dict[str, str]) -> DemoResult:
    ledger = [r.to_dict() for r in sorted(svc.ledger.rows(), key=lambda r: r.id)]
    versions = []
    for v in registry.versions():
        mv = registry.get(v)
        versions.append({"version": v, "model_uri": mv.model_uri, **mv.metadata})
    markers = _markers(ledger, sampler, versions)
    day_bounds = _day_bounds(days)
    for m in markers:
        d = _day_of(m["t"], day_bounds)
        if d is not None:
            d.events.append(m["label"])
            if m["kind"] == "alert":
                d.alerts += 1
            if m["kind"] == "run":
                d.runs.append(m["run_id"])
    timings: dict[str, float] = {}
    if "serving" in loop:
        timings = {
            "window_fill_s": loop["detected"] - loop["onset"],
            "alert_s": loop["alert"] - loop["detected"],
            "pipeline_s": loop["promoted"] - loop["alert"],
            "swap_s": loop["serving"] - loop["promoted"],
            "closed_loop_s": loop["serving"] - loop["detected"],
            "onset_to_serving_s": loop["serving"] - loop["onset"],
        }
    champion = registry.alias("champion")
    comparison = _compare(root, cfg, s, registry, versions)
    served = sampler.served_changes[-1][1] if sampler.served_changes else None
    return DemoResult(str(root), str(root / "ctloop.yaml"), mode, days, list(sampler.windows), markers, ledger,
                      versions, champion, served, {k: round(v, 3) for k, v in timings.items()}, comparison,
                      endpoints)


def _markers(ledger: list[dict[str, Any]], sampler: Sampler, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    dups = [r for r in ledger if r["reason_code"] == "duplicate"]
    if dups:  # repeated notifications of the same episode: one marker with the count
        out.append({"t": _iso_epoch(dups[0]["received_at"]) or 0.0, "kind": "trigger", "id": dups[0]["id"],
                    "label": f"{len(dups)} repeated alert notifications suppressed: duplicate"})
    for r in ledger:
        t = _iso_epoch(r["received_at"]) or 0.0
        if r["reason_code"] == "duplicate":
            continue
        if r["source"] == "alert" and r["decision"] == "fired":
            out.append({"t": t, "kind": "alert", "label": f"alert → trigger #{r['id']} fired", "id": r["id"]})
            out.append({"t": t + 1e-3, "kind": "run", "label": f"run {r['run_id']} ({r['run_status']})",
                        "run_id": r["run_id"], "version": r["version"]})
        elif r["reason_code"] == "resolved":
            out.append({"t": t, "kind": "resolved", "label": f"alert resolved (#{r['id']})", "id": r["id"]})
        else:
            out.append({"t": t, "kind": "trigger", "id": r["id"],
                        "label": f"{r['source']} #{r['id']} {r['decision']}: {r['reason_code']}"})
    for t, v in sampler.champion_changes[1:]:
        out.append({"t": t, "kind": "promotion", "label": f"v{v} promoted", "version": v})
    for t, v in sampler.served_changes[1:]:
        out.append({"t": t, "kind": "swap", "label": f"server hot-swapped to v{v}", "version": v})
    return sorted(out, key=lambda m: m["t"])


def _day_bounds(days: list[DayRecord]) -> list[tuple[float, DayRecord]]:
    return [(d.started, d) for d in days]


def _day_of(t: float, bounds: list[tuple[float, DayRecord]]) -> DayRecord | None:
    found = None
    for start, d in bounds:
        if t >= start:
            found = d
    return found


def _compare(root: Path, cfg: ProjectConfig, s: DemoSettings, registry: Registry,
             versions: list[dict[str, Any]]) -> dict[str, Any]:
    """The first champion vs the newest version: on the gate's recent slice of the retrain run (same rows,
    as the gate sees them) and on the drifted days that came after it (held out from its training)."""
    from ctloop.evaluate import evaluate_model
    from ctloop.model import load_model
    from ctloop.steps import ingest_step, split_step

    if len(versions) < 2:
        return {}
    old, new = versions[0], versions[-1]
    m_old = load_model(registry.local_model_dir(old["version"]))
    m_new = load_model(registry.local_model_dir(new["version"]))
    last_day = new.get("data", {}).get("last_day")
    target = cfg.data.target
    out: dict[str, Any] = {"old": old["version"], "new": new["version"], "recent_slice_day": last_day}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        t = Path(tmp)
        ingest_step(cfg, last_day or "", str(t / "ds.parquet"))
        split_step(cfg, str(t / "ds.parquet"), str(t / "train.parquet"), str(t / "test.parquet"),
                   str(t / "recent.parquet"))
        recent = pd.read_parquet(t / "recent.parquet")
    out["recent_slice"] = {"rows": len(recent), "old": evaluate_model(m_old, recent, target),
                           "new": evaluate_model(m_new, recent, target)}
    after = [d for d in s.replay if d >= s.drift_start and (last_day is None or d.isoformat() > last_day)]
    if after:
        frame = pd.concat([pd.read_parquet(root / STREAM_DIR / f"date={d.isoformat()}" / "part-0.parquet")
                           for d in after])
        out["later_drifted_days"] = {"days": [d.isoformat() for d in after], "rows": len(frame),
                                     "old": evaluate_model(m_old, frame, target),
                                     "new": evaluate_model(m_new, frame, target)}
    out["decision_checks"] = new.get("decision", {}).get("checks", [])
    return json.loads(json.dumps(out, default=float))
