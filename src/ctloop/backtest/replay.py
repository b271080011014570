"""Replay one policy day by day over a labelled stream, with a simulated clock.

Per day: the policy's current model scores the day's rows (realized accuracy and ROC AUC, since the replay
knows the labels); the rows and scores go to the live drift core (:class:`~ctloop.drift.DriftMonitor`) and
the live quality tracker (:class:`~ctloop.quality.monitor.QualityMonitor`, labels released only after the
label delay) — each fed where the policy's signal reads it (``drift``; ``performance`` and ``estimated``);
the policy's triggers go through the live trigger policy (:class:`~ctloop.triggers.policy.Policy`:
dedupe, one active run, cooldown, daily budget) with a temporary ledger. A fired run trains at the end of
its day on data up to ``day - label_delay`` (so it never sees a label early nor a later day) and, when
validation and the gate pass, its model serves from the next day.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from ctloop.backtest.spec import PolicySpec, policy_config
from ctloop.backtest.train import retrain
from ctloop.config import ProjectConfig
from ctloop.data import list_partitions
from ctloop.drift import DriftMonitor
from ctloop.errors import BacktestError
from ctloop.model import LoadedModel, load_model
from ctloop.profile import Profile
from ctloop.quality.monitor import QualityMonitor
from ctloop.quality.realized import realized_metrics
from ctloop.quality.store import LabelBatch, PredictionStore
from ctloop.quality.types import PerformanceSnapshot
from ctloop.registry import Registry
from ctloop.triggers.ledger import Ledger
from ctloop.triggers.performance import ESTIMATED_ALERT, PERFORMANCE_ALERT, PerformanceEvaluator, performance_rule
from ctloop.triggers.policy import Policy, Trigger
from ctloop.triggers.rules import EmbeddedEvaluator, alert_rule
from ctloop.watcher.state import load_reference

DAY = 86400.0
CHUNKS_PER_DAY = 8  # the watcher's evaluators run this often per simulated day


@dataclass(frozen=True)
class ReplaySetup:
    """What every policy's replay shares (picklable, for worker processes)."""

    cfg: ProjectConfig
    stream: str
    start: dt.date
    end: dt.date
    label_delay_days: int
    champion_registry: str
    workdir: str


@dataclass
class PolicyRun:
    """The record of one policy's replay."""

    policy: str
    kind: str
    days: list[dict[str, Any]] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
    label_releases: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


def day_frame(stream: str, day: dt.date, files: dict[dt.date, tuple[str, ...]]) -> pd.DataFrame:
    """One day's partition (raises when it is missing)."""
    if day not in files:
        raise BacktestError(f"--stream {stream!r}: no partition date={day.isoformat()} inside --start..--end")
    return pd.concat([pd.read_parquet(f) for f in files[day]], ignore_index=True)


def partition_files(stream: str) -> dict[dt.date, tuple[str, ...]]:
    """The stream's day → parquet files."""
    return {p.day: p.files for p in list_partitions(stream)}


class _Serving:
    """The policy's serving model and the live monitors that follow it."""

    def __init__(self, cfg: ProjectConfig, reg: Registry, quality: QualityMonitor | None, drift: bool) -> None:
        self.cfg, self.reg, self.quality, self.drift = cfg, reg, quality, drift
        self.version = -1
        self.model: LoadedModel | None = None
        self.monitor: DriftMonitor | None = None
        self.last_day: str | None = None
        self.follow()

    def follow(self) -> bool:
        """Load the champion when it changed (as the model server and the watcher do)."""
        version = self.reg.alias("champion")
        if version is None or version == self.version:
            return False
        model_dir = self.reg.local_model_dir(version)
        meta = self.reg.get(version).metadata
        self.version, self.model = version, load_model(model_dir)
        if self.drift:
            self.monitor = DriftMonitor(load_reference(model_dir), self.cfg.drift)
        self.last_day = (meta.get("data") or {}).get("last_day")
        if self.quality is None:
            return True
        metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items() if isinstance(v, int | float)}
        try:
            calibration = Profile.load(model_dir).calibration
        except Exception:  # noqa: BLE001 - an old profile without calibration: raw scores
            calibration = None
        self.quality.set_version(version, metrics, calibration)
        return True


class PolicyReplay:
    """The replay of one policy (see the module docstring)."""

    def __init__(self, setup: ReplaySetup, spec: PolicySpec, workdir: Path) -> None:
        import shutil

        self.setup, self.spec = setup, spec
        reg_dir = workdir / "registry"
        shutil.copytree(setup.champion_registry, reg_dir)
        raw = policy_config(setup.cfg, spec).model_dump(mode="json", by_alias=True)
        raw["data"]["source"] = setup.stream
        raw["registry"]["uri"] = str(reg_dir)
        raw["deploy"]["mode"] = "local"
        raw["triggers"]["ledger"] = str(workdir / "ledger.sqlite")
        raw["monitoring"]["labels"]["store"] = str(workdir / "predictions.sqlite")
        self.cfg = ProjectConfig.model_validate(raw)
        self.workdir = workdir
        self.metrics = CollectorRegistry()
        self.ledger = Ledger(workdir / "ledger.sqlite")
        self.now = dt.datetime.combine(setup.start, dt.time(), dt.UTC)
        self.policy = Policy(self.cfg.triggers, self.ledger, {self.cfg.name}, self.metrics, clock=lambda: self.now)
        lab = self.cfg.monitoring.labels
        from ctloop.quality.monitor import duration_seconds

        store = PredictionStore(lab.store, lab.max_predictions, duration_seconds(lab.max_delay))
        # the monitors a policy's signal reads (the others would be computed and never read)
        self.quality = QualityMonitor(self.cfg, store, self.metrics) \
            if spec.kind in ("performance", "estimated") else None
        self.store = store
        self.reg = Registry(self.cfg.registry.uri, self.cfg.name)
        self.serving = _Serving(self.cfg, self.reg, self.quality, spec.kind == "drift")
        self.drift_eval = EmbeddedEvaluator(alert_rule(self.cfg), self._drift_share, self._drifted)
        self.perf_eval = PerformanceEvaluator(performance_rule(self.cfg), self._snapshot)
        self.pending_labels: deque[tuple[float, LabelBatch, float]] = deque()
        self.run = PolicyRun(spec.name, spec.kind)
        self.active: tuple[int, Trigger] | None = None

    def _snapshot(self) -> PerformanceSnapshot | None:
        return self.quality.snapshot() if self.quality is not None else None

    def _drift_share(self) -> float | None:
        last = self.serving.monitor.last if self.serving.monitor else None
        return last.drift_share if last else 0.0

    def _drifted(self) -> list[str]:
        last = self.serving.monitor.last if self.serving.monitor else None
        return list(last.drifted) if last else []

    # -- one day -------------------------------------------------------------------------------------

    def replay_day(self, day: dt.date, frame: pd.DataFrame) -> None:
        """Score, monitor and trigger for one day; run a fired retrain at its end."""
        cfg, model = self.cfg, self.serving.model
        assert model is not None
        target = cfg.data.target
        if target not in frame.columns or frame[target].isna().any():
            raise BacktestError(f"--stream {self.setup.stream!r}: day {day}: no labels in column {target!r} "
                                "(a backtest needs a labelled stream)")
        y = frame[target].to_numpy(dtype="int64")
        proba = model.predict_proba(frame)
        yhat = (proba >= cfg.serving.threshold).astype("int64")
        m = realized_metrics(proba, yhat, y)
        self.run.days.append({"day": day.isoformat(), "version": self.serving.version, "rows": len(frame),
                              "accuracy": _f(m.get("accuracy")), "roc_auc": _f(m.get("roc_auc"))})
        day0 = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
        ids = frame[cfg.data.id_column].astype(str).tolist() if cfg.data.id_column in frame else \
            [f"{day}-{i}" for i in range(len(frame))]
        bounds = np.linspace(0, len(frame), CHUNKS_PER_DAY + 1).astype(int)
        for c in range(CHUNKS_PER_DAY):
            a, b = int(bounds[c]), int(bounds[c + 1])
            t_rows = day0 + (c / CHUNKS_PER_DAY) * DAY
            t_end = day0 + ((c + 1) / CHUNKS_PER_DAY) * DAY
            self.now = dt.datetime.fromtimestamp(t_end, dt.UTC)
            if b > a:
                monitor = self.serving.monitor
                if monitor is not None:
                    part = frame.iloc[a:b]
                    monitor.ingest({f: part[f].to_numpy() for f in monitor.reference.features}, b - a)
                    monitor.ingest_predictions(proba[a:b])
                if self.quality is not None:
                    self.quality.record(ids[a:b], self.serving.version, proba[a:b], yhat[a:b], when=t_rows)
                due = t_rows + self.setup.label_delay_days * DAY
                self.pending_labels.append((due, LabelBatch(ids[a:b], y[a:b].tolist(), [due] * (b - a)), t_rows))
            self._release_labels(t_end)
            for trig in self._signal_triggers():
                self._decide(trig)
        self.now = dt.datetime.fromtimestamp(day0 + DAY - 1, dt.UTC)
        for trig in self._day_end_triggers(day):
            self._decide(trig)
        if self.active is not None:
            self._run_retrain(day)

    def _release_labels(self, now: float) -> None:
        while self.pending_labels and self.pending_labels[0][0] <= now:
            due, labels, row_time = self.pending_labels.popleft()
            if self.quality is not None:
                self.quality.apply_labels(labels, now=due)
            self.run.label_releases.append({"released_at": now, "row_time": row_time})

    def _signal_triggers(self) -> list[Trigger]:
        kind = self.spec.kind
        if kind == "drift":
            t = self.drift_eval.evaluate(self.now)
            return [t] if t is not None else []
        if kind in ("performance", "estimated"):
            want = PERFORMANCE_ALERT if kind == "performance" else ESTIMATED_ALERT
            return [t for t in self.perf_eval.evaluate(self.now) if t.detail.get("alertnames") == [want]]
        return []

    def _day_end_triggers(self, day: dt.date) -> list[Trigger]:
        spec, name = self.spec, self.cfg.name
        if spec.kind == "schedule" and spec.every_days and ((day - self.setup.start).days + 1) % spec.every_days == 0:
            return [Trigger("schedule", name, episode=f"backtest-slot {day.isoformat()}",
                            reason=f"every {spec.every_days}d (backtest schedule)")]
        if spec.kind == "volume" and spec.volume_rows:
            rows = self._new_labelled_rows(day)
            if rows >= spec.volume_rows:
                mark = self.serving.last_day
                return [Trigger("volume", name, episode=f"champion={self.serving.version}|watermark={mark}|"
                                f"x{rows // spec.volume_rows}",
                                reason=f"{rows} new labelled rows since {mark} (threshold {spec.volume_rows})",
                                detail={"rows": rows})]
        return []

    def _new_labelled_rows(self, day: dt.date) -> int:
        """Rows of days after the champion's training window whose labels are in by the end of ``day``."""
        cutoff = day - dt.timedelta(days=self.setup.label_delay_days)
        after = dt.date.fromisoformat(self.serving.last_day) if self.serving.last_day else self.setup.start
        return sum(int(d["rows"]) for d in self.run.days if after < dt.date.fromisoformat(d["day"]) <= cutoff)

    def _decide(self, trig: Trigger) -> None:
        if trig.resolved:
            return
        dec = self.policy.decide(trig)
        if dec.fired:
            self.active = (dec.trigger_id, trig)
        else:
            self.run.suppressed[dec.reason_code] = self.run.suppressed.get(dec.reason_code, 0) + 1

    def _run_retrain(self, day: dt.date) -> None:
        assert self.active is not None
        tid, trig = self.active
        cutoff = day - dt.timedelta(days=self.setup.label_delay_days)
        run_id = f"{self.cfg.name}-bt-{day.isoformat()}"
        out = retrain(self.cfg, cutoff, Path(tempfile.mkdtemp(dir=self.workdir)), run_id, trig.lineage())
        status = "succeeded" if out.promoted else "failed"
        self.ledger.set_run(tid, run_status=status, version=out.version, error=out.rejected, now=self.now)
        self.active = None
        self.run.retrains.append({"day": day.isoformat(), "cause": trig.lineage()["cause"], "reason": trig.reason,
                                  "fired_at": self.now.isoformat(), **out.to_dict()})

    def next_day(self) -> None:
        """Promotion takes effect: follow the champion alias before the next day's rows."""
        self.serving.follow()

    def close(self) -> None:
        """Close the ledger and the prediction store."""
        self.ledger.close()
        self.store.close()


def _f(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def replay_policy(setup: ReplaySetup, spec: PolicySpec,
                  progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Replay ``spec`` from ``setup.start`` to ``setup.end``; returns :class:`PolicyRun` as a dict."""
    import time

    t0 = time.perf_counter()
    files = partition_files(setup.stream)
    work = Path(tempfile.mkdtemp(prefix=f"{spec.kind}-", dir=setup.workdir))
    rp = PolicyReplay(setup, spec, work)
    try:
        day, i = setup.start, 0
        while day <= setup.end:
            rp.replay_day(day, day_frame(setup.stream, day, files))
            rp.next_day()
            i += 1
            if progress is not None:
                progress(spec.name, i)
            day += dt.timedelta(days=1)
    finally:
        rp.close()
    rp.run.seconds = round(time.perf_counter() - t0, 3)
    return rp.run.to_dict()
