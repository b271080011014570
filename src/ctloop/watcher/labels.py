"""``POST /labels`` on the watcher: delayed labels joined to stored predictions.

Same bearer token as ``/trigger`` (``triggers.token_file``). Replies ``200`` with the counts
``matched``/``unknown``/``duplicate``/``expired``/``invalid``; ``400`` naming the row index for a label
that is not 0/1 or a missing id (nothing recorded); ``401`` without a valid token; ``413`` over
``monitoring.labels.max_body_bytes``. A batch is recorded in one transaction: all of it or none.
"""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctloop.errors import ConfigError, LabelError, StoreError
from ctloop.quality.labels import parse_labels_body
from ctloop.quality.monitor import QualityMonitor


def check_bearer(request: Request, token_file: str) -> JSONResponse | None:
    """``None`` when the request carries the token in ``token_file``; else the 401/503 reply."""
    from ctloop.triggers.service import read_token

    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return JSONResponse({"error": "missing bearer token (Authorization: Bearer <token from "
                                      "triggers.token_file>)"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="ctloop"'})
    try:
        expected = read_token(token_file)
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return JSONResponse({"error": "invalid bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="ctloop"'})
    return None


def label_routes(quality: QualityMonitor, token_file: str, max_body_bytes: int) -> list[Route]:
    """The ``POST /labels`` route for the watcher app."""
    from ctloop.watcher.app import _TooLarge, read_limited

    async def labels(request: Request) -> Response:
        denied = check_bearer(request, token_file)
        if denied is not None:
            return denied
        try:
            body = await read_limited(request, max_body_bytes)
        except _TooLarge:
            return JSONResponse({"error": f"body larger than monitoring.labels.max_body_bytes "
                                          f"({max_body_bytes} bytes); send smaller batches"}, status_code=413)
        try:
            parsed = parse_labels_body(body, quality.model)
            result = await run_in_threadpool(quality.apply_labels, parsed)
        except LabelError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except StoreError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(result.to_dict())

    return [Route("/labels", labels, methods=["POST"])]
