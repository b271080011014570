"""Training pipeline components. Each body imports ``ctloop`` and calls one step function."""


from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

DEFAULT_IMAGE = "ghcr.io/ctloop/ctloop-runtime:0.1.0"


def ingest(config_json: str, cutoff_date: str, dataset: Output[Dataset]) -> str:
    """Read the training window into one dataset; returns its content hash."""
    from ctloop.steps import ingest_step

    info = ingest_step(config_json, cutoff_date, dataset.path)
    dataset.metadata.update(info)
    return info["content_hash"]


def validate(config_json: str, dataset: Input[Dataset], report: Output[Artifact], report_html: Output[HTML],
             summary: Output[Markdown]) -> bool:
    """Check the dataset against the schema and the champion's profile; publish the JSON / HTML /
    Markdown reports whatever the outcome (``validate_gate`` stops the run on errors)."""
    from ctloop.steps import validate_step

    result = validate_step(config_json, dataset.path, report.path, report_html.path, summary.path, fail=False)
    report.metadata.update({"passed": result["passed"], "rows": result["rows"]})
    return bool(result["passed"])


def validate_gate(config_json: str, report: Input[Artifact]):
    """Fail the run (exit code 3 under ``ctloop run``) when the validation report did not pass."""
    from ctloop.steps import validate_gate_step

    validate_gate_step(config_json, report.path)


def split(config_json: str, dataset: Input[Dataset], train: Output[Dataset], test: Output[Dataset],
          recent: Output[Dataset]):
    """Split into train/test and the recent slice."""
    from ctloop.steps import split_step

    info = split_step(config_json, dataset.path, train.path, test.path, recent.path)
    train.metadata["rows"], test.metadata["rows"] = info["train_rows"], info["test_rows"]
    recent.metadata["rows"] = info["recent_rows"]


def features(config_json: str, train: Input[Dataset], table: Output[Dataset], state: Output[Artifact],
             summary: Output[HTML]):
    """Fit the declared derived features on the training split: the feature table, the fitted state and
    an HTML summary (the same ``ctloop.features.apply`` runs in serving, the watcher and the backtest)."""
    from ctloop.steps import features_step

    info = features_step(config_json, train.path, table.path, state.path, summary.path)
    table.metadata.update({"rows": info["rows"], "derived": info["derived"]})


def train(config_json: str, train: Input[Dataset], features: Input[Artifact], model: Output[Model],
          metrics: Output[Metrics]):
    """Fit the configured trainer on the feature table; the model folder carries its transforms and the
    fitted features. Per-epoch metrics (torch)."""
    from ctloop.steps import train_step

    info = train_step(config_json, train.path, model.path, features.path)
    for name, value in info.pop("metrics", {}).items():
        metrics.log_metric(name, value)
    model.metadata.update(info)


def evaluate(config_json: str, model: Input[Model], test: Input[Dataset], recent: Input[Dataset],
             metrics: Output[Metrics], decision: Output[Artifact],
             summary: Output[Markdown]) -> bool:
    """Evaluate challenger and champion on the same data and apply the gate; the decision record
    (JSON artifact, KFP metrics, Markdown) is written whether it passes or not."""
    from ctloop.steps import evaluate_step

    record = evaluate_step(config_json, model.path, test.path, recent.path, decision.path)
    for name, value in record["kfp_metrics"].items():
        metrics.log_metric(name, value)
    with open(summary.path, "w") as fh:
        fh.write(record["markdown"])
    decision.metadata["passed"] = bool(record["passed"])
    decision.metadata["failed_checks"] = [c["name"] for c in record["checks"] if not c["passed"]]
    return bool(record["passed"])


def register(config_json: str, model: Input[Model], decision: Input[Artifact], dataset: Input[Dataset],
             run_id: str, kfp_run_name: str, trigger_json: str) -> int:
    """Register the gate-passing model with its lineage; returns the version."""
    from ctloop.steps import register_step

    data_info = {k: dataset.metadata.get(k) for k in ("source", "first_day", "last_day", "content_hash")}
    data_info.update({k: int(dataset.metadata.get(k, 0)) for k in ("rows", "days", "files")})
    info = register_step(config_json, model.path, decision.path, data_info, run_id or kfp_run_name,
                         trigger_json)
    return info["version"]


def deploy(config_json: str, version: int, run_id: str, kfp_run_name: str) -> str:
    """Deploy the version (``deploy.mode``); returns a JSON summary."""
    import json

    from ctloop.steps import deploy_step

    return json.dumps(deploy_step(config_json, version, run_id or kfp_run_name))


@dataclass(frozen=True)
class Components:
    """The pipeline's components, built for one runtime image."""

    ingest: Any
    validate: Any
    validate_gate: Any
    split: Any
    features: Any
    train: Any
    evaluate: Any
    register: Any
    deploy: Any


def build_components(image: str = DEFAULT_IMAGE) -> Components:
    """Wrap the component functions with ``base_image=image`` and no runtime kfp install."""

    def make(fn):  # type: ignore[no-untyped-def]
        return dsl.component(fn, base_image=image, install_kfp_package=False)

    fns = (ingest, validate, validate_gate, split, features, train, evaluate, register, deploy)
    return Components(*(make(f) for f in fns))
