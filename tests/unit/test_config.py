"""Project config: loading, path resolution, and errors that name the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.config import config_from_json, load_config, parse_config
from ctloop.errors import ConfigError

pytestmark = pytest.mark.unit

MINIMAL = {"name": "churn", "data": {"source": "data"}}


def test_example_project_loads_and_resolves_paths(project: Path) -> None:
    cfg = load_config(project)
    base = project.parent.resolve()
    assert cfg.name == "churn"
    assert cfg.data.source == str(base / "data")
    assert cfg.schema_.path == str(base / "schema.yaml")
    assert cfg.registry.uri == str(base / "registry")
    assert cfg.kfp.pipeline_root == str(base / "runs")
    assert cfg.model.trainer == "sklearn"
    assert cfg.deploy.mode == "local"


def test_defaults_resolve_against_config_folder(tmp_path: Path) -> None:
    cfg = parse_config(dict(MINIMAL), base=tmp_path)
    assert cfg.registry.uri == str(tmp_path / "registry")
    assert cfg.triggers.ledger == str(tmp_path / "state/ledger.sqlite")


def test_uris_with_scheme_are_kept(tmp_path: Path) -> None:
    raw = {"name": "churn", "data": {"source": "s3://bucket/events"}, "registry": {"uri": "gs://b/reg"}}
    cfg = parse_config(raw, base=tmp_path)
    assert cfg.data.source == "s3://bucket/events"
    assert cfg.registry.uri == "gs://b/reg"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"gate": {"min_metric": {"roc_auc": 1.5}}}, "gate.min_metric.roc_auc: must be between 0 and 1"),
        ({"gate": {"min_metric": {"f1": 0.5}}}, "gate.min_metric.f1: unknown key"),
        ({"model": {"trainer": "xgboost"}}, "model.trainer: Input should be 'sklearn' or 'torch'"),
        ({"deploy": {"mode": "ftp"}}, "deploy.mode"),
        ({"data": {"source": "d", "window_days": 0}}, "data.window_days"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"serving": {"logger": {"sender": "fork"}}}, "serving.logger.sender: Input should be 'thread' or 'process'"),
        ({"name": "Not A DNS Name"}, "name: must be a lowercase DNS label"),
        ({"kfp": {"images": {"runtime": "repo/img:latest"}}}, "kfp.images.runtime"),
    ],
)
def test_bad_values_name_the_field(patch: dict, expected: str) -> None:
    raw = {**MINIMAL, **patch}
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, source="ctloop.yaml")
    assert expected in str(exc.value)
    assert str(exc.value).startswith("ctloop.yaml: ")


def test_missing_required_section() -> None:
    with pytest.raises(ConfigError, match="data: Field required"):
        parse_config({"name": "churn"})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "ctloop.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_json_round_trip_and_hash(project: Path) -> None:
    cfg = load_config(project)
    again = config_from_json(cfg.to_json())
    assert again == cfg
    assert again.config_hash() == cfg.config_hash()
    changed = again.model_copy(update={"name": "other"})
    assert changed.config_hash() != cfg.config_hash()
    with pytest.raises(ConfigError, match="config_json: not valid JSON"):
        config_from_json("{")


def test_logger_sender_defaults_to_thread_and_accepts_process(tmp_path: Path) -> None:
    assert parse_config(dict(MINIMAL), base=tmp_path).serving.logger.sender == "thread"
    raw = {**MINIMAL, "serving": {"logger": {"sender": "process"}}}
    assert parse_config(raw, base=tmp_path).serving.logger.sender == "process"
