"""Submitters: turn a fired trigger into a pipeline run, and report how the run ended.

``local`` runs the training pipeline under the KFP local runner in one worker process, one run at a
time; ``kfp`` submits the compiled pipeline to a KFP API server with ``kfp.Client``. Both are
idempotent on the run id (derived from the trigger's idempotency key): submitting the same run twice
(e.g. when recovering after a crash) starts it once.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ctloop.config import ProjectConfig
from ctloop.errors import SubmitError

FINAL_STATUSES = (
    "succeeded",
    "rejected",
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
    return {"status": result.status, "version": result.version, "error": (result.error or {}).get("message")}


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
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def submit(self, req: RunRequest) -> RunUpdate:
        """Queue the run on the single worker (a second submit of the same run id is a no-op)."""
        with self._lock:
            if req.run_id in self._futures:
                return RunUpdate("submitted", external_id=req.run_id)
            done = self._finished(req.run_id)
            if done is not None:
                return done
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

    def _finished(self, run_id: str) -> RunUpdate | None:
        """A run that already registered a version (e.g. before a restart)."""
        from ctloop.registry import Registry

        reg = Registry(self.cfg.registry.uri, self.cfg.name)
        for v in reversed(reg.versions()):
            if reg.get(v).metadata.get("run_id") == run_id:
                return RunUpdate("succeeded", external_id=run_id, version=v)
        return None

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        with self._lock:
            if req.run_id in self._futures:
                return RunUpdate("submitted", external_id=req.run_id)
        return self._finished(req.run_id)

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

    def close(self) -> None:
        """Stop the worker (waits for a running pipeline to finish)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


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


class KfpSubmitter:
    """Submits the compiled pipeline to KFP (``kfp.Client``), with a deterministic run name."""

    name = "kfp"

    def __init__(self, cfg: ProjectConfig, pipeline_file: str | Path, client: Any = None) -> None:
        if client is None and not cfg.kfp.host:
            raise SubmitError(
                "triggers.submitter is 'kfp' but kfp.host is not set; set kfp.host to the "
                "KFP API endpoint or use triggers.submitter: local"
            )
        self.cfg = cfg
        self.pipeline_file = str(pipeline_file)
        if not Path(self.pipeline_file).is_file():
            raise SubmitError(f"{self.pipeline_file}: compiled pipeline not found (run `ctloop compile`)")
        self._client = client

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
        try:
            resp = self.client.list_runs(page_size=5, filter=flt)
        except Exception as exc:
            raise SubmitError(f"kfp {self.cfg.kfp.host}: cannot list runs ({exc})") from exc
        runs = [r for r in (resp.runs or []) if r.display_name == run_id]
        return runs[0] if runs else None

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        existing = self.find(req.run_id)
        if existing is None:
            return None
        return RunUpdate(KFP_STATES.get(str(existing.state), "submitted"), external_id=existing.run_id)

    def submit(self, req: RunRequest) -> RunUpdate:
        """Create the run unless one with the same name exists (then report that one)."""
        existing = self.find(req.run_id)
        if existing is not None:
            return RunUpdate(KFP_STATES.get(str(existing.state), "submitted"), external_id=existing.run_id)
        args = {
            "config_json": self.cfg.to_json(),
            "trigger_json": json.dumps(req.trigger, sort_keys=True),
            "run_id": req.run_id,
            "cutoff_date": "",
        }
        try:
            res = self.client.create_run_from_pipeline_package(
                self.pipeline_file,
                arguments=args,
                run_name=req.run_id,
                experiment_name=self.cfg.kfp.experiment,
            )
        except Exception as exc:
            raise SubmitError(f"kfp {self.cfg.kfp.host}: cannot create run {req.run_id} ({exc})") from exc
        return RunUpdate("submitted", external_id=res.run_id)

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        """The KFP run's state, mapped to ledger statuses."""
        if not external_id:
            return None
        try:
            run = self.client.get_run(external_id)
        except Exception:
            return None
        status = KFP_STATES.get(str(run.state), "submitted")
        err = None
        if status == "failed" and getattr(run, "error", None) is not None:
            err = str(getattr(run.error, "message", run.error))
        return RunUpdate(status, external_id=external_id, error=err)

    def close(self) -> None:
        """Nothing to release."""
