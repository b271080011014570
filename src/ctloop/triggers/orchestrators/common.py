"""What the orchestrator submitters share: credentials from a file or env var, one HTTP client that turns
transport and auth failures into :class:`~ctloop.errors.SubmitError`, and the trigger's parameters."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ctloop.config import OrchestratorAuth, ProjectConfig
from ctloop.errors import ConfigError, SubmitError
from ctloop.triggers.submitters import RunRequest

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
