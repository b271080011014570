"""The kind e2e's data story, played here against a real S3 API (moto, server mode) instead of KFP's
MinIO: the committed seed Jobs' ``ctloop datagen`` commands write straight to ``s3://`` with nothing but
the standard AWS environment (``AWS_ENDPOINT_URL``, keys), the kind config trains v1 on them, the drift
Job's days make the next run train and promote v2 over it. Only what needs a cluster is swapped for its
local stand-in (KFP's local runner, ``deploy.mode: local``, local state files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from ctloop.registry import Registry
from tests.conftest import run_cli
from tests.helpers_cluster import KIND_CONFIG, KIND_SETUP, load_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET_PREFIX = "s3://mlpipeline/"


def _job_args(file: str, bucket: str) -> list[str]:
    (job,) = load_all((KIND_SETUP / file).read_text())
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return [a.replace(BUCKET_PREFIX, f"s3://{bucket}/") for a in c["args"]]


def _local_config(bucket: str, root: Path) -> Path:
    """The kind config on ``bucket``, with the cluster-only parts replaced by local stand-ins."""
    text = KIND_CONFIG.read_text()
    assert BUCKET_PREFIX in text
    raw: dict[str, Any] = yaml.safe_load(text.replace(BUCKET_PREFIX, f"s3://{bucket}/"))
    raw["deploy"] = {"mode": "local"}  # no InferenceService to patch: move the champion alias
    raw["triggers"].update(submitter="local", ledger=str(root / "ledger.sqlite"), token_file=str(root / "token"))
    raw["kfp"]["pipeline_root"] = str(root / "runs")
    raw["training"]["checkpoint_uri"] = str(root / "checkpoints")
    raw["monitoring"]["labels"]["store"] = str(root / "predictions.sqlite")
    raw.pop("storage")  # the AWS environment of this process points at moto already
    path = root / "ctloop.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run(config: Path, *extra: str) -> dict[str, Any]:
    proc = run_cli("run", "--config", str(config), "--json", *extra, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_seed_then_drift_trains_v1_then_promotes_v2_on_s3(s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bucket = s3_server.new_bucket("mlpipeline")
    config = _local_config(bucket, tmp_path)
    cfg = load_config(config)
    assert cfg.data.source.startswith(f"s3://{bucket}/") and cfg.schema_.path.startswith(f"s3://{bucket}/")

    seed = run_cli(*_job_args("seed-data-job.yaml", bucket))
    assert seed.returncode == 0, seed.stderr
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert "ctloop/churn/schema.yaml" in keys and "ctloop/churn/data/date=2026-01-07/part-0.parquet" in keys

    first = _run(config)
    reg = Registry(cfg.registry.uri, cfg.name)
    assert (first["status"], first["version"], reg.alias("champion")) == ("succeeded", 1, 1), first

    drift = run_cli(*_job_args("seed-drift-job.yaml", bucket))
    assert drift.returncode == 0, drift.stderr
    second = _run(config, "--trigger", "drift", "--reason", "kind e2e drift alert")
    assert (second["status"], second["version"], reg.alias("champion")) == ("succeeded", 2, 2), second
    data = reg.get(2).metadata["data"]  # v2 trained on the drifted days only (data.window_days: 3)
    assert (data["first_day"], data["last_day"], data["source"]) == ("2026-01-08", "2026-01-10", cfg.data.source)
