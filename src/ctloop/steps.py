"""The pipeline's step functions. Each KFP component is a thin call into one of these.

Every step takes the canonical config JSON (so a cluster run needs no local file) and artifact paths,
and returns a small JSON-friendly dict. A failing step raises a typed :mod:`ctloop.errors` error and
prints one ``CTLOOP_ERROR {json}`` line so the local runner can report what failed and with which
exit code.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pandas as pd

from ctloop import __version__
from ctloop.config import ProjectConfig, config_from_json
from ctloop.data import DATE_COLUMN, read_window
from ctloop.errors import CtloopError, DataError, DataValidationError, ModelError
from ctloop.evaluate import decide, evaluate_model
from ctloop.model import load_model
from ctloop.registry import Registry
from ctloop.schema import enforce, load_schema
from ctloop.train import train_model

P = ParamSpec("P")
R = TypeVar("R")
ERROR_PREFIX = "CTLOOP_ERROR "
STEP_PREFIX = "CTLOOP_STEP "


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print one machine-readable line per step: its time on success, the typed error on failure."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        t0 = time.perf_counter()
        name = fn.__name__.removesuffix("_step")
        try:
            result = fn(*args, **kwargs)
        except CtloopError as exc:
            line = {"step": name, "type": type(exc).__name__, "exit_code": exc.exit_code,
                    "message": str(exc)}
            print(ERROR_PREFIX + json.dumps(line), file=sys.stdout, flush=True)
            raise
        seconds = time.perf_counter() - t0
        print(STEP_PREFIX + json.dumps({"step": name, "seconds": round(seconds, 4)}), flush=True)
        return result

    return wrapper


def _cfg(config_json: str | ProjectConfig) -> ProjectConfig:
    return config_json if isinstance(config_json, ProjectConfig) else config_from_json(config_json)


def _timed(info: dict[str, Any], started: float) -> dict[str, Any]:
    info["step_seconds"] = round(time.perf_counter() - started, 4)
    return info


@reports_errors
def ingest_step(config_json: str | ProjectConfig, cutoff_date: str, dataset_path: str) -> dict[str, Any]:
    """Read the training window (last ``data.window_days`` up to ``cutoff_date``) into one parquet file."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    cutoff = None
    if cutoff_date:
        try:
            cutoff = dt.date.fromisoformat(cutoff_date)
        except ValueError as exc:
            raise DataError(f"cutoff_date {cutoff_date!r}: expected YYYY-MM-DD") from exc
    snap = read_window(cfg.data.source, cfg.data.window_days, cutoff, cfg.data.allow_missing_days,
                       target=cfg.data.target)
    Path(dataset_path).parent.mkdir(parents=True, exist_ok=True)
    snap.frame.to_parquet(dataset_path, index=False)
    return _timed({
        "rows": int(len(snap.frame)),
        "source": snap.source,
        "first_day": snap.days[0].isoformat(),
        "last_day": snap.days[-1].isoformat(),
        "days": len(snap.days),
        "files": len(snap.files),
        "content_hash": snap.content_hash,
        "missing_days": [d.isoformat() for d in snap.missing_days],
    }, t0)


def _read(path: str, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from exc


@reports_errors
def validate_step(config_json: str | ProjectConfig, dataset_path: str, report_path: str) -> dict[str, Any]:
    """Check the dataset against the schema; write a JSON report; raise on errors (fail closed)."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    schema = load_schema(cfg.schema_.path)
    frame = _read(dataset_path, "dataset")
    report: dict[str, Any] = {"rows": int(len(frame)), "schema": cfg.schema_.path, "errors": [], "warnings": []}
    try:
        if frame.empty:
            raise DataValidationError(f"{dataset_path}: the batch is empty (0 rows)")
        if schema.target != cfg.data.target:
            raise DataValidationError(
                f"schema target {schema.target!r} differs from data.target {cfg.data.target!r}")
        warnings = enforce(frame, schema, where=cfg.data.source)
        report["warnings"] = [w.message() for w in warnings]
        report["passed"] = True
    except DataValidationError as exc:
        report["passed"] = False
        report["errors"] = [str(exc)]
        raise
    finally:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2))
    return _timed(report, t0)


@reports_errors
def split_step(config_json: str | ProjectConfig, dataset_path: str, train_path: str, test_path: str,
               recent_path: str) -> dict[str, Any]:
    """Split into train/test (stratified, seeded) and a recent slice: the test rows of the newest days."""
    from sklearn.model_selection import train_test_split

    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    frame = _read(dataset_path, "dataset")
    y = frame[cfg.data.target]
    stratify = y if y.value_counts().min() >= 2 else None
    train, test = train_test_split(frame, test_size=cfg.data.test_fraction, random_state=cfg.data.seed,
                                   stratify=stratify)
    days = sorted(frame[DATE_COLUMN].unique())
    recent_days = days[-cfg.data.recent_days:]
    recent = test[test[DATE_COLUMN].isin(recent_days)]
    for df, path in ((train, train_path), (test, test_path), (recent, recent_path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        df.reset_index(drop=True).to_parquet(path, index=False)
    return _timed({"train_rows": len(train), "test_rows": len(test), "recent_rows": len(recent),
                   "recent_days": list(recent_days)}, t0)


@reports_errors
def train_step(config_json: str | ProjectConfig, train_path: str, model_dir: str) -> dict[str, Any]:
    """Fit the configured trainer and save the model folder."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    schema = load_schema(cfg.schema_.path)
    manifest = train_model(cfg.model.trainer, _read(train_path, "train split"), schema, cfg.model.params,
                           cfg.model.seed, model_dir, training=cfg.training, progress=True)
    info: dict[str, Any] = {"trainer": manifest["trainer"], "train_rows": manifest["train_rows"]}
    if manifest.get("history"):  # torch: per-epoch metrics for the KFP Metrics artifact
        info["metrics"] = epoch_metrics(manifest)
    return _timed(info, t0)


def epoch_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    """Flatten a torch manifest's per-epoch history into scalar KFP metrics."""
    out: dict[str, float] = {"best_epoch": float(manifest["best_epoch"]),
                             "best_val_loss": float(manifest["best_val_loss"])}
    for row in manifest["history"]:
        for key in ("train_loss", "val_loss", "val_accuracy"):
            out[f"epoch_{int(row['epoch']):03d}_{key}"] = float(row[key])
    return out


@reports_errors
def evaluate_step(config_json: str | ProjectConfig, model_dir: str, test_path: str, recent_path: str,
                  decision_path: str) -> dict[str, Any]:
    """Evaluate on the holdout and the recent slice, apply the gate, and write the decision record."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    model = load_model(model_dir)
    test = _read(test_path, "test split")
    recent = _read(recent_path, "recent slice")
    metrics = evaluate_model(model, test, cfg.data.target)
    recent_metrics = evaluate_model(model, recent, cfg.data.target) if len(recent) else {}
    decision = decide(metrics, cfg.gate)
    record = {"metrics": metrics, "recent_metrics": recent_metrics, **decision.to_dict(),
              "markdown": decision.markdown()}
    Path(decision_path).parent.mkdir(parents=True, exist_ok=True)
    Path(decision_path).write_text(json.dumps(record, indent=2, default=float))
    return _timed(record, t0)


@reports_errors
def register_step(config_json: str | ProjectConfig, model_dir: str, decision_path: str,
                  data_info: dict[str, Any], run_id: str, trigger_json: str) -> dict[str, Any]:
    """Register a gate-passing model with its lineage; refuse one whose decision did not pass."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    decision = json.loads(Path(decision_path).read_text())
    if not decision.get("passed"):
        raise ModelError("register: the gate decision did not pass; nothing registered")
    try:
        trigger = json.loads(trigger_json) if trigger_json else {"cause": "manual"}
    except json.JSONDecodeError as exc:
        raise DataError(f"trigger_json: not valid JSON ({exc})") from exc
    reg = Registry(cfg.registry.uri, cfg.name)
    meta = {
        "run_id": run_id,
        "trigger": trigger,
        "metrics": decision["metrics"],
        "recent_metrics": decision.get("recent_metrics", {}),
        "decision": {k: decision[k] for k in ("passed", "checks", "notes")},
        "data": data_info,
        "config_hash": cfg.config_hash(),
        "code_version": __version__,
        "parent": reg.alias("champion"),
        "model_manifest": json.loads((Path(model_dir) / "model.json").read_text()),
    }
    version = reg.register(model_dir, meta)
    return _timed({"version": version}, t0)


@reports_errors
def deploy_step(config_json: str | ProjectConfig, version: int, run_id: str) -> dict[str, Any]:
    """Deploy a registered version. ``local`` mode moves the champion alias."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    if cfg.deploy.mode != "local":
        raise ModelError(f"deploy.mode {cfg.deploy.mode!r} is not available yet; use 'local'")
    reg = Registry(cfg.registry.uri, cfg.name)
    previous = reg.promote(version, reason=f"gate passed in run {run_id}")
    return _timed({"version": version, "previous": previous, "mode": "local"}, t0)
