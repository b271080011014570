"""``triggers.submitter: dagster``: a run of ``triggers.dagster.job`` per fired trigger, launched through
the Dagster webserver's GraphQL API (``launchRun``), tagged ``ctloop/run-id`` with ctloop's run id.
The run config carries the trigger (op ``ingest``'s config, which the ctloop job hands downstream)."""

from __future__ import annotations

from typing import Any

import httpx

from ctloop.config import ProjectConfig
from ctloop.errors import SubmitError
from ctloop.triggers.orchestrators.common import (
    RUN_ID_TAG,
    ApiSubmitter,
    run_parameters,
)
from ctloop.triggers.submitters import RunRequest, RunUpdate

DAGSTER_STATES = {
    "QUEUED": "submitted",
    "NOT_STARTED": "submitted",
    "MANAGED": "submitted",
    "STARTING": "submitted",
    "STARTED": "running",
    "CANCELING": "running",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELED": "canceled",
}

LAUNCH = """
mutation CtloopLaunch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
  }
}"""

FIND = """
query CtloopFind($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 5) {
    __typename
    ... on Runs { results { runId status } }
    ... on PythonError { message }
    ... on InvalidPipelineRunsFilterError { message }
  }
}"""

TERMINATE = """
mutation CtloopTerminate($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on PythonError { message } ... on RunNotFoundError { message } }
}"""


def run_config(cfg: ProjectConfig, req: RunRequest) -> dict[str, Any]:
    """The run config of the ctloop job: op ``ingest`` gets the run id, trigger and data window."""
    p = run_parameters(cfg, req)
    return {"ops": {"ingest": {"config": {k: p[k] for k in ("run_id", "trigger_json", "cutoff_date")}}}}


class DagsterSubmitter(ApiSubmitter):
    """Launches runs of ``triggers.dagster.job`` in ``repository_location`` (GraphQL ``launchRun``)."""

    name = "dagster"

    def __init__(self, cfg: ProjectConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.dcfg = cfg.triggers.dagster
        super().__init__(cfg, self.dcfg, transport, token_header="Dagster-Cloud-Api-Token")

    def _graphql(self, query: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
        doc = self.api.json("POST", "/graphql", json={"query": query, "variables": variables})
        if not isinstance(doc, dict) or doc.get("errors") or not (doc.get("data") or {}).get(field):
            errors = doc.get("errors") if isinstance(doc, dict) else doc
            raise SubmitError(f"dagster {self.api.base_url}/graphql: {field} failed ({errors})")
        out: dict[str, Any] = doc["data"][field]
        return out

    @staticmethod
    def _update(run: dict[str, Any]) -> RunUpdate:
        status = DAGSTER_STATES.get(str(run.get("status")), "submitted")
        err = f"dagster run {run['runId']} ended {run.get('status')}" if status == "failed" else None
        return RunUpdate(status, external_id=str(run["runId"]), error=err)

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        found = self._graphql(FIND, {"filter": {"tags": [{"key": RUN_ID_TAG, "value": req.run_id}]}},
                              "runsOrError")
        if found.get("__typename") != "Runs":
            raise SubmitError(f"dagster: cannot list runs ({found.get('message')})")
        results = found.get("results") or []
        return self._update(results[0]) if results else None

    def _create(self, req: RunRequest) -> RunUpdate:
        """Launch the run, tagged with the run id."""
        params = {
            "selector": {
                "repositoryLocationName": self.dcfg.repository_location,
                "repositoryName": self.dcfg.repository_name,
                "jobName": self.dcfg.job,
            },
            "runConfigData": run_config(self.cfg, req),
            "executionMetadata": {
                "tags": [
                    {"key": RUN_ID_TAG, "value": req.run_id},
                    {"key": "ctloop/trigger-id", "value": str(req.trigger_id)},
                    {"key": "ctloop/cause", "value": str(req.trigger.get("cause", ""))},
                ]
            },
        }
        res = self._graphql(LAUNCH, {"params": params}, "launchRun")
        if res.get("__typename") != "LaunchRunSuccess":
            detail = res.get("message") or res.get("errors") or res
            raise SubmitError(
                f"dagster: cannot launch job {self.dcfg.job!r} in location "
                f"{self.dcfg.repository_location!r} ({res.get('__typename')}: {detail})"
            )
        return self._update(res["run"])

    def _stop(self, external_id: str) -> None:
        """Terminate the run (``cancel``)."""
        self._graphql(TERMINATE, {"runId": external_id}, "terminateRun")
