"""What the orchestrator submitters share: credentials from a file or env var, one HTTP client that turns
transport and auth failures into :class:`~ctloop.errors.SubmitError`, the trigger's parameters, and
:class:`ApiSubmitter`, the submitter skeleton (config block, client, poll, cancel, close)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ctloop.config import (
    AirflowTriggerConfig,
    DagsterTriggerConfig,
    OrchestratorAuth,
    PrefectTriggerConfig,
    ProjectConfig,
)
from ctloop.errors import ConfigError, SubmitError
from ctloop.triggers.submitters import FINAL_STATUSES, RunRequest, RunUpdate

RUN_ID_TAG = "ctloop/run-id"


def read_secret(file: str | None, env: str | None, where: str) -> str | None:
    """A secret from ``file`` (stripped) or the environment variable ``env``; ``None`` when neither is set.

    Raises:
        ConfigError: When the file cannot be read or is empty, or the variable is unset or empty.
    """
    if file:
        try:
            value = Path(file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}_file {file}: cannot read it ({exc})") from exc
        if not value:
            raise ConfigError(f"{where}_file {file}: the file is empty")
        return value
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{where}_env: environment variable {env} is unset or empty")
        return value
    return None


Credentials = tuple[str | None, tuple[str, str] | None]
OrchestratorBlock = AirflowTriggerConfig | PrefectTriggerConfig | DagsterTriggerConfig


def auth_headers(auth: OrchestratorAuth, section: str) -> Credentials:
    """The bearer token, or the (user, password) pair, that ``auth`` names (token first), read now (so a
    rotated Secret is picked up by the next request)."""
    token = read_secret(auth.token_file, auth.token_env, f"{section}.token")
    if token:
        return token, None
    password = read_secret(auth.password_file, auth.password_env, f"{section}.password")
    if password is not None and not auth.username:
        raise ConfigError(f"{section}.username: required with {section}.password_file/password_env")
    if auth.username and password is None:
        raise ConfigError(f"{section}.password_file or password_env: required with {section}.username")
    return None, (auth.username, password) if auth.username and password is not None else None


def require_endpoint(endpoint: str | None, section: str) -> str:
    """The endpoint, or a :class:`ConfigError` saying where to set it."""
    if not endpoint:
        raise ConfigError(f"triggers.submitter is {section.split('.')[-1]!r} but {section}.endpoint is not set")
    return endpoint.rstrip("/")


def run_parameters(cfg: ProjectConfig, req: RunRequest) -> dict[str, Any]:
    """What every orchestrator run receives: the run id, the trigger (cause, reason, idempotency key,
    episode), its JSON form for ``register``, and the data window the run trains on."""
    return {
        "run_id": req.run_id,
        "trigger": req.trigger,
        "trigger_json": json.dumps(req.trigger, sort_keys=True),
        "cutoff_date": "",
        "window_days": cfg.data.window_days,
    }


class Api:
    """One orchestrator API: an ``httpx.Client`` whose failures become :class:`SubmitError`.

    Args:
        name: The orchestrator, for messages (``airflow``, ``prefect``, ``dagster``).
        base_url: Where the API lives.
        timeout: Seconds per request.
        creds: Returns the bearer token or (user, password) for each request (``None``: no auth).
        token_header: Also send the bearer token in this header (e.g. Dagster+'s API token header).
        transport: An ``httpx`` transport (tests).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout: float,
        creds: Callable[[], Credentials] | None = None,
        token_header: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.creds = creds
        self.token_header = token_header
        self.client = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)

    def _auth(self, kw: dict[str, Any]) -> dict[str, Any]:
        if self.creds is None:
            return kw
        try:
            token, basic = self.creds()
        except ConfigError as exc:
            raise SubmitError(f"{self.name}: cannot read its credentials ({exc})") from exc
        headers: dict[str, str] = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
            if self.token_header:
                headers[self.token_header] = token
        elif basic is not None:
            kw["auth"] = basic
        return {**kw, "headers": headers}

    def request(self, method: str, path: str, ok: tuple[int, ...] = (), **kw: Any) -> httpx.Response:
        """Send one request; a transport error, 401/403 or another non-2xx status (unless in ``ok``)
        raises :class:`SubmitError` naming the orchestrator, URL and status."""
        where = f"{self.name} {self.base_url}{path}"
        kw = self._auth(kw)
        try:
            resp = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise SubmitError(f"{where}: unreachable ({type(exc).__name__}: {exc})") from exc
        if resp.status_code in ok or resp.is_success:
            return resp
        body = resp.text[:300].replace("\n", " ")
        if resp.status_code in (401, 403):
            raise SubmitError(
                f"{where}: authentication failed (HTTP {resp.status_code}: {body}); check "
                f"triggers.{self.name}'s token_file/token_env or username/password_file"
            )
        raise SubmitError(f"{where}: HTTP {resp.status_code} ({body})")

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """:meth:`request` and decode the JSON body."""
        resp = self.request(method, path, **kw)
        try:
            return resp.json()
        except ValueError as exc:
            raise SubmitError(f"{self.name} {self.base_url}{path}: not JSON ({resp.text[:200]!r})") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class ApiSubmitter:
    """What the Airflow, Prefect and Dagster submitters share: ``triggers.<name>``'s endpoint and
    credentials checked at start, an :class:`Api` client, and poll/cancel/close built on ``lookup``.

    Args:
        cfg: The project config.
        block: The orchestrator's block (``cfg.triggers.<name>``).
        transport: An ``httpx`` transport (tests).
        api_path: Appended to the endpoint for the API's base URL (e.g. ``/api/v2``).
        token_header: Also send the bearer token in this header (see :class:`Api`).
    """

    name: str

    def __init__(self, cfg: ProjectConfig, block: OrchestratorBlock, transport: httpx.BaseTransport | None,
                 api_path: str = "", token_header: str | None = None) -> None:
        self.cfg = cfg
        self.section = f"triggers.{self.name}"
        self._block = block
        self.root = require_endpoint(block.endpoint, self.section)
        auth_headers(block, self.section)  # fail fast on a missing credential
        self.api = Api(self.name, f"{self.root}{api_path}", block.timeout_seconds, creds=self._creds,
                       token_header=token_header, transport=transport)

    def _creds(self) -> Credentials:
        """The block's credentials, read for each request."""
        return auth_headers(self._block, self.section)

    def lookup(self, req: RunRequest) -> RunUpdate | None:
        """The run's status if a run with req.run_id already exists on the orchestrator, else None."""
        raise NotImplementedError

    def _create(self, req: RunRequest) -> RunUpdate:
        """Start the run on the orchestrator (``submit`` has found none)."""
        raise NotImplementedError

    def _stop(self, external_id: str) -> RunUpdate | None:
        """Ask the orchestrator to stop the run with this id; the run's status after, when the answer
        tells it (else :meth:`cancel` looks it up)."""
        raise NotImplementedError

    def submit(self, req: RunRequest) -> RunUpdate:
        """Start the run unless one with this run id exists on the orchestrator (then report that one)."""
        existing = self.lookup(req)
        if existing is not None:
            return existing
        return self._create(req)

    def poll(self, req: RunRequest, external_id: str | None) -> RunUpdate | None:
        """The run's status (``None`` while the orchestrator is unreachable)."""
        try:
            return self.lookup(req)
        except SubmitError:
            return None

    def cancel(self, req: RunRequest) -> RunUpdate | None:
        """Stop the run and report it as it is then; a run that already ended is reported as it ended,
        untouched; ``None`` when there is no such run."""
        run = self.lookup(req)
        if run is None or run.external_id is None:
            return None
        if run.run_status in FINAL_STATUSES:
            return run
        return self._stop(run.external_id) or self.lookup(req)

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()
