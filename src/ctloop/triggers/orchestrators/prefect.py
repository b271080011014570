"""``triggers.submitter: prefect``: a flow run of a Prefect 3 deployment per fired trigger.

The flow run is created with ``POST /deployments/{id}/create_flow_run``, named after ctloop's run id and
carrying the trigger's idempotency key, so Prefect itself returns the first run on a second submit; the
submitter also looks the key up first. Auth: a bearer API key (Prefect Cloud) or basic auth (a
self-hosted server with ``PREFECT_SERVER_API_AUTH_STRING``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from ctloop.config import ProjectConfig
from ctloop.errors import SubmitError
from ctloop.triggers.orchestrators.common import (
    RUN_ID_TAG,
    ApiSubmitter,
    run_parameters,
)
from ctloop.triggers.submitters import RunRequest, RunUpdate

PREFECT_STATES = {
    "SCHEDULED": "submitted",
    "PENDING": "submitted",
    "RUNNING": "running",
    "PAUSED": "running",
    "CANCELLING": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "canceled",
}


def idempotency_key(req: RunRequest) -> str:
    """The trigger's idempotency key (the run id when the trigger carries none)."""
    return str(req.trigger.get("idempotency_key") or req.run_id)


class PrefectSubmitter(ApiSubmitter):
    """Creates flow runs from deployment ``triggers.prefect.deployment`` (``<flow>/<deployment>``)."""

    name = "prefect"

    def __init__(self, cfg: ProjectConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.pcfg = cfg.triggers.prefect
        super().__init__(cfg, self.pcfg, transport)
        self._deployment_id: str | None = None

    def deployment_id(self) -> str:
        """The deployment's id (looked up by name once)."""
        if self._deployment_id is None:
            flow, _, name = self.pcfg.deployment.partition("/")
            resp = self.api.request("GET", f"/deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}",
                                    ok=(404,))
            if resp.status_code == 404:
                raise SubmitError(
                    f"prefect {self.api.base_url}: no deployment {self.pcfg.deployment!r} "
                    "(triggers.prefect.deployment); deploy the ctloop flow first"
                )
            self._deployment_id = str(resp.json()["id"])
        return self._deployment_id

    @staticmethod
    def _update(doc: dict[str, Any]) -> RunUpdate:
        state = doc.get("state") or {}
        kind = str(state.get("type") or "SCHEDULED").upper()
        status = PREFECT_STATES.get(kind, "submitted")
        err = None
        if status == "failed":
            err = f"prefect flow run {doc.get('name')} {kind}: {state.get('message') or ''}".strip()
        return RunUpdate(status, external_id=str(doc["id"]), error=err)

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        body = {
            "flow_runs": {"idempotency_key": {"any_": [idempotency_key(req)]}},
            "deployments": {"id": {"any_": [self.deployment_id()]}},
            "limit": 5,
        }
        runs = self.api.json("POST", "/flow_runs/filter", json=body)
        return self._update(runs[0]) if runs else None

    def _create(self, req: RunRequest) -> RunUpdate:
        """Create the flow run, carrying the trigger's idempotency key."""
        body = {
            "name": req.run_id,
            "parameters": run_parameters(self.cfg, req),
            "idempotency_key": idempotency_key(req),
            "tags": ["ctloop", f"{RUN_ID_TAG}:{req.run_id}"],
        }
        doc = self.api.json("POST", f"/deployments/{self.deployment_id()}/create_flow_run", json=body)
        return self._update(doc)

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        """The flow run's state, mapped to ledger statuses (``None`` while Prefect is unreachable)."""
        try:
            if external_id:
                resp = self.api.request("GET", f"/flow_runs/{quote(external_id, safe='')}", ok=(404,))
                if resp.status_code != 404:
                    return self._update(resp.json())
            return self.lookup(req)
        except SubmitError:
            return None

    def _stop(self, external_id: str) -> None:
        """Ask Prefect to cancel the flow run (``CANCELLING``)."""
        self.api.request("POST", f"/flow_runs/{external_id}/set_state",
                         json={"state": {"type": "CANCELLING"}, "force": True})
