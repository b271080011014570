"""The configuration reference (``docs/config.md``), generated from the pydantic models so it never
drifts from what ``ctloop.yaml`` accepts."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ctloop.config import ProjectConfig

HEADER = """# Configuration reference (`ctloop.yaml`)

Generated from the pydantic models in `src/ctloop/config.py` by
`ctloop config-reference --out docs/config.md`; a test fails when it is stale. Relative paths resolve
against the folder of the config file. Unknown keys are errors.
"""


# Descriptions of keys whose pydantic field has none (a field's own description wins).
FIELD_DOCS: dict[str, str] = {
    'OrchestratorAuth.token_file': 'file holding a bearer token (a mounted Secret; re-read on every request)',
    'OrchestratorAuth.token_env': 'environment variable holding a bearer token',
    'OrchestratorAuth.username': 'user name for basic auth / a login (with a password file or variable)',
    'OrchestratorAuth.password_file': 'file holding the password',
    'OrchestratorAuth.password_env': 'environment variable holding the password',
    'OrchestratorAuth.timeout_seconds': 'HTTP timeout of one call to the orchestrator',
    'AirflowTriggerConfig.dag_id': "the DAG a fired trigger runs (its dag_run_id is ctloop's run id)",
    'DagsterTriggerConfig.job': 'the Dagster job a fired trigger launches',
    'DagsterTriggerConfig.repository_name': 'the repository inside the code location',
    'model.trainer': 'which trainer fits the model: scikit-learn pipeline or the torch MLP',
    'training.cpu_limit': 'train task CPU limit (null: none)',
    'training.memory_limit': 'train task memory limit',
    'training.checkpoint_pvc': 'PVC mounted for checkpoints on the cluster (null: none)',
    'MetricBounds.roc_auc': 'bound on ROC AUC (null: no check)',
    'MetricBounds.accuracy': 'bound on accuracy (null: no check)',
    'MetricBounds.log_loss': 'bound on log loss (null: no check)',
    'gate.beat_champion.metric': 'metric the challenger is compared on',
    'gate.beat_champion.holdout_delta': 'challenger minus champion on the holdout must be at least this (null: skip)',
    'gate.beat_champion.recent_delta': 'challenger minus champion on the recent slice must be >= this (null: skip)',
    'serving.scale_metric': 'Knative/KServe autoscaling metric',
    'drift.slide_rows': 'rows between window evaluations (null: tumbling windows)',
    'drift.method': 'drift statistic: PSI or Jensen-Shannon distance',
    'drift.thresholds': 'per-feature thresholds calibrated on the reference by bootstrap, or the fixed values',
    'triggers.schedule_by': 'who fires the schedule: the watcher, or a rendered CronJob posting to /trigger',
    'triggers.volume_rows': "new labelled rows past the champion's data that fire a volume trigger (null: off)",
    'triggers.submitter': 'where fired runs go',
    'triggers.cluster_endpoint': "the watcher's URL inside the cluster (null: derived from the Service)",
    'monitoring.performance.metric': 'realized metric the performance alert watches',
    'kfp.host': 'KFP API server URL (null: in-cluster default)',
    'deploy.mode': 'how a promoted model reaches serving',
    'deploy.kubernetes.context': 'kubeconfig context (null: current)',
    'Limit.warn': 'at or above this the check warns (null: never)',
    'Limit.error': 'at or above this the check is an error and the run stops (null: never)',
    'name': 'model name (a DNS label): names the registry entry, the InferenceService and every metric',
    'data.target': 'label column (0/1)',
    'data.window_days': 'days of data in a training window (up to the cutoff)',
    'data.recent_days': "newest days that form the gate's recent evaluation slice",
    'data.test_fraction': 'share of the window held out for evaluation (stratified)',
    'data.allow_missing_days': 'accept gaps in the daily partitions instead of rejecting the data',
    'data.seed': 'seed of the train/test split',
    'schema.path': 'the reviewed schema file (YAML); `ctloop schema infer` drafts one',
    'model.params': "trainer parameters (sklearn: estimator and its parameters; torch: the MLP's)",
    'model.seed': 'training seed',
    'training.accelerator_type': 'extended resource name of the accelerator the train task requests',
    'training.accelerator_limit': 'accelerators per train task (0: CPU only)',
    'training.cpu_request': 'train task CPU request',
    'training.memory_request': 'train task memory request',
    'training.node_selector': 'node labels the train task is pinned to (the GPU spot pool)',
    'training.tolerations': 'taints of that pool the train task tolerates (kind-config.yaml matches them)',
    'training.checkpoint_mount_path': 'where the checkpoint PVC is mounted in the train task',
    'training.checkpoint_every_steps': 'optimizer steps between checkpoints (torch trainer)',
    'training.checkpoint_keep': 'checkpoints kept per run',
    'training.timeout_seconds': 'train task timeout',
    'training.retries': 'retries of the train task on the cluster (preemption); deterministic errors are not retried',
    'training.backoff_seconds': 'first retry backoff',
    'training.backoff_factor': 'backoff multiplier per retry',
    'training.backoff_max_seconds': 'largest backoff',
    'gate.min_metric': 'holdout metrics the challenger must reach (lower bounds)',
    'gate.max_metric': 'holdout metrics the challenger must stay under (upper bounds, e.g. log_loss)',
    'gate.slices': 'per-slice minimums on the holdout',
    'gate.infra': 'the infra check: the packaged model loads and predicts a sample like the model server does',
    'gate.infra.enabled': 'run the infra check',
    'gate.infra.sample_rows': 'rows the infra check predicts',
    'registry.uri': 'model registry location (folder or fsspec URI)',
    'serving.host': 'model server bind address',
    'serving.port': 'model server HTTP port',
    'serving.poll_seconds': 'how often the server checks the champion alias for a hot-swap',
    'serving.max_body_bytes': 'largest request body (413 beyond)',
    'serving.min_replicas': 'InferenceService minReplicas (0: scale to zero)',
    'serving.max_replicas': 'InferenceService maxReplicas',
    'serving.canary_traffic_percent': 'traffic share of a new version (100: no canary)',
    'serving.enable_grpc': "also serve KServe's gRPC protocol",
    'serving.grpc_port': 'gRPC port',
    'serving.request_logging': 'log every request',
    'serving.threshold': 'P(class 1) at or above which the predicted label is 1',
    'serving.logger': 'payload logger: request/response events to the watcher',
    'serving.namespace': 'namespace of the InferenceService',
    'serving.component': 'KServe component name',
    'serving.scale_target': 'autoscaling target per replica',
    'serving.watcher_url': 'events URL of the watcher on the cluster (payload logger sink)',
    'serving.resources': 'model server container resources',
    'serving.node_selector': 'node labels the model server runs on',
    'serving.config_map': 'ConfigMap that carries ctloop.yaml on the cluster',
    'serving.logger.batch_size': 'events taken off the queue per send',
    'serving.logger.flush_seconds': 'longest wait before queued events are sent',
    'serving.logger.queue_size': 'events queued before new ones are dropped (and counted)',
    'serving.logger.timeout_seconds': 'HTTP timeout of one send',
    'serving.logger.source': 'CloudEvents `source` of the events',
    'serving.resources.cpu_request': 'CPU request',
    'serving.resources.memory_request': 'memory request',
    'serving.resources.cpu_limit': 'CPU limit',
    'serving.resources.memory_limit': 'memory limit',
    'drift.window_rows': 'rows per drift window',
    'drift.min_rows': 'rows a window needs before it is evaluated',
    'drift.consecutive_windows': 'drifted windows in a row before a feature counts as drifted',
    'drift.psi_threshold': 'PSI above which a feature drifts (`thresholds: fixed`)',
    'drift.js_threshold': 'Jensen-Shannon distance above which a feature drifts (`thresholds: fixed`)',
    'drift.feature_thresholds': 'per-feature threshold overrides',
    'drift.false_alarm_rate': 'per-window false alarm rate the calibrated thresholds are set for',
    'drift.min_effect': 'smallest score that counts as drift whatever the calibration says',
    'drift.bootstrap_samples': 'bootstrap samples of the threshold calibration',
    'drift.seed': 'seed of the calibration',
    'drift.drift_share_alert': 'share of drifted features at or above which the drift alert fires',
    'drift.alert_for': 'how long the drift share must stay high before the alert fires',
    'drift.host': 'watcher bind address',
    'drift.port': 'watcher port',
    'drift.poll_seconds': 'how often the watcher checks the champion alias',
    'drift.max_body_bytes': 'largest events body (413 beyond)',
    'drift.max_pending_joins': 'requests waiting for their response event before the oldest are evicted',
    'triggers.cooldown_minutes': 'after a fired run, further triggers are suppressed this long',
    'triggers.daily_budget': 'runs fired per model per UTC day at most',
    'triggers.volume_check_seconds': 'how often new-data volume is counted',
    'triggers.ledger': 'the trigger ledger (SQLite)',
    'triggers.token_file': 'bearer token of `/alerts`, `/trigger` and `/labels`',
    'triggers.token_secret': 'Secret that holds the token on the cluster',
    'triggers.max_body_bytes': 'largest webhook body (413 beyond)',
    'triggers.evaluation_interval': 'rule evaluation interval (PrometheusRule group and embedded evaluator)',
    'triggers.group_wait': 'Alertmanager group_wait of the route to the watcher',
    'triggers.group_interval': 'Alertmanager group_interval',
    'triggers.repeat_interval': 'Alertmanager repeat_interval',
    'triggers.endpoint': "the watcher's base URL as seen from this machine (Alertmanager, `ctloop status`)",
    'monitoring.performance.alert_for': 'how long the performance condition must hold before the alert fires',
    'kfp.namespace': 'KFP namespace',
    'kfp.experiment': 'KFP experiment runs go to',
    'kfp.pipeline_root': 'pipeline root (artifacts and local runs)',
    'kfp.images.runtime': 'CPU runtime image of the components (tagged)',
    'kfp.images.trainer_gpu': 'GPU trainer image (tagged)',
    'deploy.namespace': 'project namespace on the cluster',
    'deploy.monitoring_namespace': 'namespace of Prometheus and Alertmanager',
    'deploy.pipeline_service_account': "service account of the pipeline's pods",
    'deploy.node_selector': 'node labels of the watcher',
    'deploy.state_storage': "size of the watcher's state PVC (ledger, prediction store)",
    'deploy.watcher_port': 'watcher container port',
    'deploy.watcher_resources': 'watcher container resources',
    'deploy.gitops': '`deploy.mode: gitops` target',
    'deploy.kubernetes': '`deploy.mode: kubernetes` target',
    'deploy.watcher_resources.cpu_request': 'CPU request',
    'deploy.watcher_resources.memory_request': 'memory request',
    'deploy.watcher_resources.cpu_limit': 'CPU limit',
    'deploy.watcher_resources.memory_limit': 'memory limit',
    'deploy.gitops.branch': 'branch Argo CD syncs from',
    'deploy.gitops.author_name': 'commit author name',
    'deploy.gitops.author_email': 'commit author email',
    'deploy.gitops.push_attempts': 'push attempts on a race',
}


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (list, dict, tuple):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(mode="json") for v in value]
    return f"`{json.dumps(value, default=str)}`"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = field.alias or name
        ann = field.annotation
        sub = next((a for a in (ann, *typing.get_args(ann)) if _is_model(a)), None)
        if sub is not None and typing.get_origin(ann) is not list:
            nested.append((f"{prefix}{key}", sub))
        by_class = next((FIELD_DOCS[f"{c.__name__}.{key}"] for c in model.__mro__
                         if f"{c.__name__}.{key}" in FIELD_DOCS), None)
        doc = field.description or FIELD_DOCS.get(f"{prefix}{key}") or by_class or (
            (sub.__doc__ or "").strip().split("\n")[0] if sub is not None else "")
        doc = doc.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{key}` | {_type_name(ann)} | {_default(field)} | {doc} |")
    title = prefix.rstrip(".") or "top level"
    out += [f"## `{title}`", "", (model.__doc__ or "").strip().split("\n")[0], "",
            "| key | type | default | description |", "|---|---|---|---|", *rows, ""]
    for key, sub in nested:
        _section(sub, f"{key}.", out)


def config_reference() -> str:
    """The Markdown reference of every key of ``ctloop.yaml``: type, default and description."""
    out = [HEADER]
    _section(ProjectConfig, "", out)
    return "\n".join(out).rstrip() + "\n"
