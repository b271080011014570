"""The model server main: a :class:`CtloopModel` behind ``kserve.ModelServer``.

KServe 0.21 parses ``sys.argv`` when ``kserve`` is first imported and binds its REST server to
``0.0.0.0``; :func:`~ctloop.serving._kserve.import_kserve` imports it with a neutral argv, and
:func:`serve` installs a small ``RESTServer`` subclass that binds ``serving.host``, mounts only ctloop's
routes (:mod:`ctloop.serving.routes`), adds ctloop's middleware, error handlers and a ``/metrics`` that
also exposes ctloop's own registry, and leaves per-request logging off unless ``serving.request_logging``
is set; the gRPC server (:mod:`ctloop.serving.grpc_server`) binds ``serving.host`` too.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ctloop.config import ProjectConfig
from ctloop.errors import ModelError, RegistryError
from ctloop.serving._kserve import import_kserve

log = logging.getLogger("ctloop.serving")


def resolve_model_dir(model_dir: str) -> Path:
    """A local folder for ``model_dir``: a path, or an fsspec URI downloaded to a temporary folder."""
    if "://" not in model_dir or model_dir.startswith("file://"):
        return Path(model_dir.removeprefix("file://"))
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(model_dir)
        target = Path(tempfile.mkdtemp(prefix="ctloop-model-")) / "model"
        fs.get(root.rstrip("/"), str(target), recursive=True)
    except (ImportError, ValueError, OSError) as exc:
        raise ModelError(f"--model-dir {model_dir!r}: cannot download the model ({exc})") from exc
    return target


class _CombinedRegistry:
    """KServe's global registry plus ctloop's, as one collector for ``/metrics``."""

    def __init__(self, *registries: Any) -> None:
        self.registries = registries

    def collect(self) -> Any:
        for r in self.registries:
            yield from r.collect()


def _field_path(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "InferenceRequest")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _shared_socket(host: str, port: int) -> socket.socket:
    """A listening address several worker processes bind at once (``SO_REUSEPORT``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _exposed(metrics_registry: CollectorRegistry, multiprocess_dir: str | None) -> Any:
    """What ``/metrics`` shows: KServe's and ctloop's registries, or every worker's samples summed."""
    from prometheus_client import REGISTRY

    if multiprocess_dir is None:
        return _CombinedRegistry(REGISTRY, metrics_registry)
    from prometheus_client import multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=multiprocess_dir)
    return merged


def _rest_server_class(base: Any, *, host: str, quiet: bool, middleware_kwargs: dict[str, Any],
                       metrics_registry: CollectorRegistry, model: Any,
                       repository_token: str | None = None, reuse_port: bool = False,
                       multiprocess_dir: str | None = None) -> Any:
    from fastapi import Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve.errors import InvalidInput
    from prometheus_client import exposition

    from ctloop.serving.middleware import ServingMiddleware
    from ctloop.serving.routes import register_routes

    combined = _exposed(metrics_registry, multiprocess_dir)

    async def metrics_handler(request: Request) -> Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(combined), headers={"content-type": content_type})

    async def validation_handler(_: Any, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        msgs = []
        for e in errors[:5]:
            if tuple(e.get("loc", ())) == ("body", "bytes"):
                continue  # the raw-bytes alternative of the body union: not the client's intent
            if e.get("type") == "json_invalid":
                msgs.append(f"body: not valid JSON ({e.get('ctx', {}).get('error', e.get('msg'))})")
            else:
                msgs.append(f"{_field_path(e.get('loc', ()))}: {e.get('msg')}")
        return JSONResponse(status_code=400, content={"error": "; ".join(msgs) or str(exc)})

    async def invalid_input_handler(_: Any, exc: Exception) -> JSONResponse:
        msg = str(exc)
        if msg.startswith("Unrecognized request format"):
            msg = f"body: not valid JSON ({msg.split(':', 1)[-1].strip()})"
        log.info("rejected request: %s", msg)
        return JSONResponse(status_code=400, content={"error": msg})

    class CtloopRESTServer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host
            if quiet:
                self.config.access_log = False

        def _add_middlewares(self, app: Any) -> None:
            if not quiet:
                super()._add_middlewares(app)
            else:
                logging.getLogger("uvicorn.access").disabled = True
            app.add_middleware(ServingMiddleware, **middleware_kwargs)

        async def start(self) -> None:
            if not reuse_port:
                await super().start()
                return
            self.create_application()
            await self._server.serve(sockets=[_shared_socket(host, self.config.port)])

        def _register_endpoints(self, app: Any) -> None:
            register_routes(app, self.dataplane, self.model_repository_extension, model,
                            metrics_handler=metrics_handler, repository_token=repository_token)

        def _add_exception_handlers(self, app: Any) -> None:
            super()._add_exception_handlers(app)
            app.add_exception_handler(RequestValidationError, validation_handler)
            app.add_exception_handler(InvalidInput, invalid_input_handler)

    return CtloopRESTServer


def build_model(cfg: ProjectConfig, metrics: Any) -> Any:
    """The served ``kserve.Model``: micro-batching when ``serving.batching.enabled``."""
    from ctloop.serving.model import BatchingCtloopModel, CtloopModel

    kwargs: dict[str, Any] = {"threshold": cfg.serving.threshold,
                              "max_fast_path_delta": cfg.gate.infra.max_fast_path_delta,
                              "id_column": cfg.data.id_column}
    b = cfg.serving.batching
    if b.enabled:
        from ctloop.serving.batching import MicroBatcher

        batcher = MicroBatcher(b.max_batch_size, b.max_wait_us, metrics.batches)
        return BatchingCtloopModel(cfg.name, metrics, batcher, **kwargs)
    return CtloopModel(cfg.name, metrics, **kwargs)


def serve(cfg: ProjectConfig, port: int | None = None, model_dir: str | None = None,
          metrics_registry: CollectorRegistry | None = None, reuse_port: bool = False,
          multiprocess_dir: str | None = None) -> None:
    """Load the model and run the server until SIGTERM/SIGINT.

    Args:
        cfg: The project config.
        port: HTTP port (default ``serving.port``).
        model_dir: A fixed model folder or storage URI (as KServe mounts at ``/mnt/models``); without it
            the registry's champion is served and followed.
        metrics_registry: Where ctloop's metrics go (a fresh registry by default).
        reuse_port: Bind the port shared with other worker processes (``serving.workers``).
        multiprocess_dir: prometheus_client's multiprocess folder when running as one of several workers.

    Raises:
        RegistryError: No champion to serve. ModelError: the model cannot be loaded.
    """
    if cfg.serving.workers > 1 and not reuse_port:
        from ctloop.serving.workers import run_workers

        run_workers(cfg, port, model_dir)
        return
    kserve = import_kserve()
    import kserve.model_server as ks_server

    from ctloop.auth import read_bearer_token
    from ctloop.registry import Registry
    from ctloop.serving.grpc_server import grpc_server_class
    from ctloop.serving.metrics import ServingMetrics
    from ctloop.serving.payload import EventContext, EventEmitter, PayloadLogger
    from ctloop.serving.payload_process import ProcessPayloadLogger
    from ctloop.serving.watcher import ChampionWatcher

    sc = cfg.serving
    metrics_registry = metrics_registry or CollectorRegistry()
    metrics = ServingMetrics.create(metrics_registry)
    model = build_model(cfg, metrics)
    watcher = None
    if model_dir:
        local = resolve_model_dir(model_dir)
        if not model.swap(local, None):
            raise ModelError(f"--model-dir {model_dir!r}: the model failed to load or its smoke prediction "
                             "failed (see the log above); nothing is served")
    else:
        reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
        version = reg.alias("champion")
        if version is None:
            raise RegistryError(f"registry {cfg.registry.uri!r}: model {cfg.name!r} has no champion yet; "
                                "train one with `ctloop run` or pass --model-dir")
        if not model.swap(reg.local_model_dir(version), version):
            raise ModelError(f"registry {cfg.registry.uri!r}: champion version {version} failed to load "
                             "(see the log above); nothing is served")
        watcher = ChampionWatcher(reg, model, sc.poll_seconds)
    model.load()

    payload_logger: EventEmitter | None = None
    if sc.logger.url:
        ctx = EventContext(inferenceservicename=cfg.name, namespace=sc.namespace, component=sc.component)
        events_token = read_bearer_token(cfg.drift.events_token_file, "drift.events_token_file") \
            if cfg.drift.events_token_file else None
        sender = ProcessPayloadLogger if sc.logger.sender == "process" else PayloadLogger
        payload_logger = sender(sc.logger, ctx, metrics, token=events_token).start()

    repository_token = read_bearer_token(sc.token_file, "serving.token_file") \
        if sc.repository_api and sc.token_file else None
    original, original_grpc = ks_server.RESTServer, ks_server.GRPCServer
    ks_server.RESTServer = _rest_server_class(
        original, host=sc.host, quiet=not sc.request_logging, metrics_registry=metrics_registry,
        model=model, repository_token=repository_token, reuse_port=reuse_port, multiprocess_dir=multiprocess_dir,
        middleware_kwargs={"max_body_bytes": sc.max_body_bytes, "metrics": metrics,
                           "payload_logger": payload_logger, "body_timeout_seconds": sc.body_timeout_seconds})
    ks_server.GRPCServer = grpc_server_class(original_grpc, sc.host)
    try:
        server = kserve.ModelServer(http_port=port or sc.port, grpc_port=sc.grpc_port,
                                    enable_grpc=sc.enable_grpc, enable_latency_logging=sc.request_logging,
                                    workers=1)
        if watcher is not None:
            watcher.start()
        log.info("serving %r on http://%s:%s", cfg.name, sc.host, port or sc.port)
        server.start([model])
    finally:
        ks_server.RESTServer, ks_server.GRPCServer = original, original_grpc
        if watcher is not None:
            watcher.stop()
        if payload_logger is not None:
            payload_logger.stop()
