"""Fail fast: model.params checked at config load; no local retries after a config or data error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.runner import run_local
from tests.conftest import make_project, run_cli, tree_bytes

pytestmark = pytest.mark.pipeline


def test_torch_trainer_with_sklearn_params_exits_2_before_any_step(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "p", days=3, rows_per_day=50,
                            edit=lambda t: t.replace("trainer: sklearn", "trainer: torch"))
    proc = run_cli("run", "--config", str(cfg_path), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert "ctloop.yaml: model.params.estimator: unknown key" in err and "(model.trainer: torch)" in err
    assert "model.params.max_iter: unknown key" in err
    assert not (tmp_path / "p" / "runs").exists()  # no step ran: no pipeline root, no run log
    assert not (tmp_path / "p" / "registry").exists()


def test_train_step_config_error_is_not_retried_locally(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "p", days=4, rows_per_day=120,
                            edit=lambda t: t + "\ntraining:\n  retries: 3\n  backoff_seconds: 0\n")
    cfg = load_config(cfg_path)
    assert cfg.training.retries == 3
    schema = Path(cfg.schema_.path)

    def on_event(task: str, state: str) -> None:
        if (task, state) == ("features", "succeeded"):  # the schema file breaks while the run is under way
            schema.write_text(schema.read_text().replace("dtype: numeric", "dtype: decimal", 1))

    result = run_local(cfg, on_event=on_event)
    assert result.status == "config_error" and result.exit_code == 2, result.error
    assert result.error["step"] == "train" and result.error["type"] == "SchemaError"
    log = Path(result.log_path).read_text()
    train_errors = re.findall(r'CTLOOP_ERROR \{"step": "train"', log)
    assert len(train_errors) == 1, "the train task ran more than once"
    assert "task 'train' failed with SchemaError (exit code 2); not retried locally" in log
    assert tree_bytes(Path(cfg.registry.uri)) == {}
