"""Run the training pipeline under KFP's local runner and report what happened."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ctloop.config import ProjectConfig
from ctloop.registry import Registry
from ctloop.reports import REPORT_PREFIX
from ctloop.steps import ERROR_PREFIX, STEP_PREFIX

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([\w-]+)'")
TASK_END = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
TASK_SKIP = re.compile(r"Skipping (?:conditional )?task ([\w-]+)")
STEPS = ("ingest", "validate", "validate-gate", "split", "features", "train", "evaluate", "register", "deploy")

EventCallback = Callable[[str, str], None]


@dataclass
class RunResult:
    """The outcome of one pipeline run."""

    run_id: str
    status: str  # succeeded | rejected | unchanged | data_rejected | config_error | failed
    promoted: bool = False
    version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    wall_seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)
    log_path: str = ""
    reports: dict[str, dict[str, str]] = field(default_factory=dict)  # step -> {"json"|"html"|...: path}
    reason: str | None = None  # why the run ended early (``unchanged``)
    champion: int | None = None  # the champion after the run
    decision_path: str | None = None  # the gate's decision record
    model_uri: str | None = None  # the registered version's model folder

    @property
    def exit_code(self) -> int:
        """0 ran (promoted or rejected by the gate), 3 data rejected, 2 config error, 1 failure."""
        return {"succeeded": 0, "rejected": 0, "unchanged": 0, "data_rejected": 3,
                "config_error": 2}.get(self.status, 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


class _LogTap:
    """A stdout replacement: keeps the runner's log and turns known lines into events."""

    def __init__(self, log: io.TextIOBase | Any, on_event: EventCallback | None) -> None:
        self.log = log
        self.on_event = on_event
        self.buf = ""
        self.failures: list[dict[str, Any]] = []
        self.steps: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.reports: dict[str, dict[str, str]] = {}

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        self.log.write(s)
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self._line(ANSI.sub("", line))
        return len(s)

    def flush(self) -> None:
        self.log.flush()

    def _emit(self, task: str, state: str) -> None:
        self.status[task] = state
        if self.on_event:
            self.on_event(task, state)

    def _line(self, line: str) -> None:
        if ERROR_PREFIX in line:
            with contextlib.suppress(json.JSONDecodeError):
                self.failures.append(json.loads(line.split(ERROR_PREFIX, 1)[1]))
        elif REPORT_PREFIX in line:
            with contextlib.suppress(json.JSONDecodeError, KeyError):
                d = json.loads(line.split(REPORT_PREFIX, 1)[1])
                self.reports[d.pop("step")] = d
        elif STEP_PREFIX in line:
            with contextlib.suppress(json.JSONDecodeError):
                d = json.loads(line.split(STEP_PREFIX, 1)[1])
                self.steps[d["step"]] = float(d["seconds"])
        elif m := TASK_START.search(line):
            self._emit(m.group(1), "running")
        elif m := TASK_END.search(line):
            self._emit(m.group(1), "succeeded" if m.group(2) == "SUCCESS" else "failed")
        elif m := TASK_SKIP.search(line):
            self._emit(m.group(1).strip("'"), "skipped")


def new_run_id(name: str) -> str:
    """A unique, sortable run id."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{name}-{stamp}-{uuid.uuid4().hex[:6]}"


def run_local(
    cfg: ProjectConfig,
    trigger: dict[str, Any] | None = None,
    cutoff_date: str = "",
    on_event: EventCallback | None = None,
    run_id: str | None = None,
    force: bool = False,
) -> RunResult:
    """Run the training pipeline with ``kfp.local.SubprocessRunner(use_venv=False)``.

    Args:
        cfg: The project config (passed to every step as JSON).
        trigger: Why this run happens (``{"cause": "manual", ...}``); recorded in the lineage.
        cutoff_date: Last day of the training window (default: the newest partition).
        on_event: Called with ``(task, state)`` as steps start, finish or are skipped.
        run_id: Run id to use (default: a new one).
        force: Retrain even when the data window, config and code equal the champion's.
    """
    from kfp import local

    from pipelines.training import build_pipeline

    run_id = run_id or new_run_id(cfg.name)
    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    if not force:
        from ctloop.unchanged import unchanged_reason

        why = unchanged_reason(cfg, cutoff_date)
        if why is not None:
            return RunResult(run_id=run_id, status="unchanged", reason=why, champion=reg.alias("champion"))
    root = Path(cfg.kfp.pipeline_root)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{run_id}.log"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    pipeline = build_pipeline(cfg.kfp.images.runtime, training=cfg.training)  # kfp.local ignores scheduling
    result = RunResult(run_id=run_id, status="failed", log_path=str(log_path))
    t0 = time.perf_counter()
    warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")  # GPU/limits
    with open(log_path, "w") as log:
        tap = _LogTap(log, on_event)
        try:
            with contextlib.redirect_stdout(tap):
                task = pipeline(
                    config_json=cfg.to_json(),
                    trigger_json=json.dumps(trigger or {"cause": "manual"}),
                    run_id=run_id,
                    cutoff_date=cutoff_date,
                )
            decision = json.loads(Path(task.output.path).read_text())
            result.decision_path = str(task.output.path)
            result.decision = decision
            result.metrics = decision.get("metrics", {})
            result.status = "succeeded" if decision.get("passed") else "rejected"
        except RuntimeError as exc:
            err = tap.failures[-1] if tap.failures else {"step": None, "type": type(exc).__name__,
                                                     "exit_code": 1, "message": ANSI.sub("", str(exc))}
            result.error = err
            result.status = {3: "data_rejected", 2: "config_error"}.get(int(err.get("exit_code") or 1), "failed")
    result.wall_seconds = round(time.perf_counter() - t0, 3)
    result.step_seconds = tap.steps
    result.reports = tap.reports
    if result.status == "succeeded":
        for v in reversed(reg.versions()):
            if reg.get(v).metadata.get("run_id") == run_id:
                result.version = v
                break
        result.promoted = result.version is not None and reg.alias("champion") == result.version
    if result.version is not None:
        result.model_uri = reg.get(result.version).model_uri
    result.champion = reg.alias("champion")
    return result
