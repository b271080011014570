"""KServe's gRPC server, bound to ``serving.host`` and without the model-repository RPCs.

KServe 0.21's ``GRPCServer.start`` listens on ``[::]:port`` (every interface) and serves
``RepositoryModelLoad``/``RepositoryModelUnload`` without authentication. :func:`grpc_server_class`
returns a subclass that listens on ``host:port`` and answers those RPCs with ``UNIMPLEMENTED``.
"""

from __future__ import annotations

from typing import Any


class RepositoryDisabled:
    """A model-repository extension that refuses every load and unload (gRPC has no bearer token)."""

    async def load(self, model_name: str) -> dict[str, Any]:
        """Refuse."""
        raise NotImplementedError(f"model {model_name!r}: the model repository API is not served over gRPC")

    async def unload(self, model_name: str) -> dict[str, Any]:
        """Refuse."""
        raise NotImplementedError(f"model {model_name!r}: the model repository API is not served over gRPC")


def listen_address(host: str, port: int) -> str:
    """``host:port`` in gRPC's form (IPv6 literals bracketed)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def grpc_server_class(base: Any, host: str) -> Any:
    """A subclass of KServe's ``GRPCServer`` that binds ``host`` and refuses repository RPCs."""
    from concurrent import futures

    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
    from kserve.protocol.grpc.servicer import InferenceServicer

    class CtloopGRPCServer(base):  # type: ignore[misc, valid-type]
        async def start(self, max_workers: int) -> None:
            servicer = InferenceServicer(self._data_plane, RepositoryDisabled())  # type: ignore[arg-type]
            self._server = aio.server(
                futures.ThreadPoolExecutor(max_workers=max_workers),
                interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
                options=[("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                         ("grpc.max_receive_message_length",
                          self._kwargs.get("grpc_max_receive_message_length"))])
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            self._server.add_insecure_port(listen_address(host, self._port))
            await self._server.start()
            await self._server.wait_for_termination()

    return CtloopGRPCServer
