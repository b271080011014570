"""``ctloop init``: a working example project (config + schema) for the synthetic stream."""

from __future__ import annotations

from pathlib import Path

from ctloop.datagen import CATEGORICAL, ID, NUMERIC, TARGET
from ctloop.errors import ConfigError
from ctloop.schema import ColumnSpec, Schema, dump_schema

EXAMPLE_CONFIG = """\
# ctloop project configuration. Relative paths resolve against this file's folder.
name: {name}

data:
  source: data            # fsspec URI or path: date=YYYY-MM-DD/*.parquet partitions
  target: label
  window_days: 14         # train on the last N days up to the cutoff
  recent_days: 3          # the "recent" evaluation slice: the newest days
  test_fraction: 0.25
  allow_missing_days: false

schema:
  path: schema.yaml

model:
  trainer: sklearn        # sklearn | torch
  params:
    estimator: hist_gradient_boosting
    max_iter: 150
    learning_rate: 0.1
  seed: 0

gate:
  min_metric:
    roc_auc: 0.70
    accuracy: 0.60
  max_metric:
    log_loss: 0.70
  beat_champion:          # the champion is re-evaluated on the same holdout and recent slice
    metric: roc_auc
    holdout_delta: -0.01  # challenger - champion must be >= this (-0.01 tolerates sampling noise)
    recent_delta: -0.01   # same on the recent slice (the newest data.recent_days days); null = off
  slices:                 # per-slice minimums over a categorical column of the holdout
    - column: plan
      metric: roc_auc
      min: 0.55
      min_rows: 30
  infra:                  # load the artifact with the model server's loader and predict a sample
    enabled: true
    sample_rows: 32

registry:
  uri: registry           # file path, or s3:// / gs:// on a cluster

serving:
  host: 127.0.0.1
  port: 8080
  poll_seconds: 5

drift:
  window_rows: 2000
  min_rows: 500
  consecutive_windows: 2
  psi_threshold: 0.2

triggers:
  cooldown_minutes: 60
  daily_budget: 4
  ledger: state/ledger.sqlite

kfp:
  host: null              # KFP API endpoint on a cluster
  namespace: kubeflow
  experiment: ctloop
  pipeline_root: runs     # local runner outputs; minio://... or gs://... on a cluster
  images:
    runtime: ghcr.io/ctloop/ctloop-runtime:0.1.0
    trainer_gpu: ghcr.io/ctloop/ctloop-trainer-gpu:0.1.0

deploy:
  mode: local             # local | gitops | kubernetes
"""

BOUNDS = {
    "age": (18, 90),
    "income": (0, None),
    "tenure_months": (0, 360),
    "balance": (0, None),
    "num_products": (1, None),
    "credit_score": (300, 850),
    "txn_count_30d": (0, None),
    "avg_txn_amount": (0, None),
    "days_since_login": (0, None),
}


def example_schema() -> Schema:
    """The reviewed schema of the synthetic stream."""
    cols: dict[str, ColumnSpec] = {ID: ColumnSpec(dtype="id")}
    for name in NUMERIC:
        lo, hi = BOUNDS[name]
        cols[name] = ColumnSpec(
            dtype="integer" if name == "num_products" else "numeric", nullable=name == "balance", min=lo, max=hi
        )
    for name, (values, _) in CATEGORICAL.items():
        cols[name] = ColumnSpec(dtype="categorical", categories=list(values))
    cols[TARGET] = ColumnSpec(dtype="binary")
    return Schema(target=TARGET, columns=cols)


def init_project(directory: str | Path, name: str = "churn", force: bool = False) -> list[Path]:
    """Write ``ctloop.yaml`` and ``schema.yaml`` into ``directory``; return the files written.

    Raises:
        ConfigError: When the files exist and ``force`` is not set.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg, sch = d / "ctloop.yaml", d / "schema.yaml"
    for p in (cfg, sch):
        if p.exists() and not force:
            raise ConfigError(f"{p}: already exists (use --force to overwrite)")
    cfg.write_text(EXAMPLE_CONFIG.format(name=name))
    sch.write_text(dump_schema(example_schema()))
    return [cfg, sch]
