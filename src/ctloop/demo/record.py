"""What the demo observes: per-day records, the result, a sampler that timestamps changes (drift windows,
champion alias, served version), timeline markers, and the old-vs-new model comparison."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from ctloop.config import ProjectConfig
from ctloop.demo.scenario import STREAM_DIR, DemoSettings
from ctloop.registry import Registry


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


def iso_epoch(text: str | None) -> float | None:
    if not text:
        return None
    t = dt.datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def markers(ledger: list[dict[str, Any]], sampler: Sampler, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    dups = [r for r in ledger if r["reason_code"] == "duplicate"]
    if dups:  # repeated notifications of the same episode: one marker with the count
        out.append({"t": iso_epoch(dups[0]["received_at"]) or 0.0, "kind": "trigger", "id": dups[0]["id"],
                    "label": f"{len(dups)} repeated alert notifications suppressed: duplicate"})
    for r in ledger:
        t = iso_epoch(r["received_at"]) or 0.0
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


def day_bounds(days: list[DayRecord]) -> list[tuple[float, DayRecord]]:
    return [(d.started, d) for d in days]


def day_of(t: float, bounds: list[tuple[float, DayRecord]]) -> DayRecord | None:
    found = None
    for start, d in bounds:
        if t >= start:
            found = d
    return found


def compare(root: Path, cfg: ProjectConfig, s: DemoSettings, registry: Registry,
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
