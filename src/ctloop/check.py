"""``ctloop check``: what a pull request to a ctloop project should run (the CI leg of CI/CD/CT).

Checks, each named in the result: the config loads and the schema is valid; the compiled pipeline equals
the committed one (when the project commits one); the rendered manifests equal the committed ones (when
committed); the newest data partition passes validation against the champion's profile; and a smoke run
of the whole pipeline on a small sample under ``kfp.local``, registering into a throwaway registry.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctloop.config import ProjectConfig, load_config
from ctloop.errors import CtloopError


@dataclass
class CheckOutcome:
    """One named check: passed, skipped (with why) or failed (with why)."""

    name: str
    status: str  # passed | failed | skipped
    detail: str = ""


@dataclass
class CheckReport:
    """Every check's outcome; ``passed`` when none failed."""

    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.status != "failed" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks]}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def check_pipeline(cfg: ProjectConfig, committed: Path) -> CheckOutcome:
    """The committed compiled pipeline equals a fresh compile with the config's images."""
    from pipelines.training import compile_pipeline

    if not committed.is_file():
        return CheckOutcome("compiled_pipeline", "skipped", f"{committed} not committed")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_pipeline(Path(tmp) / "pipeline.yaml", image=cfg.kfp.images.runtime,
                                 training=cfg.training, train_image=cfg.kfp.images.trainer_gpu)
        if fresh.read_bytes() != committed.read_bytes():
            return CheckOutcome("compiled_pipeline", "failed",
                                f"{committed} is stale: run `ctloop compile --config ... --out {committed.parent}`")
    return CheckOutcome("compiled_pipeline", "passed", f"{committed} equals a fresh compile")


def check_manifests(cfg: ProjectConfig, committed: Path) -> CheckOutcome:
    """The committed manifests equal a fresh ``ctloop manifests render``."""
    from ctloop.render import render_all

    if not committed.is_dir():
        return CheckOutcome("manifests", "skipped", f"{committed} not committed")
    with tempfile.TemporaryDirectory() as tmp:
        render_all(cfg, Path(tmp))
        fresh, old = _tree(Path(tmp)), _tree(committed)
    stale = sorted(p for p in set(fresh) | set(old) if fresh.get(p) != old.get(p))
    if stale:
        return CheckOutcome("manifests", "failed", f"stale under {committed}: {', '.join(stale[:10])} "
                            "(run `ctloop manifests render`)")
    return CheckOutcome("manifests", "passed", f"{len(fresh)} files equal a fresh render")


def check_newest_partition(cfg: ProjectConfig) -> CheckOutcome:
    """The newest partition passes validation against the champion's profile (schema checks alone
    when there is no champion yet)."""
    from ctloop.data import read_window
    from ctloop.validation import run_validation

    snap = read_window(cfg.data.source, 1, None, True, target=cfg.data.target)
    day = snap.days[-1].isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "newest.parquet"
        snap.frame.to_parquet(path, index=False)
        report = run_validation(cfg, str(path), str(Path(tmp) / "report.json"), fail=False)
    doc = report.to_dict()
    if not doc["passed"]:
        return CheckOutcome("newest_partition", "failed", f"date={day}: " + "; ".join(doc["errors"] or ["failed"]))
    return CheckOutcome("newest_partition", "passed", f"date={day}: {doc['rows']} rows pass validation")


def _sample_source(cfg: ProjectConfig, out: Path, sample_rows: int) -> None:
    from ctloop.data import DATE_COLUMN, read_window

    snap = read_window(cfg.data.source, cfg.data.window_days, None, cfg.data.allow_missing_days,
                       target=cfg.data.target)
    per_day = max(1, sample_rows // max(1, len(snap.days)))
    for day, rows in snap.frame.groupby(DATE_COLUMN):
        part = out / f"date={day}"
        part.mkdir(parents=True)
        take = rows.sample(n=min(per_day, len(rows)), random_state=cfg.data.seed).drop(columns=[DATE_COLUMN])
        take.to_parquet(part / "part-0.parquet", index=False)


def check_smoke_run(cfg: ProjectConfig, sample_rows: int) -> CheckOutcome:
    """The whole pipeline under ``kfp.local`` on a sample, into a throwaway registry (the real one is
    untouched); a gate rejection still counts as a working pipeline."""
    from ctloop.runner import run_local

    tmp = Path(tempfile.mkdtemp(prefix="ctloop-check-"))
    try:
        _sample_source(cfg, tmp / "data", sample_rows)
        smoke = cfg.model_copy(update={
            "data": cfg.data.model_copy(update={"source": str(tmp / "data")}),
            "registry": cfg.registry.model_copy(update={"uri": str(tmp / "registry")}),
            "kfp": cfg.kfp.model_copy(update={"pipeline_root": str(tmp / "runs")}),
            "training": cfg.training.model_copy(update={"checkpoint_uri": str(tmp / "checkpoints")}),
            "deploy": cfg.deploy.model_copy(update={"mode": "local"}),
        })
        result = run_local(smoke, trigger={"cause": "manual", "reason": "ctloop check smoke run"}, force=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if result.status not in ("succeeded", "rejected"):
        err = result.error or {}
        return CheckOutcome("smoke_run", "failed",
                            f"{result.status} in step {err.get('step')}: {err.get('message')}")
    return CheckOutcome("smoke_run", "passed", f"{result.status} in {result.wall_seconds:.1f} s on a "
                        f"{sample_rows}-row sample")


def _guard(name: str, fn: Callable[[], CheckOutcome]) -> CheckOutcome:
    try:
        return fn()
    except CtloopError as exc:
        return CheckOutcome(name, "failed", str(exc))


def run_checks(config: Path, pipeline: Path | None = None, manifests: Path | None = None,
               sample_rows: int = 2000, smoke: bool = True) -> CheckReport:
    """Run every check for the project at ``config``; later checks are skipped when the config or
    schema does not load."""
    from ctloop.schema import load_schema

    rep = CheckReport()
    try:
        cfg = load_config(config)
        load_schema(cfg.schema_.path)
    except CtloopError as exc:
        rep.checks.append(CheckOutcome("config", "failed", str(exc)))
        return rep
    rep.checks.append(CheckOutcome("config", "passed", f"{config} and {cfg.schema_.path} load"))
    root = config.parent
    rep.checks.append(_guard("compiled_pipeline", lambda: check_pipeline(cfg, pipeline or root / "pipeline.yaml")))
    rep.checks.append(_guard("manifests", lambda: check_manifests(cfg, manifests or root / "manifests")))
    rep.checks.append(_guard("newest_partition", lambda: check_newest_partition(cfg)))
    if smoke:
        rep.checks.append(_guard("smoke_run", lambda: check_smoke_run(cfg, sample_rows)))
    else:
        rep.checks.append(CheckOutcome("smoke_run", "skipped", "--no-smoke"))
    return rep
