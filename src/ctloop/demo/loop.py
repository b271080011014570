"""Run the closed loop: replay traffic day by day through the real model server, let the watcher,
alerting and trigger service react, and record what happened (timeline, timings, lineage).

The day clock waits at the end of a day while the loop closes (alert → run → promotion → swap), so
the timeline reads the same on a fast or a slow machine; everything else runs in real time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig, load_config
from ctloop.demo.record import (
    DayRecord,
    DemoResult,
    Sampler,
    compare,
    day_bounds,
    day_of,
    iso_epoch,
    markers,
)
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
    registry = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
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
    out = {"detected": detected["t"], "alert": float(iso_epoch(row.received_at) or time.time()), "closed": 1.0}
    if row.run_status != "succeeded" or row.version is None:
        return out
    version = int(row.version)
    t_prom = wait_until(lambda: sampler.first_change_to(sampler.champion_changes, version), 30,
                        f"version {version} to become champion")
    t_swap = wait_until(lambda: sampler.first_change_to(sampler.served_changes, version), 60,
                        f"the model server to serve version {version}")
    say("swap", {"version": version})
    wait_until(lambda: sampler.watcher.version == version, 30, "the watcher to follow the new champion")
    out |= {"promoted": t_prom, "serving": t_swap, "run_done": float(iso_epoch(row.outcome_at) or t_prom)}
    return out


def _collect(root: Path, cfg: ProjectConfig, s: DemoSettings, mode: str, days: list[DayRecord], sampler: Sampler,
             svc: Any, registry: Registry, loop: dict[str, float], endpoints: dict[str, str]) -> DemoResult:
    ledger = [r.to_dict() for r in sorted(svc.ledger.rows(), key=lambda r: r.id)]
    versions = []
    for v in registry.versions():
        mv = registry.get(v)
        versions.append({"version": v, "model_uri": mv.model_uri, **mv.metadata})
    marks = markers(ledger, sampler, versions)
    bounds = day_bounds(days)
    for m in marks:
        d = day_of(m["t"], bounds)
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
    comparison = compare(root, cfg, s, registry, versions)
    served = sampler.served_changes[-1][1] if sampler.served_changes else None
    return DemoResult(str(root), str(root / "ctloop.yaml"), mode, days, list(sampler.windows), marks, ledger,
                      versions, champion, served, {k: round(v, 3) for k, v in timings.items()}, comparison,
                      endpoints)


