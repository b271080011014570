"""Local retries that skip deterministic failures.

The compiled pipeline keeps the train task's retry policy (``training.retries`` with backoff): on a
cluster a spot node's preemption is the reason for it, and the retried task resumes from its checkpoint.
``kfp.local`` honours the same policy, so a train step failing on a configuration or data error would
sit through minutes of doubling backoff before ``ctloop run`` could report it. :func:`skip_deterministic_retries`
runs the policy itself for the local run: a failed attempt whose step reported a configuration error
(exit code 2) or a data error (exit code 3) is not retried; any other failure is retried with the
policy's backoff, as on a cluster.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

DETERMINISTIC_EXIT_CODES = (2, 3)  # ConfigError / SchemaError, DataError / DataValidationError


def backoff_delay(policy: Any, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0-based), as ``kfp.local`` computes it."""
    base = policy.backoff_duration.seconds if policy.HasField("backoff_duration") else 0
    factor = policy.backoff_factor if policy.backoff_factor > 0 else 2.0
    cap = policy.backoff_max_duration.seconds if policy.HasField("backoff_max_duration") else 3600
    return float(min(base * factor**attempt, cap))


def deterministic(failures: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last failure among ``failures`` (``CTLOOP_ERROR`` records) that a retry cannot fix."""
    for f in reversed(failures):
        if int(f.get("exit_code") or 1) in DETERMINISTIC_EXIT_CODES:
            return f
    return None


@contextlib.contextmanager
def skip_deterministic_retries(failures: list[dict[str, Any]], say: Callable[[str], None],
                               sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Run ``kfp.local`` tasks with retries that stop at a deterministic failure.

    It swaps ``kfp.local``'s single-task executor for the duration of the block, so one pipeline run per
    process at a time (as the runner's stdout capture already requires).

    Args:
        failures: The run's ``CTLOOP_ERROR`` records, appended to while a task runs (the runner's log tap).
        say: Where to write one line per retry decision (the run log).
        sleep: How to wait out a backoff.
    """
    from kfp.local import status
    from kfp.local.orchestrator import task_executor

    original = task_executor.execute_single_task

    def execute(*args: Any, **kwargs: Any) -> Any:
        task_name = kwargs["task_name"] if "task_name" in kwargs else args[0]
        spec = kwargs["task_spec"] if "task_spec" in kwargs else args[1]
        if spec.retry_policy.max_retry_count <= 0:
            return original(*args, **kwargs)
        single = type(spec)()
        single.CopyFrom(spec)
        single.ClearField("retry_policy")  # one attempt per call; the loop below is the policy
        call = dict(kwargs, task_spec=single) if "task_spec" in kwargs else None
        call_args = args if call is not None else (args[0], single, *args[2:])
        attempts = spec.retry_policy.max_retry_count + 1
        for attempt in range(attempts):
            seen = len(failures)
            outputs, state = original(*call_args, **(call if call is not None else kwargs))
            if state == status.Status.SUCCESS or attempt == attempts - 1:
                return outputs, state
            new = failures[seen:]
            own = [f for f in new if str(f.get("step", "")).replace("_", "-") == task_name]
            cause = deterministic(own or new)  # tasks may run in parallel: prefer this task's own records
            if cause is not None:
                say(f"ctloop: task {task_name!r} failed with {cause.get('type')} (exit code "
                    f"{cause.get('exit_code')}); not retried locally: a retry cannot fix it (the compiled "
                    f"pipeline keeps its retry policy for preemption on a cluster)")
                return outputs, state
            delay = backoff_delay(spec.retry_policy, attempt)
            say(f"ctloop: task {task_name!r} failed (attempt {attempt + 1}/{attempts}); retrying in {delay:.1f}s")
            sleep(delay)
        return outputs, state  # pragma: no cover - the loop always returns

    task_executor.execute_single_task = execute
    try:
        yield
    finally:
        task_executor.execute_single_task = original
