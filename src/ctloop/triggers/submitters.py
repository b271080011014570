"""Submitters: turn a fired trigger into a pipeline run, and report how the run ended.

``local`` runs the training pipeline under the KFP local runner in one worker process, one run at a
time; ``kfp`` submits the compiled pipeline to a KFP API server with ``kfp.Client``. Both are
idempotent on the run id (derived from the trigger's idempotency key): submitting the same run twice
(e.g. when recovering after a crash) starts it once. Recovery first asks :meth:`Submitter.lookup`
whether the run already exists on the orchestrator and re-submits only when it does not.
:meth:`Submitter.cancel` stops a run (``ctloop cancel``) and reports how it stands afterwards.
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
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
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

    def cancel(self, req: RunRequest) -> RunUpdate | None:
        """Stop the run; return its status after the request (a final status other than ``canceled``
        means it had already ended), or None when the orchestrator has no such run."""
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


def _worker_update(run_id: str, out: dict[str, Any]) -> RunUpdate:
    """The ledger update for what :func:`_run_in_worker` returned."""
    return RunUpdate(out["status"], external_id=run_id, version=out.get("version"), error=out.get("error"))


@dataclass
class _LocalRun:
    """A run handed to :class:`LocalSubmitter`.

    ``future`` is the submitter's own and resolves to the run's outcome: ``PENDING`` while the run waits
    for the worker (so ``cancel()`` on it succeeds), ``RUNNING`` from the moment it is handed to the worker.
    ``work`` is the executor's future of the worker call; ``canceling`` is set when a cancel stops the
    worker, which then settles the outcome itself."""

    req: RunRequest
    future: Future[RunUpdate] = field(default_factory=Future)
    work: Future[dict[str, Any]] | None = None
    canceling: bool = False


class LocalSubmitter:
    """Runs the pipeline with the KFP local runner in a worker process, one run at a time.

    The worker process leads its own process group, so every pipeline step it starts can be stopped
    with it (:meth:`cancel`, :meth:`close`). Runs submitted while one is in the worker wait here, in
    order, and only one run is ever handed to the executor.
    """

    name = "local"

    def __init__(self, cfg: ProjectConfig, on_outcome: OutcomeCallback) -> None:
        self.cfg = cfg
        self.on_outcome = on_outcome
        self._pool: ProcessPoolExecutor | None = None
        self._runs: dict[str, _LocalRun] = {}
        self._waiting: deque[str] = deque()
        self._current: str | None = None  # the run in the worker
        self._closing = False
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # the worker leads its own process group, so the pipeline steps it starts can be stopped too
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=os.setpgrp)
        return self._pool

    def submit(self, req: RunRequest) -> RunUpdate:
        """Start the run on the worker, or queue it behind the run there (a second submit of the same run
        id reports the first)."""
        with self._lock:
            known = self._known(req.run_id)
            if known is not None:
                return known
            run = _LocalRun(req)
            run.future.add_done_callback(lambda f: self._report(req, f))
            self._runs[req.run_id] = run
            if self._current is None:
                run.future.set_running_or_notify_cancel()
                try:
                    self._hand_over(run)
                except RuntimeError as exc:
                    del self._runs[req.run_id]
                    raise SubmitError(f"local submitter: cannot start run {req.run_id} ({exc})") from exc
            else:
                self._waiting.append(req.run_id)
        return RunUpdate("submitted", external_id=req.run_id)

    def _hand_over(self, run: _LocalRun) -> None:
        """Give the run to the worker; the caller holds the lock and has set its future running."""
        run.work = self._executor().submit(
            _run_in_worker, self.cfg.to_json(), json.dumps(run.req.trigger), run.req.run_id
        )
        self._current = run.req.run_id
        run.work.add_done_callback(lambda w: self._work_done(run))

    def _start_next(self) -> None:
        """Hand the next waiting run (skipping canceled ones) to the worker; the caller holds the lock."""
        while self._current is None and self._waiting and not self._closing:
            run = self._runs[self._waiting.popleft()]
            if not run.future.set_running_or_notify_cancel():
                continue  # canceled while it waited
            try:
                self._hand_over(run)
            except RuntimeError as exc:
                run.future.set_result(RunUpdate("failed", external_id=run.req.run_id,
                                                error=f"local submitter: cannot start the run ({exc})"))

    def _work_done(self, run: _LocalRun) -> None:
        """The worker call ended (executor thread): settle the run unless a cancel is settling it."""
        with self._lock:
            if run.canceling:
                return
            self._current = None
        run.future.set_result(_work_outcome(run))
        with self._lock:
            self._start_next()

    def _report(self, req: RunRequest, fut: Future[RunUpdate]) -> None:
        """Pass a settled run's outcome to the callback (not while closing: see :meth:`close`)."""
        if self._closing:
            return
        if fut.cancelled():
            update = RunUpdate("canceled", external_id=req.run_id, error="canceled before it started")
        else:
            update = fut.result()
        self.on_outcome(req, update)

    def _known(self, run_id: str) -> RunUpdate | None:
        """A run handed to this submitter (its outcome once settled) or one that registered a version;
        the caller holds the lock."""
        run = self._runs.get(run_id)
        if run is None:
            return self._finished(run_id)
        if run.future.cancelled():
            return RunUpdate("canceled", external_id=run_id)
        return run.future.result() if run.future.done() else RunUpdate("submitted", external_id=run_id)

    def _finished(self, run_id: str) -> RunUpdate | None:
        """A run that already registered a version (e.g. before a restart)."""
        from ctloop.registry import Registry

        reg = Registry(self.cfg.registry.uri, self.cfg.name, self.cfg.registry.single_writer)
        for v in reversed(reg.versions()):
            if reg.get(v).metadata.get("run_id") == run_id:
                return RunUpdate("succeeded", external_id=run_id, version=v)
        return None

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """Whether the run exists: handed to this submitter, registered a version, or left its run log (it
        started before a restart and died with the previous watcher: ``interrupted``)."""
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
            if req.run_id in self._runs:
                return None
        done = self._finished(req.run_id)
        return done or RunUpdate(
            "interrupted",
            external_id=req.run_id,
            error="the watcher restarted while this local run was in progress",
        )

    def cancel(self, req: RunRequest, timeout: float = 10.0) -> RunUpdate | None:
        """Cancel the run and return its outcome, which the callback has also received.

        A waiting run is cancelled through its future (``canceled``, it never started). The run in the
        worker is stopped with every process of the worker's group (SIGTERM, SIGKILL after ``timeout``
        seconds); once the group is gone nothing of the run can still write, and its outcome is settled
        from what is on record: the worker's own answer if it came first (the run finished just before
        the cancel), else ``succeeded`` if the run registered a version, else ``canceled``. Later runs get
        a new worker. A run that already ended reports its outcome unchanged; a run unknown here reports
        what the registry knows (``succeeded``) or None.

        Raises:
            SubmitError: The run did not settle in time.
        """
        with self._lock:
            run = self._runs.get(req.run_id)
        if run is None:
            return self._finished(req.run_id)
        if run.future.cancel():  # still waiting for the worker
            return RunUpdate("canceled", external_id=req.run_id, error="canceled before it started")
        with self._lock:
            stop = (not run.canceling and run.work is not None and not run.work.done()
                    and self._current == req.run_id)
            pool = None
            if stop:
                run.canceling = True
                pool, self._pool = self._pool, None  # later runs get a new worker
        if stop:
            if pool is not None:  # None only after close()
                _stop_pool(pool, timeout)
            self._settle_canceled(run, timeout)
        try:
            return run.future.result(timeout=timeout + 30)
        except TimeoutError as exc:  # a concurrent cancel is still stopping it, and stuck
            raise SubmitError(f"local submitter: run {req.run_id} did not stop within {timeout + 30:g} s") from exc

    def _settle_canceled(self, run: _LocalRun, timeout: float) -> None:
        """Settle a run whose worker was stopped: called once the worker's process group is gone."""
        assert run.work is not None
        update = stopped_run_outcome(run.req.run_id, run.work, self._finished, timeout)
        with self._lock:
            self._current = None
        run.future.set_result(update)
        with self._lock:
            self._start_next()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker and every process it started: waiting runs are dropped, a running pipeline is
        terminated (SIGTERM to the worker's process group, SIGKILL after ``timeout`` seconds); the ledger
        row stays ``submitted`` and is marked interrupted when the watcher starts again."""
        with self._lock:
            self._closing = True
            pool, self._pool = self._pool, None
            waiting = [self._runs[r] for r in self._waiting]
            self._waiting.clear()
        for run in waiting:
            run.future.cancel()
        if pool is not None:
            _stop_pool(pool, timeout)


def stopped_run_outcome(run_id: str, work: Future[dict[str, Any]],
                        registered: Callable[[str], RunUpdate | None], timeout: float = 10.0) -> RunUpdate:
    """The outcome of a local run whose worker was stopped by a cancel, decided once nothing of the run
    can still write: the worker's own answer when it came before the stop (the run had just finished);
    else ``succeeded`` when the run registered a version (``registered(run_id)``: it got that far before
    it was stopped); else ``canceled``."""
    try:
        return _worker_update(run_id, work.result(timeout=timeout))
    except Exception:  # stopped before it answered (BrokenProcessPool), or no answer in time
        return registered(run_id) or RunUpdate(
            "canceled", external_id=run_id,
            error="canceled while running: the worker and its pipeline steps were stopped")


def _work_outcome(run: _LocalRun) -> RunUpdate:
    """The outcome of a worker call that ended on its own."""
    assert run.work is not None
    try:
        return _worker_update(run.req.run_id, run.work.result())
    except Exception as exc:  # the worker died or raised: record it, never lose the trigger
        return RunUpdate("failed", external_id=run.req.run_id, error=f"{type(exc).__name__}: {exc}")


def _stop_pool(pool: ProcessPoolExecutor, timeout: float) -> None:
    """Stop a pool's worker and its process group: SIGTERM, SIGKILL after ``timeout`` seconds, then wait
    (bounded) until no live process of the group is left."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # the executor keeps no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(deadline - time.monotonic(), 0.0))
        _signal_group(proc.pid, signal.SIGKILL)  # whatever of the group is left (no-op when gone)
    gone_by = time.monotonic() + timeout
    for proc in procs:
        while proc.pid is not None and group_alive(proc.pid) and time.monotonic() < gone_by:
            time.sleep(0.02)


def _signal_group(pid: int | None, sig: int) -> None:
    """Signal the process group led by ``pid`` (ignored when it is gone)."""
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid`` (``/proc`` on Linux; elsewhere
    signal 0 to the group, which also counts zombies)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it exited while we looked
        state, _ppid, pgrp = text[text.rindex(")") + 2:].split()[:3]
        if state not in ("Z", "X") and int(pgrp) == pgid:
            return True
    return False


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

    def cancel(self, req: RunRequest) -> RunUpdate | None:
        """Terminate the KFP run named ``req.run_id`` (``POST /apis/v2beta1/runs/{id}:terminate``) unless it
        already ended; return its state read back afterwards (``CANCELING`` maps to ``running``), or None
        when KFP has no such run."""
        found = self.find(req.run_id)
        if found is None:
            return None
        run_id = str(found.run_id)
        now = self._update(self._call(lambda: self.client.get_run(run_id), f"cannot read run {run_id}"))
        if now.run_status in FINAL_STATUSES:
            return now
        self._call(lambda: self.client.terminate_run(run_id), f"cannot terminate run {run_id}")
        return self._update(self._call(lambda: self.client.get_run(run_id), f"cannot read run {run_id}"))

    def close(self) -> None:
        """Remove the pipeline compiled by :meth:`from_config` (nothing else to release)."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
