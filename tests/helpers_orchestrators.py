"""Real Airflow, Prefect and Dagster servers for the submitter tests, each in its own venv.

The orchestrators' dependencies clash with kfp's, so each lives in ``.venv-orch/<name>`` (gitignored),
installed from the pinned set in ``tests/orchestrators/constraints-<name>.txt`` and reused while that
file is unchanged (``make orchestrator-venvs`` does the same ahead of time). Servers bind 127.0.0.1 on
free ports with their state under the test's tmp folder, and are always stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.helpers_triggers import REPO, managed, wait_for

VENVS = REPO / ".venv-orch"
PINS = REPO / "tests" / "orchestrators"
TIMINGS: dict[str, float] = {}


def ensure_venv(name: str) -> Path:
    """The venv of orchestrator ``name`` (created or refreshed from its pinned set); returns its bin."""
    pins = PINS / f"constraints-{name}.txt"
    digest = hashlib.sha256(pins.read_bytes()).hexdigest()
    venv = VENVS / name
    stamp = venv / ".ctloop-pins"
    VENVS.mkdir(exist_ok=True)
    with open(VENVS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.is_file() and stamp.read_text() == digest):
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*pip, "-r", str(pins)], check=True)
            stamp.write_text(digest)
            TIMINGS[f"{name}_install_s"] = round(time.monotonic() - t0, 1)
    return venv / "bin"


def _env(extra: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1", **extra})
    return env


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 240) -> float:
    t0 = time.monotonic()

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(url, timeout=3).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout, f"{what} at {url}", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
    return round(time.monotonic() - t0, 1)


@dataclass
class Server:
    """A running orchestrator: its base URL and what a submitter config needs to reach it."""

    name: str
    url: str
    home: Path
    settings: dict[str, object] = field(default_factory=dict)


AIRFLOW_DAG = """\
from ctloop.orchestrators.airflow import build_dag

dag = build_dag({config!r}, dag_id="ctloop_training", python={python!r})
"""


@contextlib.contextmanager
def airflow_server(home: Path, config_path: Path, python: str | None = None,
                   scheduler: bool = False) -> Iterator[Server]:
    """Airflow 3 on SQLite: ``db migrate``, the DAG from ``build_dag`` serialized, the API server
    (simple auth manager, user ``ctloop`` whose password is in a file); the scheduler and DAG processor
    too when ``scheduler`` (runs then execute)."""
    bin_ = ensure_venv("airflow")
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    (home / "dags" / "ctloop_dag.py").write_text(AIRFLOW_DAG.format(config=str(config_path), python=python))
    (home / "passwords.json").write_text(json.dumps({"ctloop": "airflow-test-pw"}))
    (home / "password").write_text("airflow-test-pw\n")
    port = free_port()
    env = _env({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ctloop:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": hashlib.sha256(str(home).encode()).hexdigest(),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    })
    t0 = time.monotonic()
    for cmd in (["db", "migrate"], ["dags", "reserialize"]):
        out = subprocess.run([str(bin_ / "airflow"), *cmd], env=env, cwd=home, capture_output=True, text=True)
        assert out.returncode == 0, f"airflow {' '.join(cmd)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(managed(
            [str(bin_ / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            home / "api-server.log", env=env))
        if scheduler:
            for part in ("scheduler", "dag-processor"):
                stack.enter_context(managed([str(bin_ / "airflow"), part], home / f"{part}.log", env=env))
        _wait_up(f"http://127.0.0.1:{port}/api/v2/version", api, home / "api-server.log", "airflow api-server")
        TIMINGS["airflow_start_s"] = round(time.monotonic() - t0, 1)
        yield Server("airflow", f"http://127.0.0.1:{port}", home, {
            "endpoint": f"http://127.0.0.1:{port}", "api_version": "v2", "dag_id": "ctloop_training",
            "username": "ctloop", "password_file": str(home / "password"),
        })


@contextlib.contextmanager
def airflow2_server(home: Path, config_path: Path) -> Iterator[Server]:
    """Airflow 2 (REST v1) on SQLite: ``db migrate``, user ``ctloop`` (basic auth), the DAG from
    ``build_dag`` serialized, the webserver (one worker)."""
    bin_ = ensure_venv("airflow2")
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    (home / "dags" / "ctloop_dag.py").write_text(AIRFLOW_DAG.format(config=str(config_path), python=None))
    (home / "password").write_text("airflow2-test-pw\n")
    port = free_port()
    env = _env({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
        "AIRFLOW__WEBSERVER__WORKERS": "1",
        "AIRFLOW__WEBSERVER__SECRET_KEY": hashlib.sha256(str(home).encode()).hexdigest(),
    })
    t0 = time.monotonic()
    for cmd in (["db", "migrate"],
                ["users", "create", "-u", "ctloop", "-p", "airflow2-test-pw", "-r", "Admin", "-f", "ct", "-l",
                 "loop", "-e", "ctloop@example.invalid"],
                ["dags", "reserialize"]):
        out = subprocess.run([str(bin_ / "airflow"), *cmd], env=env, cwd=home, capture_output=True, text=True)
        assert out.returncode == 0, f"airflow {' '.join(cmd)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    with managed([str(bin_ / "airflow"), "webserver", "--hostname", "127.0.0.1", "--port", str(port)],
                 home / "webserver.log", env=env) as web:
        _wait_up(f"http://127.0.0.1:{port}/health", web, home / "webserver.log", "airflow 2 webserver")
        TIMINGS["airflow2_start_s"] = round(time.monotonic() - t0, 1)
        yield Server("airflow", f"http://127.0.0.1:{port}", home, {
            "endpoint": f"http://127.0.0.1:{port}", "api_version": "v1", "dag_id": "ctloop_training",
            "username": "ctloop", "password_file": str(home / "password"),
        })


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[Server]:
    """``prefect server start`` (SQLite, UI off) with basic auth ``ctloop:<password file>``."""
    bin_ = ensure_venv("prefect")
    home.mkdir(parents=True, exist_ok=True)
    (home / "password").write_text("prefect-test-pw\n")
    port = free_port()
    env = _env({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_AUTH_STRING": "ctloop:prefect-test-pw",
        "PREFECT_API_AUTH_STRING": "ctloop:prefect-test-pw",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
    })
    t0 = time.monotonic()
    with managed([str(bin_ / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                 home / "server.log", env=env) as proc:
        _wait_up(f"http://127.0.0.1:{port}/api/health", proc, home / "server.log", "prefect server")
        TIMINGS["prefect_start_s"] = round(time.monotonic() - t0, 1)
        yield Server("prefect", f"http://127.0.0.1:{port}/api", home, {
            "endpoint": f"http://127.0.0.1:{port}/api", "deployment": "ctloop-training/ctloop",
            "username": "ctloop", "password_file": str(home / "password"),
        })


def prefect_deployment(server: Server, config_path: Path) -> str:
    """Register flow ``ctloop-training`` and its deployment ``ctloop`` (default ``config_path``) through
    the REST API, as ``prefect deploy`` would; returns the deployment id."""
    auth = ("ctloop", "prefect-test-pw")
    with httpx.Client(base_url=server.url, auth=auth, timeout=30) as c:
        flow = c.post("/flows/", json={"name": "ctloop-training"})
        flow.raise_for_status()
        body = {"name": "ctloop", "flow_id": flow.json()["id"], "parameters": {"config_path": str(config_path)},
                "entrypoint": "ctloop/orchestrators/prefect.py:training_flow"}
        for _ in range(30):  # a server still finishing its start-up answers 503: wait (bounded), not fail
            dep = c.post("/deployments/", json=body)
            if dep.status_code != 503:
                break
            time.sleep(1.0)
        dep.raise_for_status()
        return str(dep.json()["id"])


DAGSTER_DEFS = """\
import dagster as dg

from ctloop.orchestrators.dagster import CtloopResource, training_job

defs = dg.Definitions(jobs=[training_job],
                      resources={{"ctloop": CtloopResource(config_path={config!r}, python={python!r})}})
"""


@contextlib.contextmanager
def dagster_server(home: Path, config_path: Path, python: str | None = None,
                   daemon: bool = False) -> Iterator[Server]:
    """The Dagster webserver with code location ``ctloop`` (``training_job``); runs stay queued unless
    ``daemon`` (then ``dagster dev`` style: the daemon dequeues and launches them)."""
    bin_ = ensure_venv("dagster")
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    (home / "defs.py").write_text(DAGSTER_DEFS.format(config=str(config_path), python=python))
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: defs.py\n      location_name: ctloop\n")
    (home / "dagster_home" / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    port = free_port()
    env = _env({"DAGSTER_HOME": str(home / "dagster_home")})
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        web = stack.enter_context(managed(
            [str(bin_ / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(home / "workspace.yaml")],
            home / "webserver.log", env=env))
        if daemon:
            stack.enter_context(managed([str(bin_ / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")],
                                        home / "daemon.log", env=env))
        _wait_up(f"http://127.0.0.1:{port}/server_info", web, home / "webserver.log", "dagster webserver")
        TIMINGS["dagster_start_s"] = round(time.monotonic() - t0, 1)
        yield Server("dagster", f"http://127.0.0.1:{port}", home, {
            "endpoint": f"http://127.0.0.1:{port}", "job": "ctloop_training", "repository_location": "ctloop",
        })


PREFECT_SERVE = """\
import sys

from ctloop.orchestrators.prefect import training_flow

if __name__ == "__main__":  # the runner's worker processes import this module again (spawn)
    training_flow.serve(name="ctloop", parameters={"config_path": sys.argv[1], "python": sys.argv[2]})
"""


@contextlib.contextmanager
def prefect_serve(server: Server, config_path: Path, python: str) -> Iterator[None]:
    """``training_flow.serve(...)`` in the Prefect venv: creates deployment ``ctloop-training/ctloop``
    and runs its flow runs (each step with ``python``, the interpreter that has ctloop's dependencies)."""
    bin_ = ensure_venv("prefect")
    script = server.home / "serve.py"
    script.write_text(PREFECT_SERVE)
    env = _env({
        "PREFECT_HOME": str(server.home),
        "PREFECT_API_URL": server.url,
        "PREFECT_API_AUTH_STRING": "ctloop:prefect-test-pw",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    })
    with managed([str(bin_ / "python"), str(script), str(config_path), python], server.home / "serve.log",
                 env=env) as proc:
        def deployed() -> bool:
            if proc.poll() is not None:
                raise AssertionError((server.home / "serve.log").read_text()[-3000:])
            r = httpx.get(f"{server.url}/deployments/name/ctloop-training/ctloop", auth=("ctloop", "prefect-test-pw"))
            return r.status_code == 200

        wait_for(deployed, 120, "the served prefect deployment", interval=0.5)
        yield
