"""Local retries: a configuration or data error is not retried; other failures follow the policy."""

from __future__ import annotations

from typing import Any

import pytest
from kfp.local import status
from kfp.local.orchestrator import task_executor
from kfp.pipeline_spec import pipeline_spec_pb2

from ctloop.local_retry import backoff_delay, skip_deterministic_retries

pytestmark = pytest.mark.unit


def spec(retries: int = 3) -> pipeline_spec_pb2.PipelineTaskSpec:
    t = pipeline_spec_pb2.PipelineTaskSpec()
    if retries:
        t.retry_policy.max_retry_count = retries
        t.retry_policy.backoff_duration.seconds = 60
        t.retry_policy.backoff_factor = 2
        t.retry_policy.backoff_max_duration.seconds = 200
    return t


class FailingTask:
    """Stands in for kfp.local's single-task executor: records every call, fails with ``exit_codes``."""

    def __init__(self, failures: list[dict[str, Any]], exit_codes: list[int | None]) -> None:
        self.failures, self.exit_codes = failures, exit_codes
        self.calls: list[pipeline_spec_pb2.PipelineTaskSpec] = []

    def __call__(self, **kwargs: Any) -> tuple[dict[str, Any], status.Status]:
        self.calls.append(kwargs["task_spec"])
        code = self.exit_codes[len(self.calls) - 1]
        if code is None:
            return {"ok": True}, status.Status.SUCCESS
        self.failures.append({"step": "train", "type": "SomeError", "exit_code": code})
        return {}, status.Status.FAILURE


def run(monkeypatch: pytest.MonkeyPatch, exit_codes: list[int | None], retries: int = 3
        ) -> tuple[FailingTask, list[float], list[str], status.Status]:
    failures: list[dict[str, Any]] = []
    task = FailingTask(failures, exit_codes)
    monkeypatch.setattr(task_executor, "execute_single_task", task)
    slept: list[float] = []
    said: list[str] = []
    with skip_deterministic_retries(failures, said.append, sleep=slept.append):
        _, state = task_executor.execute_single_task(task_name="train", task_spec=spec(retries))
    assert task_executor.execute_single_task is task  # restored
    return task, slept, said, state


@pytest.mark.parametrize("code", [2, 3])
def test_config_or_data_error_is_not_retried(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    task, slept, said, state = run(monkeypatch, [code, code, code, code])
    assert len(task.calls) == 1 and slept == [] and state == status.Status.FAILURE
    assert not task.calls[0].HasField("retry_policy")  # kfp.local does not retry it behind our back
    assert len(said) == 1 and "not retried locally" in said[0] and f"exit code {code}" in said[0]


def test_other_failures_follow_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    task, slept, said, state = run(monkeypatch, [1, 143, 1, 1])
    assert len(task.calls) == 4 and state == status.Status.FAILURE
    assert slept == [60.0, 120.0, 200.0]  # doubling, capped at backoff_max_duration
    assert len(said) == 3 and "retrying in 60.0s" in said[0]


def test_retry_then_success_and_a_later_deterministic_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    task, slept, _, state = run(monkeypatch, [143, None])
    assert len(task.calls) == 2 and slept == [60.0] and state == status.Status.SUCCESS
    task, slept, _, state = run(monkeypatch, [1, 2, 1, 1])
    assert len(task.calls) == 2 and slept == [60.0] and state == status.Status.FAILURE


def test_task_without_a_policy_runs_once_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    task, slept, said, _ = run(monkeypatch, [2], retries=0)
    assert len(task.calls) == 1 and slept == [] and said == []


def test_backoff_delay_matches_kfp_local() -> None:
    assert [backoff_delay(spec().retry_policy, a) for a in range(3)] == [60.0, 120.0, 200.0]
    assert backoff_delay(pipeline_spec_pb2.PipelineTaskSpec().retry_policy, 2) == 0.0


def test_another_tasks_config_error_does_not_stop_this_tasks_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    failures: list[dict[str, Any]] = []
    calls: list[str] = []

    def task(**kwargs: Any) -> tuple[dict[str, Any], status.Status]:
        calls.append(kwargs["task_name"])
        failures.append({"step": "train", "type": "TrainingInterrupted", "exit_code": 143})
        failures.append({"step": "validate_gate", "type": "DataValidationError", "exit_code": 3})  # in parallel
        return {}, status.Status.FAILURE

    monkeypatch.setattr(task_executor, "execute_single_task", task)
    with skip_deterministic_retries(failures, lambda _: None, sleep=lambda _: None):
        task_executor.execute_single_task(task_name="train", task_spec=spec(2))
    assert calls == ["train"] * 3
