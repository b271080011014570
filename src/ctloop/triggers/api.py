"""HTTP endpoints: ``POST /alerts`` (Alertmanager webhook v4), ``POST /trigger``, ``GET /triggers/status``,
``POST /triggers/{trigger_id}/cancel``.

Mount them in the watcher with ``build_app(..., extra_routes=routes(service))``; :func:`build_trigger_app`
is a standalone ASGI app with the same routes plus ``GET /status`` and ``GET /metrics``.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctloop.errors import CancelConflictError, ConfigError, SubmitError, TriggerError, TriggerNotFoundError
from ctloop.triggers.payloads import (
    PayloadError,
    parse_cancel_request,
    parse_trigger_id,
    parse_trigger_request,
    parse_webhook,
    webhook_triggers,
)
from ctloop.triggers.service import TriggerService, read_token
from ctloop.triggers.sources import schedule_trigger, volume_trigger


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _check_token(svc: TriggerService, request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise _HttpError(401, "missing bearer token (Authorization: Bearer <token from triggers.token_file>)")
    try:
        expected = read_token(svc.cfg.triggers.token_file)
    except ConfigError as exc:
        raise _HttpError(503, str(exc)) from exc
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise _HttpError(401, "invalid bearer token")


async def _body(svc: TriggerService, request: Request) -> bytes:
    limit = svc.cfg.triggers.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _HttpError(413, f"body of {declared} bytes exceeds triggers.max_body_bytes={limit}")
        except ValueError as exc:
            raise _HttpError(400, f"bad Content-Length {declared!r}") from exc
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _HttpError(413, f"body exceeds triggers.max_body_bytes={limit}")
    return bytes(buf)


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="ctloop"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _guarded(svc: TriggerService, handler: Callable[[Request, bytes], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that checks the bearer token and reads the body (within ``triggers.max_body_bytes``)
    before ``handler(request, body)``; a failed check answers with its status."""

    async def endpoint(request: Request) -> Response:
        try:
            _check_token(svc, request)
            body = await _body(svc, request)
        except _HttpError as exc:
            return _error(exc.status, exc.message)
        return await handler(request, body)

    return endpoint


def routes(svc: TriggerService) -> list[Route]:
    """The trigger routes for the watcher's Starlette app."""

    async def alerts(_request: Request, body: bytes) -> Response:
        try:
            hook = parse_webhook(body)
        except PayloadError as exc:
            return _error(400, str(exc))
        decisions = [await run_in_threadpool(svc.handle, t) for t in webhook_triggers(hook, svc.cfg.name)]
        return JSONResponse({"decisions": [d.to_dict() for d in decisions]})

    async def trigger(_request: Request, body: bytes) -> Response:
        try:
            req = parse_trigger_request(body)
            now = svc.clock()
            model = req.model or svc.cfg.name
            if req.source == "schedule":
                t = schedule_trigger(svc.cfg, now, reason=req.reason)
            elif req.source == "volume":
                t_or_none = await run_in_threadpool(volume_trigger, svc.cfg)
                if t_or_none is None:
                    return JSONResponse(
                        {
                            "decision": "not_triggered",
                            "reason": "fewer new labelled rows than triggers.volume_rows "
                            "(or volume_rows not set)",
                        }
                    )
                t = t_or_none
            else:
                from ctloop.triggers.policy import Trigger

                episode = req.key or f"{req.reason}|{now.strftime('%Y-%m-%dT%H:%M')}"
                t = Trigger(
                    "manual",
                    model,
                    episode=episode,
                    reason=req.reason or "manual trigger",
                    detail={"client_key": req.key} if req.key else {},
                )
            if req.model and req.source != "manual":
                t = type(t)(t.source, req.model, t.episode, t.reason, t.resolved, t.detail)
        except (PayloadError, TriggerError) as exc:
            return _error(400, str(exc))
        decision = await run_in_threadpool(svc.handle, t)
        return JSONResponse(decision.to_dict(), status_code=202 if decision.fired else 200)

    async def cancel(request: Request, body: bytes) -> Response:
        raw_id = str(request.path_params["trigger_id"])
        try:
            trigger_id = parse_trigger_id(raw_id, f"POST /triggers/{raw_id[:40]}/cancel")
            reason = parse_cancel_request(body).reason or f"POST /triggers/{trigger_id}/cancel (no reason given)"
        except PayloadError as exc:
            return _error(400, str(exc))
        try:
            row = await run_in_threadpool(svc.cancel, trigger_id, reason)
        except TriggerNotFoundError:
            return _error(404, f"no trigger #{trigger_id} in the ledger (see `ctloop triggers`)")
        except CancelConflictError as exc:
            return _error(409, str(exc))
        except SubmitError as exc:
            return _error(502, f"trigger #{trigger_id}: cannot stop its run ({exc}); the ledger is unchanged")
        return JSONResponse({**row.to_dict(), "submitter": svc.submitter.name})

    async def status(request: Request) -> Response:
        try:
            _check_token(svc, request)  # the ledger's rows, path and idempotency keys are not public
        except _HttpError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse(await run_in_threadpool(svc.status), headers={"Cache-Control": "no-store"})

    return [
        Route("/alerts", _guarded(svc, alerts), methods=["POST"]),
        Route("/trigger", _guarded(svc, trigger), methods=["POST"]),
        Route("/triggers/status", status, methods=["GET"]),
        Route("/triggers/{trigger_id}/cancel", _guarded(svc, cancel), methods=["POST"]),
    ]


def build_trigger_app(svc: TriggerService, start_loop: bool = True) -> Starlette:
    """A standalone ASGI app serving the trigger routes, ``GET /status`` and ``GET /metrics``.

    The service's background loop runs for the app's lifetime when ``start_loop`` is true.
    """

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(svc.registry), media_type=CONTENT_TYPE_LATEST)

    async def status(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(svc.public_status))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if start_loop:
            await run_in_threadpool(svc.start)
        try:
            yield {}
        finally:
            await run_in_threadpool(svc.stop)

    return Starlette(
        routes=[
            *routes(svc),
            Route("/status", status, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
