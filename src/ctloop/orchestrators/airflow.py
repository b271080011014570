"""The training pipeline as an Airflow DAG, one task per step (``pip install 'ctloop[airflow]'``).

In a DAG file::

    from ctloop.orchestrators.airflow import build_dag

    dag = build_dag("/opt/ctloop/ctloop.yaml")

A run started by ctloop's ``airflow`` submitter carries ``conf = {"run_id", "trigger", "trigger_json",
"cutoff_date", ...}``; ``register`` records that run id and trigger in the model's lineage. A run started
by hand uses Airflow's run id and the cause ``manual``.
"""

from __future__ import annotations

import json
from typing import Any

from ctloop.orchestrators.common import STEPS, StepRun, run_step


def step_run(config_path: str, conf: dict[str, Any] | None, airflow_run_id: str,
             python: str | None = None) -> StepRun:
    """The :class:`StepRun` a DAG run's ``conf`` describes."""
    conf = conf or {}
    trigger_json = conf.get("trigger_json") or json.dumps(conf.get("trigger") or {"cause": "manual"})
    return StepRun(
        config_path=config_path,
        run_id=str(conf.get("run_id") or airflow_run_id),
        trigger_json=str(trigger_json),
        cutoff_date=str(conf.get("cutoff_date") or ""),
        python=python,
    )


def _task(step: str, config_path: str, python: str | None = None, **context: Any) -> dict[str, Any]:
    dag_run = context["dag_run"]
    return run_step(step, step_run(config_path, dag_run.conf, dag_run.run_id, python))


def build_dag(config_path: str, dag_id: str = "ctloop_training", python: str | None = None,
              **dag_kwargs: Any) -> Any:
    """An Airflow DAG running the pipeline's steps in order (``ingest`` ... ``deploy``).

    Args:
        config_path: The project's ``ctloop.yaml`` as the workers see it.
        dag_id: Must match ``triggers.airflow.dag_id``.
        python: Run the steps with this interpreter (a venv with ctloop), e.g. when Airflow's
            dependencies clash with ctloop's; default: in the worker's own interpreter.
        dag_kwargs: Passed to ``DAG`` (``schedule`` defaults to ``None``: runs come from ctloop).
    """
    try:  # Airflow 3
        from airflow.providers.standard.operators.python import PythonOperator
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG
        from airflow.operators.python import PythonOperator

    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("tags", ["ctloop"])
    dag_kwargs.setdefault("max_active_runs", 1)
    with DAG(dag_id, **dag_kwargs) as dag:
        prev = None
        for step in STEPS:
            t = PythonOperator(
                task_id=step,
                python_callable=_task,
                op_kwargs={"step": step, "config_path": config_path, "python": python},
            )
            if prev is not None:
                prev >> t
            prev = t
    return dag
