"""Submitters for orchestrators other than KFP: Airflow, Prefect and Dagster, over their HTTP APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctloop.config import ProjectConfig
    from ctloop.triggers.submitters import Submitter

ORCHESTRATORS = ("airflow", "prefect", "dagster")


def orchestrator_submitter(cfg: ProjectConfig) -> Submitter:
    """The submitter ``triggers.submitter`` names (``airflow``, ``prefect`` or ``dagster``).

    Raises:
        ConfigError: When its block lacks the endpoint or names an unreadable credential.
    """
    kind = cfg.triggers.submitter
    if kind == "airflow":
        from ctloop.triggers.orchestrators.airflow import AirflowSubmitter

        return AirflowSubmitter(cfg)
    if kind == "prefect":
        from ctloop.triggers.orchestrators.prefect import PrefectSubmitter

        return PrefectSubmitter(cfg)
    if kind == "dagster":
        from ctloop.triggers.orchestrators.dagster import DagsterSubmitter

        return DagsterSubmitter(cfg)
    raise ValueError(f"triggers.submitter {kind!r} is not an orchestrator submitter")
