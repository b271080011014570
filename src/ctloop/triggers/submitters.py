"""Submitters: turn a fired trigger into a pipeline run, and report how the run ended.

``local`` runs the training pipeline under the KFP local runner in one worker process, one run at a
time; ``kfp`` submits the compiled pipeline to a KFP API server with ``kfp.Client``. Both are
idempotent on the run id (derived from the trigger's idempotency key): submitting the same run twice
(e.g. when recovering after a crash) starts it once. Recovery first asks :meth:`Submitter.lookup`
whether the run already exists on the orchestrator and re-submits only when it does not.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ctloop.config import ProjectConfig
from ctloop.errors import SubmitError

log = logging.getLogger(__name__)

FINAL_STATUSES = (
    "succeeded",
    "rejected",
    "unchanged",
    "data_rejected",
    "config_error",
    "failed",
    "canceled",
    "interrupted",
)


@dataclass(frozen=True)
class RunRequest:
    """What to run: the config, the trigger's lineage record and the deterministic run id."""

    trigger_id: int
    run_id: str
    trigger: dict[str, Any]


@dataclass(frozen=True)
class RunUpdate:
    """A run's progress or outcome, written back to the ledger."""

    run_status: str
    external_id: str | None = None
    version: int | None = None
    error: str | None = None


OutcomeCallback = Callable[[RunRequest, RunUpdate], None]


class Submitter(Protocol):
    """What the trigger service needs from a submitter."""

    name: str

    def submit(self, req: RunRequest) -> RunUpdate:
        """Start the run (idempotently); return its status now (``submitted``/``running``)."""
        ...

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        """The run's status now, or ``None`` when unknown/unchanged."""
        ...

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        ...

    def close(self) -> None:
        """Release resources (stop workers)."""
        ...


def _run_in_worker(config_json: str, trigger_json: str, run_id: str) -> dict[str, Any]:
    """Worker-process entry: run the pipeline under the KFP local runner."""
    from ctloop.config import config_from_json
    from ctloop.runner import run_local

    result = run_local(config_from_json(config_json), trigger=json.loads(trigger_json), run_id=run_id)
    return {"status": result.status, "version": result.version,
            "error": (result.error or {}).get("message") or result.reason}


class LocalSubmitter:
    """Runs the pipeline with the KFP local runner in a worker process, one run at a time."""

    name = "local"

    def __init__(self, cfg: ProjectConfig, on_outcome: OutcomeCallback) -> None:
        self.cfg = cfg
        self.on_outcome = on_outcome
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # the worker leads its own process group, so close() can stop the pipeline steps it starts too
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=os.setpgrp)
        return self._pool

    def submit(self, req: RunRequest) -> RunUpdate:
        """Queue the run on the single worker (a second submit of the same run id is a no-op)."""
        with self._lock:
            known = self._known(req.run_id)
            if known is not None:
                return known
            try:
                fut = self._executor().submit(
                    _run_in_worker, self.cfg.to_json(), json.dumps(req.trigger), req.run_id
                )
            except RuntimeError as exc:
                raise SubmitError(f"local submitter: cannot start run {req.run_id} ({exc})") from exc
            self._futures[req.run_id] = fut
        fut.add_done_callback(lambda f: self._done(req, f))
        return RunUpdate("submitted", external_id=req.run_id)

    def _done(self, req: RunRequest, fut: Future[dict[str, Any]]) -> None:
        try:
            out = fut.result()
            update = RunUpdate(
                out["status"], external_id=req.run_id, version=out.get("version"), error=out.get("error")
            )
        except Exception as exc:  # the worker died or raised: record it, never lose the trigger
            update = RunUpdate("failed", external_id=req.run_id, error=f"{type(exc).__name__}: {exc}")
        self.on_outcome(req, update)

    def _known(self, run_id: str) -> RunUpdate | None:
        """A run queued here (``submitted``) or one that registered a version; the caller holds the lock."""
        if run_id in self._futures:
            return RunUpdate("submitted", external_id=run_id)
        return self._finished(run_id)

    def _finished(self, run_id: str) -> RunUpdate | None:
        """A run that already registered a version (e.g. before a restart)."""
        from ctloop.registry import Registry

        reg = Registry(self.cfg.registry.uri, self.cfg.name, self.cfg.registry.single_writer)
        for v in reversed(reg.versions()):
            if reg.get(v).metadata.get("run_id") == run_id:
                return RunUpdate("succeeded", external_id=run_id, version=v)
        return None

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """Whether the run exists: queued here, registered a version, or left its run log (it started
        before a restart and died with the previous watcher: ``interrupted``)."""
        with self._lock:
            known = self._known(req.run_id)
        if known is not None:
            return known
        run_log = Path(self.cfg.kfp.pipeline_root) / "logs" / f"{req.run_id}.log"
        if run_log.exists():
            return RunUpdate("interrupted", external_id=req.run_id,
                             error=f"the watcher restarted while this local run was in progress (log: {run_log})")
        return None

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        """Runs this process started report through the callback; a run left over from before a
        restart is ``succeeded`` if it registered a version, else ``interrupted``."""
        with self._lock:
            if req.run_id in self._futures:
                return None
        done = self._finished(req.run_id)
        return done or RunUpdate(
            "interrupted",
            external_id=req.run_id,
            error="the watcher restarted while this local run was in progress",
        )

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker and every process it started: queued runs are cancelled, a running pipeline is
        terminated (SIGTERM to the worker's process group, SIGKILL after ``timeout`` seconds); the ledger
        row stays ``submitted`` and is marked interrupted when the watcher starts again."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())  # the executor keeps no public handle
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            proc.join(max(deadline - time.monotonic(), 0.0))
            _signal_group(proc.pid, signal.SIGKILL)  # whatever of the group is left (no-op when gone)


def _signal_group(pid: int | None, sig: int) -> None:
    """Signal the process group led by ``pid`` (ignored when it is gone)."""
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


KFP_STATES = {
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "canceled",
    "CANCELING": "running",
    "RUNNING": "running",
    "PENDING": "submitted",
    "PAUSED": "running",
    "SKIPPED": "canceled",
    "RUNTIME_STATE_UNSPECIFIED": "submitted",
}


TRANSIENT_HTTP = (429, 500, 502, 503, 504)


def _transient(exc: Exception) -> bool:
    """A 429/5xx answer or a dropped connection: worth retrying."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status in TRANSIENT_HTTP
    return isinstance(exc, OSError) or type(exc).__name__ in ("MaxRetryError", "ProtocolError",
                                                               "NewConnectionError")


def _brief(exc: Exception) -> str:
    """One line about an error (the KFP client's HTTP errors carry headers and body in ``str``)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _require_host(cfg: ProjectConfig) -> None:
    if not cfg.kfp.host:
        raise SubmitError(
            "triggers.submitter is 'kfp' but kfp.host is not set; set kfp.host to the "
            "KFP API endpoint or use triggers.submitter: local"
        )


def cluster_pipeline_root(cfg: ProjectConfig) -> str | None:
    """``kfp.pipeline_root`` when it is a URI (``minio://``, ``s3://``, ``gs://``) a KFP server can use;
    None (the server's default root) for a local folder."""
    root = cfg.kfp.pipeline_root
    return root if "://" in root and not root.startswith("file://") else None


class KfpSubmitter:
    """Submits the compiled pipeline to KFP (``kfp.Client``), with a deterministic run name.

    Transient answers (429, 5xx, dropped connections) are retried ``attempts`` times with a doubling
    backoff; a create that failed that way is retried only after a lookup by name finds no run, so a
    run whose creation succeeded but whose answer was lost is not created twice.
    """

    name = "kfp"
    attempts = 4
    backoff_s = 0.2

    def __init__(self, cfg: ProjectConfig, pipeline_file: str | Path, client: Any = None) -> None:
        if client is None:
            _require_host(cfg)
        self.cfg = cfg
        self.pipeline_file = str(pipeline_file)
        if not Path(self.pipeline_file).is_file():
            raise SubmitError(f"{self.pipeline_file}: compiled pipeline not found (run `ctloop compile`)")
        self._client = client
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> KfpSubmitter:
        """A submitter of the pipeline compiled for ``cfg`` (its images, the train step's scheduling, the
        steps' object-store environment), written to a temporary folder that :meth:`close` removes.

        Raises:
            SubmitError: ``kfp.host`` is not set, or the pipeline does not compile.
        """
        _require_host(cfg)
        from pipelines.training import compile_for_config

        scratch = tempfile.TemporaryDirectory(prefix="ctloop-pipeline-")
        try:
            path = compile_for_config(cfg, Path(scratch.name) / "pipeline.yaml")
        except Exception as exc:
            scratch.cleanup()
            raise SubmitError(f"cannot compile the training pipeline for {cfg.name!r} "
                              f"({type(exc).__name__}: {exc})") from exc
        sub = cls(cfg, path)
        sub._scratch = scratch
        return sub

    @property
    def client(self) -> Any:
        """The ``kfp.Client`` (created on first use)."""
        if self._client is None:
            import kfp

            self._client = kfp.Client(host=self.cfg.kfp.host, namespace=self.cfg.kfp.namespace)
        return self._client

    def find(self, run_id: str) -> Any | None:
        """The KFP run whose display name is ``run_id``, if one exists."""
        flt = json.dumps(
            {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": run_id}]}
        )
        resp = self._call(lambda: self.client.list_runs(page_size=5, filter=flt), "cannot list runs")
        runs = [r for r in (resp.runs or []) if r.display_name == run_id]
        return runs[0] if runs else None

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """``fn()``, retried on transient errors; SubmitError naming ``what`` when it keeps failing."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt == self.attempts or not _transient(exc):
                    raise SubmitError(f"kfp {self.cfg.kfp.host}: {what} ({_brief(exc)}) after {attempt} "
                                      f"attempt(s)") from exc
                log.warning("kfp %s: %s (%s); retrying", self.cfg.kfp.host, what, _brief(exc))
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _update(run: Any) -> RunUpdate:
        status = KFP_STATES.get(str(run.state), "submitted")
        err = None
        if status == "failed" and getattr(run, "error", None) is not None:
            err = str(getattr(run.error, "message", None) or run.error)
        return RunUpdate(status, external_id=run.run_id, error=err)

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run named ``req.run_id`` on the KFP server, mapped to a ledger status, or None."""
        run = self.find(req.run_id)
        return None if run is None else self._update(run)

    def submit(self, req: RunRequest) -> RunUpdate:
        """Create the run unless one with the same name exists (then report that one)."""
        existing = self.lookup(req)
        if existing is not None:
            return existing
        args = {
            "config_json": self.cfg.to_json(),
            "trigger_json": json.dumps(req.trigger, sort_keys=True),
            "run_id": req.run_id,
            "cutoff_date": "",
        }
        for attempt in range(1, self.attempts + 1):
            try:
                res = self.client.create_run_from_pipeline_package(
                    self.pipeline_file,
                    arguments=args,
                    run_name=req.run_id,
                    experiment_name=self.cfg.kfp.experiment,
                    pipeline_root=cluster_pipeline_root(self.cfg),
                )
                return RunUpdate("submitted", external_id=res.run_id)
            except Exception as exc:
                if attempt == self.attempts or not _transient(exc):
                    raise SubmitError(f"kfp {self.cfg.kfp.host}: cannot create run {req.run_id} "
                                      f"({_brief(exc)}) after {attempt} attempt(s)") from exc
                log.warning("kfp %s: creating run %s: %s; retrying", self.cfg.kfp.host, req.run_id,
                            _brief(exc))
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
            existing = self.lookup(req)  # the server may have created it before the answer was lost
            if existing is not None:
                return existing
        raise AssertionError("unreachable")

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        """The KFP run's state, mapped to ledger statuses."""
        if not external_id:
            return None
        try:
            run = self._call(lambda: self.client.get_run(external_id), f"cannot read run {external_id}")
        except SubmitError as exc:
            log.warning("%s", exc)
            return None
        return self._update(run)

    def close(self) -> None:
        """Remove the pipeline compiled by :meth:`from_config` (nothing else to release)."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
