"""Project configuration (``ctloop.yaml``) as typed pydantic models.

The configuration is loaded once at an entry point (CLI, component, server main) and passed down.
Relative paths resolve against the folder of the config file. Unknown keys and bad values raise
:class:`~ctloop.errors.ConfigError` naming the field path, e.g.
``gate.min_metric.roc_auc: must be between 0 and 1``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ctloop.errors import ConfigError
from ctloop.yamlsafe import YamlLimitError, load_bounded

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DURATION_RE = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def _unit_interval(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must be >= 0")
    return value


UnitFloat = Annotated[float, AfterValidator(_unit_interval)]
NonNegFloat = Annotated[float, AfterValidator(_non_negative)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


class DataConfig(_Section):
    """Where the data lives and how a training window is cut from it."""

    source: str = Field(description="fsspec URI or path of the partitioned parquet source (date=YYYY-MM-DD/)")
    target: str = "label"
    id_column: str = Field("id", min_length=1, description="row id column: never a feature; joins labels")
    window_days: int = Field(30, ge=1, le=3660)
    recent_days: int = Field(3, ge=1, le=365)
    test_fraction: UnitFloat = 0.25
    allow_missing_days: bool = False
    seed: int = 0


class SchemaConfig(_Section):
    """The reviewed schema file (YAML) the validate step checks each batch against."""

    path: str = "schema.yaml"


class Limit(_Section):
    """A warn / error pair: a value above ``warn`` is a warning, above ``error`` stops the run.

    ``null`` switches that level off.
    """

    warn: NonNegFloat | None = None
    error: NonNegFloat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limit:
        if self.warn is not None and self.error is not None and self.warn > self.error:
            raise ValueError(f"warn {self.warn} is greater than error {self.error}")
        return self


class ValidationConfig(_Section):
    """Data validation thresholds (schema checks and checks against the champion's reference profile).

    Shares are fractions of the batch's rows (0..1); increases are absolute (batch minus reference).
    """

    min_rows: int = Field(100, ge=1, description="fewer rows than this stop the run")
    schema_violation_share: Limit = Field(
        default_factory=lambda: Limit(warn=0.0, error=0.0),
        description="rows outside the schema's range or categorical domain, per column")
    missing_share_increase: Limit = Field(
        default_factory=lambda: Limit(warn=0.02, error=0.10),
        description="missing share of a feature, batch minus champion reference")
    unseen_category_share: Limit = Field(
        default_factory=lambda: Limit(warn=0.01, error=0.05),
        description="share of a categorical feature's values the champion never saw (beyond its OTHER share)")
    out_of_range_share: Limit = Field(
        default_factory=lambda: Limit(warn=0.01, error=0.10),
        description="share of a numeric feature's values outside the champion's [min, max]")
    psi: Limit = Field(
        default_factory=lambda: Limit(warn=0.2, error=None),
        description="population stability index per feature against the champion (drift is a reason "
                    "to retrain, so it only warns by default)")
    duplicate_share_increase: Limit = Field(
        default_factory=lambda: Limit(warn=0.01, error=0.05),
        description="share of duplicated rows, batch minus the champion's reference (skipped with no "
                    "champion yet; duplicate_share_max applies)")
    bins: int = Field(10, ge=2, le=100, description="histogram bins for the report without a champion")
    label_share_change: Limit = Field(
        default_factory=lambda: Limit(warn=0.15, error=0.30),
        description="per day, the largest change of a label class's share against the champion's "
                    "label balance (days with fewer labelled rows than label_day_min_rows are not graded)")
    duplicate_share_max: Limit = Field(
        default_factory=Limit,
        description="share of duplicated rows in the batch, absolute (applies with or without a champion); "
                    "off by default: identical rows are normal in low-cardinality data")
    label_day_min_rows: int = Field(
        50, ge=1, description="labelled rows a day needs before its label share is graded")


class TolerationConfig(_Section):
    """One Kubernetes toleration (matches a node taint)."""

    key: str = Field(min_length=1)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class TrainingConfig(_Section):
    """Where and how the train step runs on a cluster (GPU spot pool, checkpoints).

    The node selector and tolerations must match the ``gpu-spot`` node in ``kind-config.yaml``
    (a test proves it). ``accelerator_limit: 0`` trains on CPU nodes (no selector, no toleration).
    """

    accelerator_type: str = "nvidia.com/gpu"
    accelerator_limit: int = Field(default=1, ge=0, le=16)
    cpu_request: str = "2"
    memory_request: str = "8Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = "16Gi"
    node_selector: dict[str, str] = Field(default_factory=lambda: {"ctloop.io/pool": "gpu-spot"})
    tolerations: list[TolerationConfig] = Field(
        default_factory=lambda: [TolerationConfig(key="ctloop.io/spot", operator="Equal", value="true",
                                                  effect="NoSchedule")])
    checkpoint_pvc: str | None = "ctloop-checkpoints"
    checkpoint_mount_path: str = "/mnt/checkpoints"
    checkpoint_uri: str = Field(default="checkpoints", min_length=1,
                                description="fsspec URI or path for torch checkpoints (on a cluster: a "
                                "folder under checkpoint_mount_path, or s3://...)")
    checkpoint_every_steps: int = Field(default=50, ge=1)
    checkpoint_keep: int = Field(default=3, ge=2)
    timeout_seconds: int = Field(default=6 * 3600, ge=60)
    retries: int = Field(default=3, ge=0, le=20)
    backoff_seconds: int = Field(default=60, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1.0)
    backoff_max_seconds: int = Field(default=3600, ge=0)

    @field_validator("checkpoint_mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path inside the container")
        return value


class ModelConfig(_Section):
    """Which trainer to use and its parameters."""

    trainer: Literal["sklearn", "torch"] = "sklearn"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0

    @field_validator("params")
    @classmethod
    def _params_fit_trainer(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        """Check ``params`` against the chosen trainer when the config loads, before anything runs."""
        trainer = info.data.get("trainer")
        if trainer == "sklearn":
            from ctloop.train import parse_sklearn_params

            parse_sklearn_params(value)  # ConfigError is a ValueError: "model.params.<key>: ..."
        elif trainer == "torch":
            from ctloop.torch_trainer.params import parse_torch_params

            parse_torch_params(value)
        return value


class MetricBounds(_Section):
    """Per-metric bounds; unknown metric names are errors."""

    roc_auc: UnitFloat | None = None
    accuracy: UnitFloat | None = None
    log_loss: NonNegFloat | None = None

    def items(self) -> list[tuple[str, float]]:
        """Return the set bounds as ``(metric, value)`` pairs."""
        return [(k, v) for k, v in self.model_dump().items() if v is not None]


MetricName = Literal["roc_auc", "accuracy", "log_loss"]


class BeatChampionConfig(_Section):
    """"Must beat the champion by at least delta" on the holdout and on the recent slice.

    The improvement is ``challenger - champion`` for roc_auc/accuracy and ``champion - challenger``
    for log_loss (lower is better). A negative delta tolerates a small regression; ``null`` turns that
    comparison off. Both models are evaluated on the same rows in the same evaluate step.
    """

    metric: MetricName = "roc_auc"
    holdout_delta: float | None = Field(0.0, ge=-1.0, le=1.0)
    recent_delta: float | None = Field(0.0, ge=-1.0, le=1.0)


class SliceMinimum(_Section):
    """A minimum metric on every value (slice) of a categorical column of the holdout."""

    column: str
    metric: Literal["roc_auc", "accuracy"] = "roc_auc"
    min: UnitFloat
    min_rows: int = Field(30, ge=1, description="slices with fewer holdout rows are skipped (noted)")


class InfraCheckConfig(_Section):
    """Load the saved artifact with the model server's loader and predict a sample (InfraValidator)."""

    enabled: bool = True
    sample_rows: int = Field(32, ge=1, le=10_000)
    max_fast_path_delta: float = Field(
        1e-5, ge=0, le=1, description="largest |P_fast - P_reference| on the holdout for the compiled path to serve")


class GateConfig(_Section):
    """Evaluation gate: absolute bounds, beat-the-champion deltas, per-slice minimums, infra check."""

    min_metric: MetricBounds = Field(default_factory=lambda: MetricBounds(roc_auc=0.6))
    max_metric: MetricBounds = Field(default_factory=MetricBounds)
    beat_champion: BeatChampionConfig | None = Field(default_factory=lambda: BeatChampionConfig.model_validate({}))
    slices: list[SliceMinimum] = Field(default_factory=list)
    infra: InfraCheckConfig = Field(default_factory=lambda: InfraCheckConfig.model_validate({}))


class RegistryConfig(_Section):
    """Model registry storage."""

    uri: str = "registry"
    single_writer: bool = Field(False, description="Accept a store without conditional writes (not s3://, "
                                "gs:// or a local folder): only one process may ever write the registry")


class ResourcesConfig(_Section):
    """Kubernetes resource requests and limits of the model server container."""

    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"


class PayloadLoggerConfig(_Section):
    """Payload events (KServe logger format) sent to the drift watcher."""

    url: str | None = Field(None, description="Sink URL (the watcher's /events); None disables events")
    batch_size: int = Field(64, ge=1, le=10_000)
    flush_seconds: float = Field(0.2, gt=0, le=60)
    queue_size: int = Field(10_000, ge=1)
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    source: str = "ctloop-serving"
    sender: Literal["thread", "process"] = Field(
        "thread", description="thread: batch and POST from a thread of the server process; process: a child "
        "process per server process does it, fed through a non-blocking pipe (the sending runs on another core)")


class BatchingConfig(_Section):
    """Adaptive micro-batching of concurrent requests in the model server (off by default)."""

    enabled: bool = Field(False, description="off by default: at c=1 a lone request would wait max_wait_us")
    max_batch_size: int = Field(64, ge=1, le=100_000, description="rows that close a batch at once")
    max_wait_us: int = Field(500, ge=0, le=1_000_000, description="microseconds a batch stays open")


class ServingConfig(_Section):
    """Model server settings (local server and the rendered InferenceService)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    poll_seconds: float = Field(5.0, gt=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(3, ge=1)
    canary_traffic_percent: int = Field(100, ge=0, le=100)
    enable_grpc: bool = False
    grpc_port: int = Field(8081, ge=1, le=65535)
    request_logging: bool = False
    threshold: UnitFloat = 0.5
    logger: PayloadLoggerConfig = Field(default_factory=PayloadLoggerConfig)
    namespace: str = "ctloop"
    component: str = "predictor"
    scale_metric: Literal["concurrency", "rps", "cpu", "memory"] = "concurrency"
    scale_target: int = Field(10, ge=1)
    storage_uri_prefix: str | None = Field(
        None, description="Cluster URI of registry.uri (e.g. s3://bucket/registry); None uses registry.uri")
    watcher_url: str = "http://ctloop-watcher.ctloop.svc.cluster.local/events"
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    node_selector: dict[str, str] = Field(default_factory=lambda: {"ctloop.io/pool": "cpu"})
    config_map: str = "ctloop-config"
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    workers: int = Field(1, ge=1, le=64, description="server processes sharing the port (one per core)")
    repository_api: bool = Field(False, description="mount KServe's model-repository load/unload routes "
                                 "(behind the bearer token in serving.token_file)")
    token_file: str | None = Field(None, description="bearer token guarding the repository routes")
    body_timeout_seconds: float = Field(30.0, gt=0, le=600,
                                        description="a request body not received within this is refused (408)")

    @model_validator(mode="after")
    def _repository_token(self) -> ServingConfig:
        if self.repository_api and not self.token_file:
            raise ValueError("repository_api: true needs serving.token_file (the bearer token guarding it)")
        return self


class DriftConfig(_Section):
    """Drift watcher settings (``ctloop watch``).

    Windows are ``window_rows`` rows, advancing by ``slide_rows`` (tumbling when unset). A feature is
    drifted when the window holds at least ``min_rows`` rows and its ``method`` score is above its
    threshold for ``consecutive_windows`` windows in a row. Thresholds are ``calibrated`` per feature
    (bootstrap reference-vs-reference at the window size for ``false_alarm_rate``, never below
    ``min_effect``) or ``fixed`` (``psi_threshold`` / ``js_threshold``); ``feature_thresholds``
    overrides either per feature.
    """

    window_rows: int = Field(2000, ge=10)
    slide_rows: int | None = Field(None, ge=1)
    min_rows: int = Field(500, ge=1)
    consecutive_windows: int = Field(2, ge=1)
    method: Literal["psi", "js"] = "psi"
    thresholds: Literal["calibrated", "fixed"] = "calibrated"
    psi_threshold: NonNegFloat = 0.2
    js_threshold: UnitFloat = 0.1
    feature_thresholds: dict[str, NonNegFloat] = Field(default_factory=dict)
    false_alarm_rate: float = Field(0.001, gt=0, lt=0.5)
    min_effect: NonNegFloat = 0.01
    bootstrap_samples: int = Field(2000, ge=100, le=200_000)
    seed: int = 0
    drift_share_alert: UnitFloat = 0.25
    alert_for: str = "1m"
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=1, le=65535)
    poll_seconds: float = Field(5.0, gt=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_pending_joins: int = Field(10_000, ge=1)
    events_token_file: str | None = Field(None, description="bearer token /events requires (and the model "
                                          "server's payload logger sends); None leaves /events open")
    replay_window: int = Field(100_000, ge=1, description="event ids remembered to refuse replayed ce-ids")
    max_rows_per_second: float | None = Field(None, gt=0, description="rows one event source may add per "
                                              "second (token bucket, burst of one window); None: unlimited")
    min_sources: int = Field(1, ge=1, description="distinct event sources a drifted window needs before it "
                             "counts (where events carry a source)")
    events_token_secret: str = Field("ctloop-events-token", description="Secret holding the events token "
                                     "(mounted at events_token_file in the watcher and the ServingRuntime)")
    aggregation: Literal["local", "prometheus"] = Field(
        "local", description="local: this watcher's row windows decide (one replica); prometheus: fleet "
        "mode, recording rules sum every replica's bin counters over fleet_window and the alert reads them")
    replicas: int = Field(1, ge=1, le=100, description="watcher replicas on a cluster (> 1 needs fleet mode)")
    fleet_window: str = Field("10m", description="fleet mode: the time window the recording rules sum over")

    @field_validator("fleet_window")
    @classmethod
    def _fleet_window(cls, value: str) -> str:
        if not DURATION_RE.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration (e.g. 5m, 1h)")
        return value

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int, info: Any) -> int:
        if value > 1 and info.data.get("aggregation") != "prometheus":
            raise ValueError("more than one watcher replica needs drift.aggregation: prometheus (each "
                             "replica sees only part of the traffic, so only the summed counts give a verdict)")
        return value

    @field_validator("slide_rows")
    @classmethod
    def _divides(cls, value: int | None, info: Any) -> int | None:
        window = info.data.get("window_rows")
        if value is not None and window is not None and (value > window or window % value):
            raise ValueError(f"must divide window_rows ({window}) evenly")
        return value

    @field_validator("min_rows")
    @classmethod
    def _fits(cls, value: int, info: Any) -> int:
        window = info.data.get("window_rows")
        if window is not None and value > window:
            raise ValueError(f"must be <= window_rows ({window}), or no window is ever evaluated")
        return value


class LabelsConfig(_Section):
    """Delayed labels: how long predictions wait for their label, and how labels get in."""

    max_delay: str = Field("30d", description="predictions older than this are dropped from the store (duration)")
    max_predictions: int = Field(1_000_000, ge=1, description="the store keeps at most this many predictions")
    store: str = Field("state/predictions.sqlite", description="prediction store file (SQLite, WAL)")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest POST /labels body")
    allowed_from: dict[str, str] = Field(
        default_factory=lambda: {"ctloop.io/label-feed": "true"},
        description="pod labels of the label feed that the watcher's NetworkPolicy admits",
    )
    push_schedule: str | None = Field(
        None, description="cron (UTC): render a CronJob running `ctloop labels push --file push_file`")
    push_file: str | None = Field(None, description="label file (fsspec URI) the rendered CronJob pushes")

    @field_validator("max_delay")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION_RE.match(value):
            raise ValueError(f"{value!r} is not a duration (e.g. 30d, 12h)")
        return value

    @field_validator("push_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from croniter import croniter

            if not croniter.is_valid(value):
                raise ValueError(f"{value!r} is not a valid cron expression (e.g. '0 4 * * *')")
        return value

    @model_validator(mode="after")
    def _push_file(self) -> LabelsConfig:
        if self.push_schedule is not None and not self.push_file:
            raise ValueError("push_schedule needs push_file (the label file the CronJob pushes)")
        return self


class PerformanceConfig(_Section):
    """Realized and estimated model quality, and the performance-drop alert."""

    window_rows: int = Field(1000, ge=10, description="labelled predictions in the realized-performance window")
    metric: Literal["accuracy", "roc_auc"] = "accuracy"
    min: UnitFloat | None = Field(None, description="alert when the realized metric falls below this")
    max_drop: UnitFloat | None = Field(
        0.05, description="alert when the realized metric is this far below the serving version's gate value"
    )
    min_labelled: int = Field(200, ge=1, description="labelled rows needed before the alert can fire")
    min_slice_rows: int = Field(30, ge=1, description="slices with fewer labelled rows are not reported")
    alert_for: str = "1m"
    estimated_window_rows: int = Field(1000, ge=10, description="predictions per estimated-performance window")
    estimated_min: UnitFloat | None = Field(None, description="optional alert on the estimated metric")

    @field_validator("alert_for")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION_RE.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration (e.g. 30s, 5m, 1h)")
        return value


class MonitoringConfig(_Section):
    """Model quality in the loop: delayed labels and realized/estimated performance."""

    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)


class OrchestratorAuth(_Section):
    """Credentials of an orchestrator's API, read from a file or an environment variable (never inline).

    A bearer token (``token_file`` / ``token_env``) wins over a user name with a password
    (``password_file`` / ``password_env``).
    """

    token_file: str | None = None
    token_env: str | None = None
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None


class AirflowTriggerConfig(OrchestratorAuth):
    """``triggers.submitter: airflow``: DAG runs through Airflow's stable REST API."""

    endpoint: str | None = Field(None, description="base URL of the Airflow API server, e.g. http://airflow:8080")
    api_version: Literal["v1", "v2"] = Field("v2", description="v1: Airflow 2.x; v2: Airflow 3.x")
    dag_id: str = Field("ctloop_training", min_length=1)
    timeout_seconds: float = Field(10.0, gt=0)


class PrefectTriggerConfig(OrchestratorAuth):
    """``triggers.submitter: prefect``: flow runs of a Prefect 3 deployment."""

    endpoint: str | None = Field(None, description="Prefect API URL, e.g. http://prefect:4200/api")
    deployment: str = Field("ctloop-training/ctloop", description="<flow name>/<deployment name>")
    timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("deployment")
    @classmethod
    def _flow_slash_deployment(cls, value: str) -> str:
        flow, _, name = value.partition("/")
        if not flow or not name:
            raise ValueError(f"{value!r} must be '<flow name>/<deployment name>'")
        return value


class DagsterTriggerConfig(OrchestratorAuth):
    """``triggers.submitter: dagster``: runs launched through the Dagster webserver's GraphQL API."""

    endpoint: str | None = Field(None, description="base URL of the Dagster webserver, e.g. http://dagster:3000")
    job: str = Field("ctloop_training", min_length=1)
    repository_location: str = Field("ctloop", min_length=1, description="code location name")
    repository_name: str = Field("__repository__", min_length=1)
    timeout_seconds: float = Field(10.0, gt=0)


class TriggersConfig(_Section):
    """Trigger policy settings (alerts, schedule, new-data volume, manual → at most one run per episode)."""

    cooldown_minutes: float = Field(60.0, ge=0)
    daily_budget: int = Field(4, ge=0)
    schedule: str | None = Field(None, description="cron expression (UTC); fired by the watcher or a CronJob")
    schedule_by: Literal["watcher", "cronjob"] = "watcher"
    volume_rows: int | None = Field(None, ge=1)
    volume_check_seconds: float = Field(60.0, gt=0)
    ledger: str = "state/ledger.sqlite"
    token_file: str = "secrets/trigger-token"
    token_secret: str = "ctloop-trigger-token"
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    submitter: Literal["local", "kfp", "airflow", "prefect", "dagster"] = "local"
    prometheus: bool = Field(False, description="Prometheus evaluates the rules (embedded evaluator off)")
    evaluation_interval: str = "15s"
    group_wait: str = "1s"
    group_interval: str = "1m"
    repeat_interval: str = "4h"
    endpoint: str = "http://127.0.0.1:8090"
    cluster_endpoint: str | None = None
    airflow: AirflowTriggerConfig = Field(default_factory=AirflowTriggerConfig)
    prefect: PrefectTriggerConfig = Field(default_factory=PrefectTriggerConfig)
    dagster: DagsterTriggerConfig = Field(default_factory=DagsterTriggerConfig)
    submit_retry_seconds: float = Field(30.0, gt=0, description="wait before retrying a failed submission")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from croniter import croniter

            if not croniter.is_valid(value):
                raise ValueError(f"{value!r} is not a valid cron expression (e.g. '0 3 * * *')")
        return value

    @field_validator("evaluation_interval", "group_wait", "group_interval", "repeat_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION_RE.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration (e.g. 30s, 5m, 1h)")
        return value


class ImagesConfig(_Section):
    """Container images the compiled pipeline uses."""

    runtime: str = "ghcr.io/ctloop/ctloop-runtime:0.1.0"
    trainer_gpu: str = "ghcr.io/ctloop/ctloop-trainer-gpu:0.1.0"

    @field_validator("runtime", "trainer_gpu")
    @classmethod
    def _pinned(cls, value: str) -> str:
        tag = value.rsplit("/", 1)[-1]
        if ":" not in tag and "@" not in tag:
            raise ValueError(f"image {value!r} must carry a tag or digest")
        if tag.endswith(":latest"):
            raise ValueError(f"image {value!r} must not use the ':latest' tag")
        return value


class KfpConfig(_Section):
    """Kubeflow Pipelines connection and layout."""

    host: str | None = None
    namespace: str = "kubeflow"
    experiment: str = "ctloop"
    pipeline_root: str = "runs"
    images: ImagesConfig = Field(default_factory=ImagesConfig)


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY", "API_KEY")


def _secret_like(name: str) -> bool:
    """An environment variable name that would carry a credential."""
    upper = name.upper()
    return not upper.endswith(("_FILE", "_PATH")) and any(w in upper for w in SECRET_WORDS)


class StorageConfig(_Section):
    """How ctloop's pods on a cluster reach the object store (endpoint and credentials as env vars).

    Plain environment variables, and a Secret whose keys become environment variables, for the
    ``s3://`` URIs of data, schema, registry and label files. Applied to the watcher, the label-feed
    CronJob and every pipeline step; the Secret is also listed on the model server's ServiceAccount
    for KServe's storage initializer.
    """

    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment variables set in every ctloop pod, e.g. AWS_ENDPOINT_URL (no credentials)")
    secret: str | None = Field(
        None, description="Secret (in deploy.namespace and kfp.namespace) holding the credentials; null: none")
    secret_keys: dict[str, str] = Field(
        default_factory=lambda: {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                                 "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
        description="environment variable -> key of storage.secret")

    @field_validator("env")
    @classmethod
    def _plain_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if _secret_like(name):
                raise ValueError(f"{name!r} looks like a credential: put it in the Secret named by "
                                 "storage.secret and map it in storage.secret_keys")
        return value

    @field_validator("secret_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for name, key in value.items():
            if not ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
                raise ValueError(f"{key!r} is not a valid Secret key")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?", value):
            raise ValueError("must be a Kubernetes object name (lowercase, '-', '.')")
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> StorageConfig:
        both = sorted(set(self.env) & set(self.secret_keys if self.secret else {}))
        if both:
            raise ValueError(f"{', '.join(both)} set both in storage.env and storage.secret_keys")
        return self


class GitOpsConfig(_Section):
    """Target of ``deploy.mode: gitops``: the repository Argo CD syncs from."""

    repo_url: str | None = Field(None, description="git URL (or path) of the GitOps repository")
    branch: str = Field("main", min_length=1)
    path: str = Field("manifests", description="folder of the kustomize tree inside the repository")
    overlay: str = Field("production", min_length=1, description="overlay the deploy step writes to")
    author_name: str = "ctloop"
    author_email: str = "ctloop@users.noreply.invalid"
    push_attempts: int = Field(5, ge=1, le=50)


class KubernetesDeployConfig(_Section):
    """Target of ``deploy.mode: kubernetes``: patch the InferenceService through the API server."""

    kubeconfig: str | None = Field(None, description="kubeconfig file; None uses the in-cluster config")
    context: str | None = None


class WatcherResources(_Section):
    """Requests and limits of the watcher container."""

    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"


class DeployConfig(_Section):
    """How a promoted model reaches serving, and the cluster objects around it."""

    mode: Literal["local", "gitops", "kubernetes"] = "local"
    namespace: str = "ctloop"
    monitoring_namespace: str = "monitoring"
    pipeline_service_account: str = "pipeline-runner"
    canary_percent: int | None = Field(None, ge=0, le=100,
                                       description="canaryTrafficPercent of a new version; None: serving's")
    node_selector: dict[str, str] = Field(default_factory=lambda: {"ctloop.io/pool": "cpu"})
    state_storage: str = "1Gi"
    watcher_port: int = Field(8080, ge=1024, le=65535)
    watcher_resources: WatcherResources = Field(default_factory=WatcherResources)
    gitops: GitOpsConfig = Field(default_factory=GitOpsConfig)
    kubernetes: KubernetesDeployConfig = Field(default_factory=KubernetesDeployConfig)

    @field_validator("namespace", "monitoring_namespace")
    @classmethod
    def _ns(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be a lowercase DNS label")
        return value


FEATURE_TRANSFORMS = ("log1p", "ratio", "clip", "bucketize", "one_hot_top_k", "date_part", "is_missing")


class FeatureSpec(_Section):
    """One derived feature: a named transform from a small, safe vocabulary over existing columns
    (no user code is evaluated). ``ctloop.features.apply`` computes it the same way in the pipeline's
    features step, the trainers, the model server, the watcher and the backtest."""

    name: str = Field(min_length=1, description="name of the derived column (must not clash with a column)")
    transform: Literal["log1p", "ratio", "clip", "bucketize", "one_hot_top_k", "date_part", "is_missing"] = Field(
        description="log1p | ratio | clip | bucketize | one_hot_top_k | date_part | is_missing")
    column: str | None = Field(None, description="input column (every transform but ratio)")
    numerator: str | None = Field(None, description="ratio: numerator column")
    denominator: str | None = Field(None, description="ratio: denominator column (0 gives missing)")
    min: float | None = Field(None, description="clip: lower bound")
    max: float | None = Field(None, description="clip: upper bound")
    boundaries: list[float] | None = Field(None, description="bucketize: increasing bucket boundaries")
    k: int | None = Field(None, ge=1, le=100, description="one_hot_top_k: number of most frequent categories")
    part: Literal["year", "month", "day", "dayofweek", "dayofyear", "hour"] | None = Field(
        None, description="date_part: which part of a date/time column")

    @model_validator(mode="after")
    def _complete(self) -> FeatureSpec:
        need = {"ratio": ("numerator", "denominator"), "bucketize": ("column", "boundaries"),
                "one_hot_top_k": ("column", "k"), "date_part": ("column", "part")}.get(self.transform, ("column",))
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"transform {self.transform!r} needs {', '.join(missing)}")
        if self.transform == "clip" and self.min is None and self.max is None:
            raise ValueError("transform 'clip' needs min, max or both")
        if self.boundaries is not None and any(b >= a for a, b in zip(self.boundaries[1:], self.boundaries,
                                                                         strict=False)):
            raise ValueError("boundaries must be strictly increasing")
        return self

    def inputs(self) -> list[str]:
        """The columns this feature reads."""
        return [c for c in (self.column, self.numerator, self.denominator) if c is not None]


class ProjectConfig(_Section):
    """The whole ``ctloop.yaml``."""

    name: str
    data: DataConfig
    schema_: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    kfp: KfpConfig = Field(default_factory=KfpConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    features: list[FeatureSpec] = Field(default_factory=list, description="derived features (features step)")

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'; at most 63 characters)")
        return value

    def to_json(self) -> str:
        """Serialise to canonical JSON (the form passed to pipeline components)."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON form."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def format_validation_error(exc: ValidationError, source: str) -> str:
    """Render a pydantic error as ``source: field.path: message`` lines."""
    lines = []
    for err in exc.errors():
        path = ".".join("schema" if p == "schema_" else str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if msg.startswith(f"{path}."):  # the message names a deeper key itself (model.params.<key>)
            lines.append(f"{source}: {msg}")
            continue
        lines.append(f"{source}: {path}: {msg}")
    return "\n".join(lines)


def _resolve(value: str, base: Path) -> str:
    if "://" in value:
        if value.startswith("file://"):
            rest = value.removeprefix("file://")
            return str((base / rest).resolve()) if not rest.startswith("/") else rest
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve the config's relative paths against ``base`` (in a copy of the raw mapping)."""
    out = json.loads(json.dumps(raw))
    for section, key in (
        ("data", "source"),
        ("schema", "path"),
        ("registry", "uri"),
        ("kfp", "pipeline_root"),
        ("triggers", "ledger"),
        ("triggers", "token_file"),
        ("serving", "token_file"),
        ("drift", "events_token_file"),
        ("training", "checkpoint_uri"),
    ):
        sec = out.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            sec[key] = _resolve(sec[key], base)
    mon = out.setdefault("monitoring", {})
    if isinstance(mon, dict):
        lab = mon.setdefault("labels", {})
        if isinstance(lab, dict):
            lab["store"] = _resolve(lab["store"] if isinstance(lab.get("store"), str) else "state/predictions.sqlite",
                                    base)
    if isinstance(out.get("schema"), str):
        out["schema"] = {"path": _resolve(out["schema"], base)}
    defaults = {"schema": ("path", "schema.yaml"), "registry": ("uri", "registry"),
                "kfp": ("pipeline_root", "runs"), "triggers": ("ledger", "state/ledger.sqlite"),
                "training": ("checkpoint_uri", "checkpoints")}
    trig = out.setdefault("triggers", {})
    if isinstance(trig, dict) and "token_file" not in trig:
        trig["token_file"] = _resolve("secrets/trigger-token", base)
    for section, (key, default) in defaults.items():
        sec = out.setdefault(section, {})
        if isinstance(sec, dict) and key not in sec:
            sec[key] = _resolve(default, base)
    return out


def parse_config(raw: Any, source: str = "<config>", base: Path | None = None) -> ProjectConfig:
    """Validate a raw mapping into a :class:`ProjectConfig`.

    Args:
        raw: The mapping read from YAML or JSON.
        source: Where it came from, used in error messages.
        base: Folder that relative paths resolve against; ``None`` leaves paths as they are.

    Raises:
        ConfigError: On unknown keys or bad values, naming each field path.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    if base is not None:
        raw = resolve_paths(raw, base)
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def load_config(path: str | Path) -> ProjectConfig:
    """Load ``ctloop.yaml`` from disk.

    Raises:
        ConfigError: When the file is missing, is not YAML, or does not validate.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found (create one with `ctloop init DIR`)")
    try:
        raw = load_bounded(p.read_text(), str(p))
    except YamlLimitError as exc:
        raise ConfigError(str(exc)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_config(raw, source=str(p), base=p.parent.resolve())


def config_from_json(text: str) -> ProjectConfig:
    """Rebuild a config from its canonical JSON (as passed to pipeline components)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config_json: not valid JSON: {exc}") from exc
    return parse_config(raw, source="config_json")
