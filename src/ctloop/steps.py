"""The pipeline's step functions. Each KFP component is a thin call into one of these.

Every step takes the canonical config JSON (so a cluster run needs no local file) and artifact paths,
and returns a small JSON-friendly dict. A failing step raises a typed :mod:`ctloop.errors` error and
prints one ``CTLOOP_ERROR {json}`` line so the local runner can report what failed and with which
exit code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pandas as pd

from ctloop.config import ProjectConfig, config_from_json
from ctloop.data import DATE_COLUMN, read_window
from ctloop.errors import (
    CtloopError,
    DataError,
    ModelError,
    RegistryError,
)
from ctloop.evaluate import ChampionEval, run_gate
from ctloop.lineage import code_version, parse_trigger
from ctloop.quality.training import holdout_calibration, with_calibration
from ctloop.registry import Registry
from ctloop.schema import load_schema
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
def validate_step(config_json: str | ProjectConfig, dataset_path: str, report_path: str,
                  html_path: str = "", summary_path: str = "", fail: bool = True) -> dict[str, Any]:
    """Check the dataset against the schema and the champion's profile; write the JSON report (and the
    HTML / Markdown renderings when paths are given); raise on errors (fail closed) unless ``fail`` is
    false, in which case :func:`validate_gate_step` stops the run after the reports are published."""
    from ctloop.reports import announce_report
    from ctloop.validation import run_validation

    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    try:
        report = run_validation(cfg, dataset_path, report_path, html_path or None, summary_path or None, fail)
    finally:
        line = announce_report("validate", json=report_path, html=html_path, markdown=summary_path)
        print(line, flush=True)
    doc = report.to_dict()
    return _timed({k: doc[k] for k in ("passed", "rows", "errors", "warnings")}, t0)


@reports_errors
def validate_gate_step(config_json: str | ProjectConfig, report_path: str) -> dict[str, Any]:
    """Stop the run (DataValidationError, exit code 3) when the validation report did not pass."""
    from ctloop.reports import announce_report
    from ctloop.validation import gate

    t0 = time.perf_counter()
    _cfg(config_json)
    try:
        doc = gate(report_path)
    finally:
        html = ""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            html = json.loads(Path(report_path).read_text()).get("html") or ""
        print(announce_report("validate_gate", json=report_path, html=html), flush=True)
    return _timed({"passed": doc["passed"], "rows": doc["rows"]}, t0)


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
def features_step(config_json: str | ProjectConfig, train_path: str, table_path: str, state_path: str,
                  html_path: str = "") -> dict[str, Any]:
    """Fit the declared features (``features:``) on the training split; write the feature table, the
    fitted state and an HTML summary."""
    from ctloop.feature_step import build_features

    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    return _timed(build_features(cfg, load_schema(cfg.schema_.path), train_path, table_path, state_path,
                                 html_path), t0)


@reports_errors
def train_step(config_json: str | ProjectConfig, train_path: str, model_dir: str,
               features_path: str = "") -> dict[str, Any]:
    """Fit the configured trainer on the feature table and save the model folder; the fitted features
    (``features_path``, from the features step) go into the model's manifest so serving applies them."""
    from ctloop.feature_step import with_derived

    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    features = json.loads(Path(features_path).read_text()) if features_path else None
    schema = with_derived(load_schema(cfg.schema_.path), features or {})
    manifest = train_model(cfg.model.trainer, _read(train_path, "train split"), schema, cfg.model.params,
                           cfg.model.seed, model_dir, training=cfg.training, progress=True)
    if features and features.get("specs"):
        man_path = Path(model_dir) / "model.json"
        full = json.loads(man_path.read_text())
        full["features"] = features
        if isinstance(full.get("fast_path"), dict) and full["fast_path"].get("status") == "ok":
            # the compiled path takes the model's columns as given; derived features are computed on the
            # reference path (ctloop.features.apply), so that one serves
            (Path(model_dir) / str(full["fast_path"].get("file", "fast.npz"))).unlink(missing_ok=True)
            full["fast_path"] = {"status": "disabled", "reason": "derived features (features:) are served on "
                                 "the reference path"}
        man_path.write_text(json.dumps(full, indent=2, sort_keys=True))
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
    """Evaluate the challenger and the champion on the same holdout and recent slice, apply the gate,
    and write the decision record (JSON, Markdown inside) whether the gate passes or not."""
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    test = _read(test_path, "test split")
    recent = _read(recent_path, "recent slice")
    champion: ChampionEval | tuple[int, Path] | None = None
    if cfg.gate.beat_champion is not None:
        reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
        version = reg.alias("champion")
        if version is not None:
            try:
                champion = (version, reg.local_model_dir(version))
            except RegistryError as exc:
                champion = ChampionEval(version, error=str(exc))
    decision = run_gate(cfg.gate, cfg.data.target, model_dir, test, recent, champion)
    record = {**decision.to_dict(), "markdown": decision.markdown(), "kfp_metrics": decision.kfp_metrics(),
              **holdout_calibration(model_dir, test, cfg.data.target)}
    Path(decision_path).parent.mkdir(parents=True, exist_ok=True)
    Path(decision_path).write_text(json.dumps(record, indent=2, default=float))
    return _timed(record, t0)


@reports_errors
def register_step(config_json: str | ProjectConfig, model_dir: str, decision_path: str,
                  data_info: dict[str, Any], run_id: str, trigger_json: str) -> dict[str, Any]:
    """Register a gate-passing model with its lineage; refuse one whose decision did not pass.

    Lineage: trigger cause, run id, data source/window/content hash, config hash, code version, the
    parent champion (the one the gate compared against) and the full decision record.
    """
    t0 = time.perf_counter()
    cfg = _cfg(config_json)
    try:
        decision = json.loads(Path(decision_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{decision_path}: cannot read the gate decision ({exc}); "
                         "nothing registered") from exc
    if not decision.get("passed"):
        raise ModelError("register: the gate decision did not pass; nothing registered")
    trigger = parse_trigger(trigger_json)
    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    src = served_model_dir(model_dir, decision)
    compared = decision.get("champion") or {}
    parent = compared.get("version") if compared else reg.alias("champion")
    meta = {
        "run_id": run_id,
        "trigger": trigger,
        "metrics": decision["metrics"],
        "recent_metrics": decision.get("recent_metrics", {}),
        "decision": {k: v for k, v in decision.items()
                     if k not in ("markdown", "kfp_metrics", "calibration")},
        "data": data_info,
        "config_hash": cfg.config_hash(),
        "code_version": code_version(),
        "parent": parent,
        "profile": "model/profile.json" if (Path(model_dir) / "profile.json").is_file() else None,
        "model_manifest": json.loads((Path(src) / "model.json").read_text()),
    }
    calibration = decision.get("calibration")
    if calibration:
        meta["calibration"] = {k: calibration.get(k) for k in ("method", "rows", "brier_before", "brier_after")}
    with with_calibration(src, calibration) as staged:
        version = reg.register(staged, meta)
    return _timed({"version": version, "parent": parent}, t0)


def served_model_dir(model_dir: str, decision: dict[str, Any]) -> str | Path:
    """The folder to register: ``model_dir``, or a copy without its fast path when the gate found it
    unfit to serve (export failed or disagreed on the holdout); the model itself is registered either way."""
    from ctloop.fastpath.artifact import fast_path_status, without_fast_path

    verdict = decision.get("fast_path")
    if isinstance(verdict, dict) and not verdict.get("serve") and fast_path_status(model_dir).get("status") == "ok":
        return without_fast_path(model_dir, str(verdict.get("reason", "the gate did not clear the fast path")))
    return model_dir


@reports_errors
def deploy_step(config_json: str | ProjectConfig, version: int, run_id: str) -> dict[str, Any]:
    """Deploy a registered version with ``deploy.mode`` (local: move the champion alias; gitops:
    commit + push the overlay; kubernetes: patch the InferenceService), then promote it."""
    from ctloop.deploy import deploy_version

    t0 = time.perf_counter()
    return _timed(deploy_version(_cfg(config_json), version, run_id), t0)
