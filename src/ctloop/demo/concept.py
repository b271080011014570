"""The model-quality episode: pure concept drift, delayed labels, the performance alert, one retrain.

Replays days through the real model server (ids in every instance), posts each day's labels
``label_delay_days`` later through the watcher's ``POST /labels``, and lets the watcher, the alerting
(real Prometheus + Alertmanager, or the embedded evaluator) and the trigger service react. The inputs
never drift, so the drift share stays under its threshold; the realized accuracy falls, the performance
alert fires and exactly one run retrains the model. Used by the end-to-end tests; small by design.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.datagen import DriftSpec, write_stream
from ctloop.demo.loop import FINAL, _records, _wait_ingested, resolve_mode
from ctloop.demo.scenario import HEADER, STREAM_DIR, DemoSettings, demo_config, land_day, write_project
from ctloop.demo.stack import asgi_in_thread, free_port, model_server, prometheus_stack, wait_until
from ctloop.errors import DemoError
from ctloop.registry import Registry
from ctloop.triggers.performance import performance_rule, realized_breach


@dataclass(frozen=True)
class ConceptSettings:
    """The episode's stream and thresholds.

    Attributes:
        history_days: Days in the data source before the replay (the first champion trains on them).
        clean_days: Replayed days without drift (their labels must fire nothing).
        concept_days: Replayed days of pure concept drift.
        rows_per_day: Rows served (and labelled) per day.
        label_delay_days: A day's labels arrive this many replayed days later.
        prometheus: ``auto``, ``on`` or ``off`` (the embedded evaluator).
        loop_timeout: Seconds to wait for the retrain to finish.
    """

    history_days: int = 1
    clean_days: int = 2
    concept_days: int = 2
    rows_per_day: int = 400
    label_delay_days: int = 1
    prometheus: str = "auto"
    loop_timeout: float = 420.0
    batch_rows: int = 50
    start: dt.date = dt.date(2026, 1, 1)
    seed: int = 7

    @property
    def concept_start(self) -> dt.date:
        """The first day of concept drift."""
        return self.start + dt.timedelta(days=self.history_days + self.clean_days)


@dataclass
class ConceptResult:
    """What happened in the episode."""

    mode: str
    days: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    champion: int | None = None
    served_version: int | None = None
    max_drift_share: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def write_concept_project(root: Path, s: ConceptSettings, ports: dict[str, int], use_prometheus: bool) -> Path:
    """The demo project with a pure-concept-drift stream and the performance alert tuned for a short run."""
    demo = DemoSettings(start=s.start, history_days=s.history_days, stable_days=s.clean_days,
                        drift_days=s.concept_days, rows_per_day=s.rows_per_day, seed=s.seed)
    cfg_path = write_project(root, demo, ports, use_prometheus)
    doc = demo_config(demo, ports, use_prometheus)
    doc["triggers"] |= {"volume_rows": None, "schedule": None}
    doc["monitoring"] = {"performance": {"metric": "accuracy", "window_rows": s.rows_per_day, "max_drop": 0.1,
                                         "min_labelled": s.rows_per_day // 2, "alert_for": "1s",
                                         "estimated_window_rows": s.rows_per_day}}
    cfg_path.write_text(HEADER + yaml.safe_dump(doc, sort_keys=False))
    write_stream(root / STREAM_DIR, s.start, s.history_days + s.clean_days + s.concept_days, s.seed,
                 s.rows_per_day, DriftSpec(concept_start=s.concept_start))  # history days: as landed
    return cfg_path


def run_concept_episode(out: str | Path, s: ConceptSettings | None = None) -> ConceptResult:
    """Bootstrap a champion, then replay clean and concept-drifted days with delayed labels.

    Raises:
        DemoError: A process did not start, or the loop did not close within ``s.loop_timeout``.
    """
    from ctloop.render import render_all
    from ctloop.runner import run_local

    s = s or ConceptSettings()
    root = Path(out).resolve()
    mode, bins = resolve_mode(s.prometheus)
    ports = {"server": free_port(), "watcher": free_port()}
    cfg = load_config(write_concept_project(root, s, ports, mode == "prometheus"))
    render_all(cfg, root / "manifests")
    boot = run_local(cfg, trigger={"cause": "bootstrap", "reason": "first champion"})
    if not boot.promoted or boot.version is None:
        raise DemoError(f"the first pipeline run did not produce a champion (status {boot.status})")
    with contextlib.ExitStack() as stack:
        return _replay(stack, root, cfg, s, mode, bins, ports, boot.version)


def _replay(stack: contextlib.ExitStack, root: Path, cfg: Any, s: ConceptSettings, mode: str,
            bins: tuple[str, str] | None, ports: dict[str, int], champion0: int) -> ConceptResult:
    from ctloop.triggers.service import read_token
    from ctloop.watcher.server import build_service

    (root / "logs").mkdir(exist_ok=True)
    metrics = CollectorRegistry()
    app, svc = build_service(cfg, metrics, triggers=True)
    svc.tick_seconds = 0.2
    svc.start()
    stack.callback(svc.stop)
    state = app.state.watcher
    watcher = stack.enter_context(asgi_in_thread(app, ports["watcher"]))
    wait_until(lambda: state.version == champion0, 60, "the watcher to load the champion")
    if mode == "prometheus" and bins is not None:
        stack.enter_context(prometheus_stack(root / "monitoring", root / "manifests" / "monitoring" / "rules.yml",
                                             root / "manifests" / "monitoring" / "alertmanager.yml",
                                             ports["watcher"], bins))
    server = stack.enter_context(model_server(root / "ctloop.yaml", ports["server"], cfg.name,
                                              root / "logs" / "model-server.log"))
    client = stack.enter_context(httpx.Client(timeout=30.0))
    auth = {"Authorization": f"Bearer {read_token(cfg.triggers.token_file)}"}
    res = ConceptResult(mode)
    served: list[tuple[str, pd.DataFrame]] = []
    sent = 0
    t_cross: float | None = None
    rule = performance_rule(cfg)
    n_days = s.clean_days + s.concept_days
    for i in range(n_days + s.label_delay_days):
        day = s.start + dt.timedelta(days=s.history_days + i)
        rec: dict[str, Any] = {"day": day.isoformat(), "concept": day >= s.concept_start}
        if i < n_days:
            frame = pd.read_parquet(root / STREAM_DIR / f"date={day.isoformat()}" / "part-0.parquet")
            versions = _serve(client, server, cfg.name, frame.drop(columns=[cfg.data.target]), s.batch_rows)
            sent += len(frame)
            _wait_ingested(metrics, sent)
            land_day(root, day)
            served.append((day.isoformat(), frame))
            rec["versions"] = sorted(set(versions))
        if i >= s.label_delay_days and i - s.label_delay_days < len(served):
            labelled_day, frame = served[i - s.label_delay_days]
            rec["labels_at"] = time.time()
            counts = _post_labels(client, watcher, auth, cfg, frame)
            rec["labels_for"], rec["labels"] = labelled_day, counts
            snap = state.performance_snapshot()
            rec["realized_accuracy"] = snap.realized.get("accuracy")
            rec["estimated_accuracy"] = snap.estimated.get("accuracy")
            if t_cross is None and realized_breach(rule, snap) is not None:  # the alert's own condition
                t_cross = rec["labels_at"]  # the closed loop starts with the labels that crossed the threshold
                rec["events"] = _wait_for_run(svc, s.loop_timeout, res, t_cross)
        rec["drift_share"] = state.drift_share
        res.max_drift_share = max(res.max_drift_share, state.drift_share)
        res.days.append(rec)
    time.sleep(0.5)
    res.ledger = [r.to_dict() for r in sorted(svc.ledger.rows(), key=lambda r: r.id)]
    reg = Registry(cfg.registry.uri, cfg.name)
    res.versions = [{"version": v, **reg.get(v).metadata} for v in reg.versions()]
    res.champion = reg.alias("champion")
    probe = {"instances": _records(served[-1][1].drop(columns=[cfg.data.target]).head(2))}

    def version_served() -> int:
        r = client.post(f"{server}/v1/models/{cfg.name}:predict", json=probe)
        return int(r.json().get("model_version") or 0)

    if res.champion is not None:
        with contextlib.suppress(DemoError):
            wait_until(lambda: version_served() == res.champion, 60, "the server to serve the champion", 0.2)
    res.served_version = version_served()
    return res


def _serve(client: httpx.Client, base: str, name: str, features: pd.DataFrame, batch: int) -> list[int]:
    versions: list[int] = []
    for start in range(0, len(features), batch):
        part = features.iloc[start:start + batch]
        r = client.post(f"{base}/v1/models/{name}:predict", json={"instances": _records(part)})
        if r.status_code != 200:
            raise DemoError(f"model server answered {r.status_code}: {r.text[:300]}")
        versions += [int(r.json().get("model_version") or 0)] * len(part)
    return versions


def _post_labels(client: httpx.Client, watcher: str, auth: dict[str, str], cfg: Any,
                 frame: pd.DataFrame) -> dict[str, int]:
    body = {"model": cfg.name, "labels": [{"id": str(i), "label": int(y)} for i, y in
                                          zip(frame[cfg.data.id_column], frame[cfg.data.target], strict=True)]}
    r = client.post(f"{watcher}/labels", json=body, headers=auth)
    if r.status_code != 200:
        raise DemoError(f"POST {watcher}/labels answered {r.status_code}: {r.text[:300]}")
    return dict(r.json())


def _wait_for_run(svc: Any, timeout: float, res: ConceptResult, t_cross: float) -> list[str]:
    """Wait for the performance alert's run to finish and its version to be promoted; return the events."""
    def fired() -> Any:
        return next((r for r in svc.ledger.rows() if r.decision == "fired" and r.source == "performance"), None)

    row = wait_until(fired, 90, "the performance alert to reach the trigger service", interval=0.1)
    t_alert = time.time()
    row = wait_until(lambda: (x := svc.ledger.get(row.id)).run_status in FINAL and x, timeout,
                     f"run {row.run_id} to finish", interval=0.2)
    res.timings = {"alert_s": round(t_alert - t_cross, 3), "run_s": round(time.time() - t_alert, 3)}
    events = [f"alert: {row.reason_code} → run {row.run_id}", f"run {row.run_status}"]
    if row.run_status == "succeeded" and row.version is not None:
        v = int(row.version)
        wait_until(lambda: Registry(svc.cfg.registry.uri, svc.cfg.name).alias("champion") == v, 60,
                   f"version {v} to become champion", interval=0.2)
        res.timings["closed_loop_s"] = round(time.time() - t_cross, 3)
        events.append(f"promoted v{v}")
    return events
