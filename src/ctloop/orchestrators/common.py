"""The training pipeline as plain steps that any orchestrator can call, one task per step.

Each step reads the config from ``config_path``, works in the run's folder
(``<kfp.pipeline_root>/orchestrated/<run_id>``) and returns a small JSON-able dict, so tasks can hand it
on through XCom, Prefect results or Dagster outputs. Steps run in-process, or (``python=...``) in another
interpreter that has ctloop installed, for orchestrators whose own dependencies clash with ctloop's::

    python -m ctloop.orchestrators.common <step> --config ctloop.yaml --run-id ... --trigger-json ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ctloop.errors import CtloopError, SubmitError

STEPS = ("ingest", "validate", "split", "features", "train", "evaluate", "register", "deploy")
RESULT_PREFIX = "CTLOOP_STEP_RESULT "


@dataclass(frozen=True)
class StepRun:
    """One pipeline run on an orchestrator.

    Attributes:
        config_path: The project's ``ctloop.yaml``.
        run_id: The deterministic run id from the trigger (or the orchestrator's run id).
        trigger_json: The trigger as JSON (``{"cause": ...}``), recorded in the model's lineage.
        cutoff_date: Last day of the training window (``YYYY-MM-DD``; empty: the newest day).
        python: Run each step with this interpreter (a venv with ctloop) instead of in-process.
    """

    config_path: str
    run_id: str
    trigger_json: str = '{"cause": "manual"}'
    cutoff_date: str = ""
    python: str | None = None


def workdir(run: StepRun) -> Path:
    """The run's folder for datasets, model and reports."""
    from ctloop.config import load_config

    cfg = load_config(run.config_path)
    root = cfg.kfp.pipeline_root
    base = Path(root) if "://" not in root else Path(run.config_path).resolve().parent / "runs"
    return base / "orchestrated" / run.run_id


def _step(name: str, run: StepRun) -> dict[str, Any]:
    from ctloop import steps
    from ctloop.config import load_config

    cfg = load_config(run.config_path)
    w = workdir(run)
    w.mkdir(parents=True, exist_ok=True)
    f = {k: str(w / v) for k, v in {
        "dataset": "dataset.parquet", "ingest": "ingest.json", "report": "validation.json",
        "train": "train.parquet", "test": "test.parquet", "recent": "recent.parquet", "model": "model",
        "table": "features.parquet", "state": "features.json", "features_html": "features.html",
        "decision": "decision.json", "register": "register.json",
    }.items()}
    if name == "ingest":
        info = steps.ingest_step(cfg, run.cutoff_date, f["dataset"])
        Path(f["ingest"]).write_text(json.dumps(info))
        return {"rows": info["rows"], "content_hash": info["content_hash"]}
    if name == "validate":
        out = steps.validate_step(cfg, f["dataset"], f["report"], fail=False)
        steps.validate_gate_step(cfg, f["report"])
        return {"passed": bool(out["passed"]), "rows": out["rows"]}
    if name == "split":
        out = steps.split_step(cfg, f["dataset"], f["train"], f["test"], f["recent"])
        return {k: out[k] for k in ("train_rows", "test_rows", "recent_rows")}
    if name == "features":
        out = steps.features_step(cfg, f["train"], f["table"], f["state"], f["features_html"])
        return {"rows": out["rows"], "derived": out["derived"]}
    if name == "train":
        out = steps.train_step(cfg, f["table"], f["model"], f["state"])
        return {"trainer": out["trainer"], "train_rows": out["train_rows"]}
    if name == "evaluate":
        rec = steps.evaluate_step(cfg, f["model"], f["test"], f["recent"], f["decision"])
        return {"passed": bool(rec["passed"]), "failed_checks": [c["name"] for c in rec["checks"] if not c["passed"]]}
    if name == "register":
        if not json.loads(Path(f["decision"]).read_text()).get("passed"):
            return {"registered": False, "version": None}
        ing = json.loads(Path(f["ingest"]).read_text())
        data_info = {k: ing.get(k) for k in ("source", "first_day", "last_day", "content_hash")}
        data_info.update({k: int(ing.get(k, 0)) for k in ("rows", "days", "files")})
        out = steps.register_step(cfg, f["model"], f["decision"], data_info, run.run_id, run.trigger_json)
        Path(f["register"]).write_text(json.dumps(out))
        return {"registered": True, "version": int(out["version"])}
    if name == "deploy":
        reg = Path(f["register"])
        if not reg.is_file():
            return {"deployed": False}
        version = int(json.loads(reg.read_text())["version"])
        return {"deployed": True, **json.loads(json.dumps(steps.deploy_step(cfg, version, run.run_id), default=str))}
    raise ValueError(f"unknown step {name!r}; expected one of {', '.join(STEPS)}")


def run_step(name: str, run: StepRun) -> dict[str, Any]:
    """Run one step of ``run`` (in-process, or with ``run.python``); return its summary.

    Raises:
        CtloopError: The step failed (bad data, config, gate...), in-process.
        SubmitError: The step failed in the other interpreter (its message carries the error).
    """
    if run.python is None:
        return _step(name, run)
    cmd = [run.python, "-m", "ctloop.orchestrators.common", name, "--run", json.dumps(asdict(run))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr[-4000:])
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            doc: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            if proc.returncode == 0:
                return doc
            raise SubmitError(f"step {name} of run {run.run_id} failed: {doc.get('error')}")
    raise SubmitError(f"step {name} of run {run.run_id} exited {proc.returncode}: {proc.stderr[-500:]}")


def main(argv: list[str] | None = None) -> int:
    """``python -m ctloop.orchestrators.common <step> --run '<StepRun JSON>'``: one step, result on stdout."""
    ap = argparse.ArgumentParser(prog="ctloop.orchestrators.common")
    ap.add_argument("step", choices=STEPS)
    ap.add_argument("--run", required=True, help="the StepRun as JSON")
    a = ap.parse_args(argv)
    run = StepRun(**{**json.loads(a.run), "python": None})
    try:
        out = _step(a.step, run)
    except CtloopError as exc:
        print(RESULT_PREFIX + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return int(getattr(exc, "exit_code", 1) or 1)
    print(RESULT_PREFIX + json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
