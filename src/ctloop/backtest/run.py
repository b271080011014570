"""Orchestrates a backtest: checks the inputs, builds the starting champion once, replays each policy
(in parallel worker processes up to ``jobs``) and summarises."""

from __future__ import annotations

import datetime as dt
import queue
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ctloop.backtest.replay import ReplaySetup, partition_files, replay_policy
from ctloop.backtest.spec import PolicySpec, parse_spec, policy_config
from ctloop.backtest.train import retrain
from ctloop.config import ProjectConfig
from ctloop.errors import BacktestError, CtloopError
from ctloop.registry import Registry

GUESS_ROWS_PER_DAY = 1000  # only orders the parallel work (volume policies against schedules)


@dataclass(frozen=True)
class BacktestRequest:
    """The inputs of ``ctloop backtest`` (validated by :func:`check_request`)."""

    stream: str
    start: dt.date
    end: dt.date
    policies: tuple[str, ...]
    label_delay_days: int = 0
    gpu_hour_cost: float = 0.0
    champion: int | None = None
    jobs: int = 1
    tolerance: float = 0.005


def check_request(cfg: ProjectConfig, req: BacktestRequest) -> list[PolicySpec]:
    """Parse the specs and check the stream holds labelled partitions for every replayed day.

    Raises:
        BacktestError: A bad spec (named), a bad date range, missing days, or a stream without labels.
    """
    if not req.policies:
        raise BacktestError("--policy: give at least one policy (e.g. --policy never --policy drift)")
    specs = [parse_spec(p) for p in req.policies]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise BacktestError(f"--policy: duplicated policy in {names}")
    for s in specs:
        policy_config(cfg, s)
    if req.end < req.start:
        raise BacktestError(f"--end {req.end} is before --start {req.start}")
    try:
        files = partition_files(req.stream)
    except CtloopError as exc:
        raise BacktestError(f"--stream {req.stream!r}: {exc}") from exc
    day = req.start
    while day <= req.end:
        if day not in files or not files[day]:
            raise BacktestError(f"--stream {req.stream!r}: no partition date={day} (every day from --start to "
                                "--end must be present)")
        day += dt.timedelta(days=1)
    target = cfg.data.target
    for f in files[req.start][:1]:
        if target not in pq.read_schema(f).names:
            raise BacktestError(f"--stream {req.stream!r}: {f} has no label column {target!r} (data.target); "
                                "a backtest needs a labelled stream")
    return specs


def _stream_cfg(cfg: ProjectConfig, stream: str, registry: Path) -> ProjectConfig:
    raw = cfg.model_dump(mode="json", by_alias=True)
    raw["data"]["source"] = stream
    raw["registry"]["uri"] = str(registry)
    raw["deploy"]["mode"] = "local"
    return ProjectConfig.model_validate(raw)


def starting_champion(cfg: ProjectConfig, req: BacktestRequest, workdir: Path) -> tuple[str, dict[str, Any]]:
    """A registry holding the starting champion: trained on the days before ``--start`` through the
    pipeline's steps, or copied from ``--champion VERSION`` of the project's registry.

    Raises:
        BacktestError: When the starting model fails validation or the gate, or the version is missing.
    """
    reg_dir = workdir / "start-registry"
    scfg = _stream_cfg(cfg, req.stream, reg_dir)
    if req.champion is not None:
        src = Registry(cfg.registry.uri, cfg.name)
        try:
            model_dir, meta = src.local_model_dir(req.champion), src.get(req.champion).metadata
        except CtloopError as exc:
            raise BacktestError(f"--champion {req.champion}: {exc}") from exc
        reg = Registry(str(reg_dir), cfg.name)
        version = reg.register(model_dir, {k: v for k, v in meta.items() if k != "parent"})
        reg.promote(version, reason=f"backtest start: v{req.champion} of {cfg.registry.uri}", force=True)
        return str(reg_dir), {"source": "registry", "version": req.champion}
    out = retrain(scfg, req.start - dt.timedelta(days=1), workdir / "start-run", f"{cfg.name}-bt-start",
                  {"cause": "manual", "reason": "backtest starting champion"})
    if not out.promoted:
        raise BacktestError(f"starting champion (trained on the days before --start {req.start}): {out.rejected}")
    return str(reg_dir), {"source": "trained", **out.to_dict()}


def run_backtest(cfg: ProjectConfig, req: BacktestRequest,
                 progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Run the whole backtest; returns the raw per-policy records and the starting champion."""
    specs = check_request(cfg, req)
    with tempfile.TemporaryDirectory(prefix="ctloop-backtest-") as tmp:
        work = Path(tmp)
        reg_dir, champion = starting_champion(cfg, req, work)
        setup = ReplaySetup(cfg, req.stream, req.start, req.end, req.label_delay_days, reg_dir, tmp)
        if req.jobs <= 1 or len(specs) == 1:
            runs = [replay_policy(setup, s, progress) for s in specs]
        else:
            runs = _parallel(setup, specs, req.jobs, progress)
    return {"champion": champion, "runs": runs}


def _parallel(setup: ReplaySetup, specs: list[PolicySpec], jobs: int,
              progress: Callable[[str, int], None] | None) -> list[dict[str, Any]]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        q = manager.Queue()
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set():
                try:
                    name, i = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if progress is not None:
                    progress(name, i)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        try:
            with ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=ctx) as pool:
                # the likely costliest first (most retrains), so the workers finish together
                order = sorted(range(len(specs)), key=lambda i: -expected_retrains(specs[i], setup))
                futures = {i: pool.submit(_worker, setup, specs[i], q) for i in order}
                runs = [futures[i].result() for i in range(len(specs))]
        finally:
            stop.set()
            t.join()
    return runs


def expected_retrains(spec: PolicySpec, setup: ReplaySetup) -> float:
    """A rough guess of a policy's retrains (for scheduling only): schedules and volumes by their period,
    alert-driven policies a few, ``never`` none."""
    days = (setup.end - setup.start).days + 1
    if spec.kind == "never":
        return 0.0
    if spec.every_days:
        return days / spec.every_days
    if spec.volume_rows:
        return days * GUESS_ROWS_PER_DAY / spec.volume_rows
    return 2.0


def _worker(setup: ReplaySetup, spec: PolicySpec, q: Any) -> dict[str, Any]:
    return replay_policy(setup, spec, lambda name, i: q.put((name, i)))
