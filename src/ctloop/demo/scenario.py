"""The demo's scenario: a project folder, a generated stream (stable days, then drift), and the config
that makes the loop close within tens of seconds (short windows, 1 s evaluation, 1 s ``for``)."""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctloop.datagen import DriftSpec, write_stream
from ctloop.errors import DemoError
from ctloop.project import example_schema
from ctloop.schema import dump_schema

STREAM_DIR = "stream"  # every day's rows, generated up front; a day "lands" in data/ when it has passed


@dataclass(frozen=True)
class DemoSettings:
    """What the demo replays and how fast the loop may close.

    Attributes:
        start: The first day of the stream.
        history_days: Days already in the data source before the replay (the first champion trains on
            the newest ``window_days`` of them).
        stable_days: Replayed days before the drift starts.
        drift_days: Replayed drifted days (the first one triggers the retrain).
        rows_per_day: Requests rows per day (also labelled rows landing per day).
        batch_rows: Rows per inference request.
        seed: Stream seed.
        window_days: Training window of every run (the freshest labelled days).
        prometheus: ``auto`` (real Prometheus + Alertmanager where installed), ``on`` or ``off``.
        loop_timeout: Seconds the demo waits for the loop to close before giving up.
    """

    start: dt.date = dt.date(2026, 1, 1)
    history_days: int = 3
    stable_days: int = 2
    drift_days: int = 5
    rows_per_day: int = 800
    batch_rows: int = 50
    seed: int = 7
    window_days: int = 1
    prometheus: str = "auto"
    loop_timeout: float = 420.0
    name: str = "churn"

    @property
    def drift_start(self) -> dt.date:
        """The first drifted day."""
        return self.start + dt.timedelta(days=self.history_days + self.stable_days)

    @property
    def total_days(self) -> int:
        """Every day of the stream."""
        return self.history_days + self.stable_days + self.drift_days

    def day(self, i: int) -> dt.date:
        """The ``i``-th day of the stream (0-based)."""
        return self.start + dt.timedelta(days=i)

    @property
    def replay(self) -> list[dt.date]:
        """The days replayed through the model server."""
        return [self.day(i) for i in range(self.history_days, self.total_days)]

    @property
    def volume_rows(self) -> int:
        """Volume threshold: more rows than can pile up before the drift retrain (so only the drift
        alert starts a run), reached a few days after it (so the volume trigger meets the cooldown)."""
        return (self.stable_days + 2) * self.rows_per_day


def demo_config(s: DemoSettings, ports: dict[str, int], use_prometheus: bool) -> dict[str, Any]:
    """The project config of the demo (relative paths resolve against the project folder)."""
    watcher = f"http://127.0.0.1:{ports['watcher']}"
    return {
        "name": s.name,
        "data": {"source": "data", "target": "label", "window_days": s.window_days, "recent_days": 1,
                 "test_fraction": 0.25, "seed": 0},
        "schema": {"path": "schema.yaml"},
        "model": {"trainer": "sklearn",
                  "params": {"estimator": "hist_gradient_boosting", "max_iter": 60, "learning_rate": 0.1},
                  "seed": 0},
        "gate": {"min_metric": {"roc_auc": 0.65, "accuracy": 0.6}},
        "registry": {"uri": "registry"},
        "serving": {"host": "127.0.0.1", "port": ports["server"], "poll_seconds": 0.25,
                    "logger": {"url": f"{watcher}/events", "batch_size": 64, "flush_seconds": 0.05}},
        "drift": {"window_rows": s.rows_per_day // 2, "min_rows": s.rows_per_day // 4, "consecutive_windows": 2,
                  "bootstrap_samples": 300, "drift_share_alert": 0.25, "alert_for": "1s",
                  "host": "127.0.0.1", "port": ports["watcher"], "poll_seconds": 0.25},
        "triggers": {"cooldown_minutes": 60, "daily_budget": 4, "schedule": "0 * * * *",
                     "schedule_by": "cronjob", "volume_rows": s.volume_rows, "volume_check_seconds": 0.5,
                     "ledger": "state/ledger.sqlite", "token_file": "secrets/trigger-token",
                     "submitter": "local", "prometheus": use_prometheus, "evaluation_interval": "1s",
                     "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h",
                     "endpoint": watcher},
        "kfp": {"pipeline_root": "runs"},
        "deploy": {"mode": "local"},
    }


HEADER = "# ctloop demo project (written by `ctloop demo`)\n"


def check_out_dir(root: Path) -> None:
    """Refuse to replace a folder that is neither empty nor an earlier demo (nothing else is deleted).

    Raises:
        DemoError: ``root`` is a file, or a non-empty folder without a demo ``ctloop.yaml``.
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise DemoError(f"--out {root}: is a file; choose a new or empty folder")
    cfg = root / "ctloop.yaml"
    is_demo = cfg.is_file() and cfg.read_text(errors="replace").startswith(HEADER)
    if any(root.iterdir()) and not is_demo:
        raise DemoError(f"--out {root}: the folder is not empty and is not an earlier `ctloop demo` folder; "
                        "choose a new or empty folder (the demo replaces it)")


def write_project(root: Path, s: DemoSettings, ports: dict[str, int], use_prometheus: bool) -> Path:
    """Write a fresh demo project under ``root`` (replacing an old one); return its ``ctloop.yaml``.

    The whole stream is generated into ``stream/``; the history days are copied into ``data/``.
    """
    check_out_dir(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "schema.yaml").write_text(dump_schema(example_schema()))
    (root / "secrets").mkdir()
    token = root / "secrets" / "trigger-token"
    token.write_text(secrets.token_hex(32) + "\n")
    token.chmod(0o600)
    cfg = root / "ctloop.yaml"
    cfg.write_text(HEADER + yaml.safe_dump(demo_config(s, ports, use_prometheus), sort_keys=False))
    write_stream(root / STREAM_DIR, s.start, s.total_days, s.seed, s.rows_per_day,
                 DriftSpec(s.drift_start, covariate=1.0, concept=1.0))
    for i in range(s.history_days):
        land_day(root, s.day(i))
    return cfg


def land_day(root: Path, day: dt.date) -> Path:
    """The day's labelled rows land in the data source, atomically (a hidden folder renamed into place)."""
    src = root / STREAM_DIR / f"date={day.isoformat()}" / "part-0.parquet"
    data = root / "data"
    tmp = data / f".incoming-{day.isoformat()}"
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, tmp / "part-0.parquet")
    dst = data / f"date={day.isoformat()}"
    tmp.replace(dst)
    return dst / "part-0.parquet"
