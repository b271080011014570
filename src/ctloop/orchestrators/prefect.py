"""The training pipeline as a Prefect 3 flow, one task per step (``pip install 'ctloop[prefect]'``).

Deploy it with ``config_path`` as a default parameter, named as ``triggers.prefect.deployment`` says
(``ctloop-training/<deployment>``)::

    from ctloop.orchestrators.prefect import training_flow

    training_flow.serve(name="ctloop", parameters={"config_path": "/opt/ctloop/ctloop.yaml"})

ctloop's ``prefect`` submitter passes ``run_id``, ``trigger``, ``trigger_json``, ``cutoff_date`` and
``window_days``; ``register`` records the run id and trigger in the model's lineage.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from ctloop.orchestrators.common import STEPS, StepRun, run_step


@task(name="ctloop-step", task_run_name="{name}")
def step_task(name: str, run: dict[str, Any]) -> dict[str, Any]:
    """Run one pipeline step."""
    return run_step(name, StepRun(**run))


@flow(name="ctloop-training")
def training_flow(
    config_path: str,
    run_id: str = "",
    trigger: dict[str, Any] | None = None,
    trigger_json: str = "",
    cutoff_date: str = "",
    window_days: int | None = None,
    python: str | None = None,
) -> dict[str, Any]:
    """ingest → validate → split → features → train → evaluate → register → deploy; returns each step's summary.

    Args:
        config_path: The project's ``ctloop.yaml`` as the workers see it.
        run_id: ctloop's run id (default: the Prefect flow run's name).
        trigger: The trigger (cause, reason, idempotency key, episode).
        trigger_json: The same as JSON (wins over ``trigger``).
        cutoff_date: Last day of the training window (empty: the newest day).
        window_days: The data window the trigger asked for (informational; the config decides).
        python: Run the steps with this interpreter (a venv with ctloop).
    """
    run = StepRun(
        config_path=config_path,
        run_id=run_id or str(flow_run.get_name() or flow_run.get_id()),
        trigger_json=trigger_json or json.dumps(trigger or {"cause": "manual"}),
        cutoff_date=cutoff_date,
        python=python,
    ).__dict__
    return {name: step_task(name, run) for name in STEPS}
