"""The training pipeline as a Dagster job, one op per step (``pip install 'ctloop[dagster]'``).

In the code location (its name is ``triggers.dagster.repository_location``)::

    import dagster as dg
    from ctloop.orchestrators.dagster import CtloopResource, training_job

    defs = dg.Definitions(jobs=[training_job],
                          resources={"ctloop": CtloopResource(config_path="/opt/ctloop/ctloop.yaml")})

ctloop's ``dagster`` submitter puts ``run_id``, ``trigger_json`` and ``cutoff_date`` in op ``ingest``'s
config and tags the run ``ctloop/run-id``; ``register`` records the run id and trigger in the model's
lineage.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ctloop.orchestrators.common import STEPS, StepRun, run_step


class CtloopResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Where the project config is, and (optionally) the interpreter that runs the steps."""

    config_path: str
    python: str | None = None


@dg.op(
    name="ingest",
    config_schema={
        "run_id": dg.Field(str, default_value=""),
        "trigger_json": dg.Field(str, default_value='{"cause": "manual"}'),
        "cutoff_date": dg.Field(str, default_value=""),
    },
    required_resource_keys={"ctloop"},
)
def ingest(context) -> dict[str, Any]:  # type: ignore[no-untyped-def]  # dagster: context unannotated
    """Read the training window; hands the run (id, trigger) to the next op."""
    res: CtloopResource = context.resources.ctloop
    c = context.op_config
    run = StepRun(res.config_path, c["run_id"] or context.run_id, c["trigger_json"], c["cutoff_date"],
                  res.python).__dict__
    context.log.info(f"ingest: {run_step('ingest', StepRun(**run))}")
    return run


def _make_op(step: str) -> Any:
    @dg.op(name=step, ins={"run": dg.In(dict)}, required_resource_keys={"ctloop"})
    def _op(context, run: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        context.log.info(f"{step}: {run_step(step, StepRun(**run))}")
        return run

    return _op


_OPS = {step: _make_op(step) for step in STEPS[1:]}


@dg.job(name="ctloop_training", tags={"ctloop": "training"})
def training_job() -> None:
    """ingest → validate → split → features → train → evaluate → register → deploy."""
    run = ingest()
    for step in STEPS[1:]:
        run = _OPS[step](run)
