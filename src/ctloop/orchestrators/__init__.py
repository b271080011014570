"""The training pipeline's steps on other orchestrators: an Airflow DAG factory, a Prefect flow and a
Dagster job. Each runs :mod:`ctloop.orchestrators.common`'s steps (the same :mod:`ctloop.steps`
functions the KFP components call) and passes the run id and trigger into ``register``.

Import the submodule for your orchestrator (``ctloop.orchestrators.airflow``, ``.prefect``,
``.dagster``); each needs its extra (``pip install 'ctloop[airflow]'`` ...), the core install does not.
"""
