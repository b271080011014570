"""One retrain in a backtest: the pipeline's step functions in-process (ingest → validate → split → train →
evaluate/gate → register → deploy), against the policy's temporary registry."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ctloop import steps
from ctloop.config import ProjectConfig
from ctloop.errors import CtloopError


@dataclass
class RetrainOutcome:
    """What one retrain did: the version promoted (or why not), its data window and time."""

    cutoff: str
    seconds: float
    version: int | None = None
    promoted: bool = False
    rejected: str | None = None
    data_first_day: str | None = None
    data_last_day: str | None = None
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _gate_reasons(decision: dict[str, Any]) -> str:
    fails = [c.get("reason") or c.get("name") or str(c) for c in decision.get("checks", [])
             if isinstance(c, dict) and c.get("passed") is False]
    return "gate failed" + (f": {'; '.join(str(f) for f in fails[:3])}" if fails else "")


def retrain(cfg: ProjectConfig, cutoff: dt.date, run_dir: Path, run_id: str,
            trigger: dict[str, Any]) -> RetrainOutcome:
    """Train on the window ending at ``cutoff`` and promote the model if validation and the gate pass.

    Bad data or a failing gate gives a rejected outcome (nothing registered, champion untouched); the
    steps' own output lines are captured, not printed.
    """
    t0 = time.perf_counter()
    out = RetrainOutcome(cutoff=cutoff.isoformat(), seconds=0.0)
    p = {k: str(run_dir / f"{k}.{ext}") for k, ext in (
        ("dataset", "parquet"), ("validation", "json"), ("train", "parquet"), ("test", "parquet"),
        ("recent", "parquet"), ("decision", "json"))}
    model_dir = str(run_dir / "model")
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            info = steps.ingest_step(cfg, cutoff.isoformat(), p["dataset"])
            out.data_first_day, out.data_last_day, out.rows = info["first_day"], info["last_day"], info["rows"]
            steps.validate_step(cfg, p["dataset"], p["validation"])
            steps.split_step(cfg, p["dataset"], p["train"], p["test"], p["recent"])
            steps.train_step(cfg, p["train"], model_dir)
            decision = steps.evaluate_step(cfg, model_dir, p["test"], p["recent"], p["decision"])
            if not decision.get("passed"):
                out.rejected = _gate_reasons(decision)
            else:
                data_info = {k: info[k] for k in ("source", "first_day", "last_day", "rows", "content_hash")}
                reg = steps.register_step(cfg, model_dir, p["decision"], data_info, run_id, json.dumps(trigger))
                out.version = int(reg["version"])
                dep = steps.deploy_step(cfg, out.version, run_id)
                out.promoted = bool(dep.get("promoted", True))
                if not out.promoted:
                    out.rejected = f"not promoted: {dep.get('reason', '')}"
    except CtloopError as exc:
        out.rejected = f"{type(exc).__name__}: {exc}"
    out.seconds = round(time.perf_counter() - t0, 4)
    return out
