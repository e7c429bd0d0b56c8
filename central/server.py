"""Running a central store: storage + service + gRPC node, started and stopped as one.

Theory of operation: :func:`start_central` opens the storage named by a URL,
builds the service with the injected clock and its
:class:`~central.service.CentralSettings`, and serves it;
:meth:`CentralServer.stop` stops taking calls, lets running ones finish, then
closes the storage (flushing any group commit in flight), then writes central's
record of the store (:mod:`central.storage.record`) one last time. With
``metrics_listen`` it also serves Prometheus metrics (:mod:`central.metrics`).
Tests start it in-process on port 0; the ``edgekv central`` command runs it
until SIGTERM or SIGINT.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from central.metrics import CentralCollector
from central.service import CentralSettings, CentralStoreService
from central.storage import check_durability, open_storage
from central.storage.base import Durability, Storage
from central.storage.record import RecordKeeper, default_record_path
from edgekv.clock import Clock
from edgekv.core.accounts import token_digest
from edgekv.core.errors import UsageError
from edgekv.operator_token import default_operator_token_path, operator_token
from edgekv.serving import GrpcNode, MetricsServer, host_port, serve_metrics
from edgekv.tls import ServerTls
from edgekv.v1 import central_pb2, central_pb2_grpc

SERVICE_NAME = central_pb2.DESCRIPTOR.services_by_name["CentralStore"].full_name
TOKEN_ADMIN_NAME = central_pb2.DESCRIPTOR.services_by_name["TokenAdmin"].full_name


@dataclass
class CentralServer:
    node: GrpcNode
    storage: Storage
    service: CentralStoreService
    address: str
    record: RecordKeeper | None = None
    metrics: MetricsServer | None = None

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.node.stop(grace_s)
        await self.service.close()
        await self.storage.close()
        if self.metrics is not None:
            await self.metrics.stop()
        if self.record is not None:  # last: the revision every commit above reached
            await self.record.close()


async def central_service(
    storage: Storage, clock: Clock, settings: CentralSettings | None = None
) -> CentralStoreService:
    """The service over ``storage``, ready to serve: the one way, served or in-process."""
    service = CentralStoreService(storage, clock, settings or CentralSettings())
    await service.load()
    return service


def _with_operator(
    settings: CentralSettings, storage_url: str, path: Path | None
) -> CentralSettings:
    path = path or default_operator_token_path(storage_url)
    if path is None:
        if settings.require_auth:
            raise UsageError(
                "--auth needs an operator token, and this store has no place for one: "
                "pass --operator-token-file FILE"
            )
        return settings
    return replace(settings, operator_digest=token_digest(operator_token(path)))


async def start_central(
    listen: str,
    storage_url: str,
    clock: Clock,
    settings: CentralSettings | None = None,
    *,
    durability: Durability | None = None,
    store_record: Path | None = None,
    metrics_listen: str | None = None,
    operator_token_file: Path | None = None,
    tls: ServerTls | None = None,
    health_listen: str | None = None,
) -> CentralServer:
    """Open the storage, checked against its record, and serve it on ``listen``.

    ``durability`` None is the back-end's own; ``store_record`` None is the default
    record (beside a SQLite file; none for Redis and memory). The operator token is
    read from ``operator_token_file`` (made there at first start), by default beside a
    SQLite file; ``settings.require_auth`` needs one. With ``tls`` it serves over TLS;
    with ``health_listen`` also the health service alone, in plain gRPC, for probes.
    """
    check_durability(storage_url, durability)  # first: a refused start makes no token file
    settings = _with_operator(settings or CentralSettings(), storage_url, operator_token_file)
    record_path = store_record or default_record_path(storage_url)
    storage = await open_storage(storage_url, durability=durability, record_path=record_path)
    record = None if record_path is None else RecordKeeper(record_path, storage)
    service: CentralStoreService | None = None
    node: GrpcNode | None = None
    try:
        if record is not None:
            await record.start()
        service = await central_service(storage, clock, settings)
        node = GrpcNode([SERVICE_NAME, TOKEN_ADMIN_NAME])
        central_pb2_grpc.add_CentralStoreServicer_to_server(service, node.server)
        central_pb2_grpc.add_TokenAdminServicer_to_server(service, node.server)
        port = await node.start(listen, tls, health_listen)
    except BaseException:
        if node is not None:
            await node.stop(grace_s=0)  # its health port, if that was bound
        if service is not None:
            await service.close()  # its feed follower
        await storage.close()
        if record is not None:
            await record.close()
        raise
    server = CentralServer(node, storage, service, host_port(listen, port), record)
    if metrics_listen:
        try:
            collector = CentralCollector(node.boundary.counts, service, storage)
            server.metrics = serve_metrics(metrics_listen, collector)
        except BaseException:
            await server.stop(grace_s=0)
            raise
    return server
