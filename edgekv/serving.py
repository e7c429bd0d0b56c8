"""What every edgekv gRPC server shares: health, reflection, limits, memory, shutdown.

Theory of operation: :class:`GrpcNode` makes a ``grpc.aio`` server with every
method behind the one error boundary (:class:`~edgekv.rpc.ErrorBoundary`),
and standard health checking and reflection registered; :class:`GrpcNode` starts
it on an address (port 0 picks a free port; TLS when given a certificate and
its key, :mod:`edgekv.tls`), flips health to SERVING, and on
:meth:`GrpcNode.stop` flips it to NOT_SERVING before a graceful stop, so load
balancers and launchers see the node leave before it refuses calls.

The largest message a node receives is set by its role: central's is a
100 MiB bulk write (``limits.MAX_MESSAGE_BYTES``), an edge's a Put of a
25 MiB value (``limits.MAX_EDGE_REQUEST_BYTES``). gRPC refuses a larger one
(RESOURCE_EXHAUSTED) from its length prefix, before receiving it, so eight
110 MiB puts at an edge cost it nothing; at central they must be received to
be refused. Sends keep the general limit (an edge's answers may be a bulk
read's). While it serves, a node gives the memory it frees back to the
system (:class:`~edgekv.memory.FreedMemoryReturn`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector

from edgekv.channels import SERVER_KEEPALIVE_OPTIONS
from edgekv.core import limits
from edgekv.memory import FreedMemoryReturn
from edgekv.rpc import CHANNEL_OPTIONS, ErrorBoundary
from edgekv.tls import ServerTls

RECEIVE_LIMIT_OPTION = "grpc.max_receive_message_length"


def server_options(max_receive_bytes: int) -> list[tuple[str, int]]:
    """The channel options of a server that receives messages of at most ``max_receive_bytes``.

    (grpc takes the first of two options of one name: the general limit is left out.)
    """
    general = [option for option in CHANNEL_OPTIONS if option[0] != RECEIVE_LIMIT_OPTION]
    # grpc turns SO_REUSEPORT on by default, which lets a second server bind a port
    # another one serves and silently split the clients between them; refuse instead.
    # Clients ping every connection every 2 s to find a vanished server (edgekv.channels).
    return [
        *general,
        (RECEIVE_LIMIT_OPTION, max_receive_bytes),
        ("grpc.so_reuseport", 0),
        *SERVER_KEEPALIVE_OPTIONS,
    ]


class GrpcNode:
    def __init__(
        self, service_names: Sequence[str], max_receive_bytes: int = limits.MAX_MESSAGE_BYTES
    ) -> None:
        self.boundary = ErrorBoundary()
        self.server = grpc.aio.server(
            interceptors=[self.boundary], options=server_options(max_receive_bytes)
        )
        self.memory = FreedMemoryReturn()
        self._health = health.aio.HealthServicer()
        self._service_names = list(service_names)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self.server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = 0
        # The plain health port (--health-listen), if any, and its bound port.
        self._health_server: Any = None
        self.health_port = 0

    async def start(
        self, listen: str, tls: ServerTls | None = None, health_listen: str | None = None
    ) -> int:
        """Bind ``listen`` (HOST:PORT; port 0 allowed) and serve, over TLS with ``tls``;
        return the bound port. With ``health_listen``, also serve the health service alone
        there, in plain gRPC — what probes that cannot speak TLS reach — sharing its state
        (a stopping node answers NOT_SERVING on both)."""
        if health_listen is not None:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            self.health_port = _bind(self._health_server, health_listen)
            await self._health_server.start()
        try:
            if tls is None:
                self.port = self.server.add_insecure_port(listen)
            else:
                credentials = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
                self.port = self.server.add_secure_port(listen, credentials)
        except RuntimeError:
            raise OSError(
                f"cannot listen on {listen}: the port is in use, or the host is not "
                "an address of this machine"
            ) from None
        await self.server.start()
        self.memory.start()
        for name in ("", *self._service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace_s: float = 5.0) -> None:
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self._health_server is not None:
            await self._health_server.stop(0)
        await self.memory.stop()


def _bind(server: Any, listen: str) -> int:
    """Bind a plain port; one line when it cannot be had."""
    try:
        return int(server.add_insecure_port(listen))
    except RuntimeError:
        raise OSError(
            f"cannot listen on {listen}: the port is in use, or the host is not "
            "an address of this machine"
        ) from None


def serve_metrics(listen: str, collector: Collector) -> MetricsServer:
    """Serve ``collector`` on ``listen`` (HOST:PORT) /metrics, from a thread."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot serve metrics on {listen}: {exc}") from None
    return MetricsServer(server)


class MetricsServer:
    """The HTTP server of :func:`serve_metrics`; :meth:`stop` frees its port."""

    def __init__(self, server: Any) -> None:
        self._server = server

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    async def stop(self) -> None:
        # shutdown() waits for the serving thread's poll loop; keep the event loop free.
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()


def install_stop_signals(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM and SIGINT (once each is enough)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)


def host_port(listen: str, port: int) -> str:
    """The address clients should dial, given the listen address and bound port."""
    host = listen.rpartition(":")[0] or "127.0.0.1"
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"
