"""The routes the model server mounts: V1/V2 inference, model metadata, health and metrics, nothing else.

KServe's own ``RESTServer`` also mounts ``:explain`` and the model-repository ``load``/``unload`` routes;
an unauthenticated ``unload`` takes the model offline. ctloop mounts the repository routes only when
``serving.repository_api`` is set, and then behind the bearer token in ``serving.token_file``. Readiness
(``/v2/health/ready``) answers 200 only while the served model is registered, loaded and ready.
"""

# no ``from __future__ import annotations``: FastAPI reads the handlers' annotations (``Request``) at runtime
from typing import Any

from ctloop.auth import bearer_ok

REPOSITORY_ROUTES = ("/v2/repository/models/{model_name}/load", "/v2/repository/models/{model_name}/unload")


def model_can_answer(dataplane: Any, model: Any) -> bool:
    """True while ``model`` is the one KServe routes to and it has a model loaded and ready."""
    try:
        registered = dataplane.model_registry.get_model(model.name)
    except Exception:  # noqa: BLE001 - any lookup failure means "not routable"
        return False
    return registered is model and bool(model.ready) and getattr(model, "_served", None) is not None


def register_routes(app: Any, dataplane: Any, repository: Any, model: Any, *, metrics_handler: Any,
                    repository_token: str | None) -> None:
    """Mount ctloop's routes on the KServe FastAPI ``app``.

    Args:
        app: The FastAPI app.
        dataplane: KServe's ``DataPlane``.
        repository: KServe's ``ModelRepositoryExtension``.
        model: The served :class:`~ctloop.serving.model.CtloopModel`.
        metrics_handler: The ``GET /metrics`` handler.
        repository_token: The bearer token guarding the repository routes; ``None`` leaves them unmounted.
    """
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse
    from kserve.protocol.rest.v1_endpoints import V1Endpoints
    from kserve.protocol.rest.v2_endpoints import V2Endpoints

    v1 = V1Endpoints(dataplane, repository)
    v2 = V2Endpoints(dataplane=dataplane, model_repository_extension=repository)

    async def ready() -> JSONResponse:
        ok = model_can_answer(dataplane, model)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    app.router.add_route("/metrics", metrics_handler, methods=["GET"])  # a plain Starlette handler
    root = APIRouter()
    root.add_api_route("/", dataplane.live, methods=["GET"])
    app.include_router(root)

    r1 = APIRouter(prefix="/v1", tags=["V1"])
    r1.add_api_route("/models", v1.models, methods=["GET"])
    r1.add_api_route("/models/{model_name}", v1.model_ready, methods=["GET"])
    r1.add_api_route("/models/{model_name}:predict", v1.predict, response_model=None, methods=["POST"])
    app.include_router(r1)

    r2 = APIRouter(prefix="/v2", tags=["V2"])
    r2.add_api_route("", v2.metadata, methods=["GET"])
    r2.add_api_route("/health/live", v2.live, methods=["GET"])
    r2.add_api_route("/health/ready", ready, methods=["GET"])
    r2.add_api_route("/models", v2.models, methods=["GET"])
    r2.add_api_route("/models/{model_name}", v2.model_metadata, methods=["GET"])
    r2.add_api_route("/models/{model_name}/versions/{model_version}", v2.model_metadata, methods=["GET"],
                     include_in_schema=False)
    r2.add_api_route("/models/{model_name}/ready", v2.model_ready, methods=["GET"])
    r2.add_api_route("/models/{model_name}/versions/{model_version}/ready", v2.model_ready, methods=["GET"],
                     include_in_schema=False)
    r2.add_api_route("/models/{model_name}/infer", v2.infer, response_model=None, methods=["POST"])
    r2.add_api_route("/models/{model_name}/versions/{model_version}/infer", v2.infer, response_model=None,
                     methods=["POST"], include_in_schema=False)
    app.include_router(r2)

    if repository_token is None:
        return
    token = repository_token

    def _denied(request: Request) -> JSONResponse | None:
        if bearer_ok(request.headers.get("authorization"), token):
            return None
        return JSONResponse({"error": "missing or invalid bearer token (serving.token_file)"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="ctloop-serving"'})

    async def load(model_name: str, request: Request) -> Any:
        return _denied(request) or await v2.load(model_name)

    async def unload(model_name: str, request: Request) -> Any:
        return _denied(request) or await v2.unload(model_name)

    rr = APIRouter(prefix="/v2", tags=["V2"])
    rr.add_api_route("/repository/models/{model_name}/load", load, methods=["POST"])
    rr.add_api_route("/repository/models/{model_name}/unload", unload, methods=["POST"])
    app.include_router(rr)
