"""``triggers.submitter: airflow``: a DAG run per fired trigger, through Airflow's stable REST API.

``api_version: v1`` talks to Airflow 2.x (``/api/v1``, basic auth or a bearer token); ``v2`` to
Airflow 3.x (``/api/v2``, a bearer token, or a JWT fetched from ``/auth/token`` with the user name and
password). The ``dag_run_id`` is ctloop's deterministic run id, so a second submit finds the first run.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import httpx

from ctloop.config import ProjectConfig
from ctloop.errors import SubmitError
from ctloop.triggers.orchestrators.common import Api, ApiSubmitter, Credentials, run_parameters
from ctloop.triggers.submitters import RunRequest, RunUpdate

AIRFLOW_STATES = {
    "queued": "submitted",
    "running": "running",
    "success": "succeeded",
    "failed": "failed",
}


class AirflowSubmitter(ApiSubmitter):
    """Creates DAG runs of ``triggers.airflow.dag_id`` (``dag_run_id`` = run id, ``conf`` = trigger)."""

    name = "airflow"

    def __init__(self, cfg: ProjectConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.acfg = cfg.triggers.airflow
        self._transport = transport
        self._jwt: str | None = None
        self._jwt_lock = threading.Lock()
        super().__init__(cfg, self.acfg, transport, api_path=f"/api/{self.acfg.api_version}")

    def _path(self, run_id: str | None = None) -> str:
        p = f"/dags/{quote(self.acfg.dag_id, safe='')}/dagRuns"
        return p if run_id is None else f"{p}/{quote(run_id, safe='')}"

    def _uses_login(self) -> bool:
        return self.acfg.api_version == "v2" and not (self.acfg.token_file or self.acfg.token_env)

    def _creds(self) -> Credentials:
        """A bearer token; or basic auth (v1); or, on Airflow 3, a JWT from ``/auth/token``."""
        token, basic = super()._creds()
        if token or basic is None or not self._uses_login():
            return token, basic
        with self._jwt_lock:
            if self._jwt is None:
                auth = Api("airflow", self.root, self.acfg.timeout_seconds, transport=self._transport)
                try:
                    doc = auth.json("POST", "/auth/token", json={"username": basic[0], "password": basic[1]})
                finally:
                    auth.close()
                jwt = doc.get("access_token") if isinstance(doc, dict) else None
                if not jwt:
                    raise SubmitError(f"airflow {self.root}/auth/token: no access_token in the answer")
                self._jwt = str(jwt)
            return self._jwt, None

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.api.request(method, path, **kw)
        except SubmitError as exc:
            if not self._uses_login() or self._jwt is None or "authentication failed" not in str(exc):
                raise
            self._jwt = None  # the JWT expired: log in again, once
            return self.api.request(method, path, **kw)

    def _update(self, doc: dict[str, Any]) -> RunUpdate:
        state = str(doc.get("state") or "queued").lower()
        status = AIRFLOW_STATES.get(state, "submitted")
        err = f"airflow DAG run {doc.get('dag_run_id')} ended {state}" if status == "failed" else None
        return RunUpdate(status, external_id=str(doc.get("dag_run_id")), error=err)

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        resp = self._call("GET", self._path(req.run_id), ok=(404,))
        if resp.status_code == 404:
            return None
        return self._update(resp.json())

    def _create(self, req: RunRequest) -> RunUpdate:
        """Create the DAG run (``dag_run_id`` = run id)."""
        body: dict[str, Any] = {"dag_run_id": req.run_id, "conf": run_parameters(self.cfg, req)}
        if self.acfg.api_version == "v2":
            body["logical_date"] = None
        resp = self._call("POST", self._path(), json=body, ok=(409,))
        if resp.status_code == 409:  # created meanwhile by someone else: report that one
            found = self.lookup(req)
            if found is None:
                raise SubmitError(f"airflow: DAG run {req.run_id} conflicts but cannot be read back")
            return found
        return self._update(resp.json())

    def _stop(self, external_id: str) -> RunUpdate:
        """Mark the DAG run failed, Airflow's way to stop a run (it has no canceled state): reported as
        ``canceled``, since this failure is the cancel."""
        resp = self._call("PATCH", self._path(external_id), json={"state": "failed"})
        return RunUpdate("canceled", external_id=str(resp.json().get("dag_run_id") or external_id),
                         error="airflow DAG run marked failed to cancel it")
