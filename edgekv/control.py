"""Operating a node: its health, an edge's counters and cache, its modelled link.

Theory of operation: what an operator reads and sets on a node is defined
here once — an edge's :class:`EdgeCounters` (the edge counts with this very
class, its Prometheus endpoint and ``EdgeControl.GetStats`` report it, and
nothing else names the counters), and the :class:`LinkSettings` of its
modelled link to central. :class:`NodeControl` is the one client of a node's
standard gRPC health service and of an edge's ``EdgeControl`` service; ``edgekv
status``, the launcher, the experiments and the tests all use it. It returns
plain values and raises the registry's :class:`~edgekv.core.errors.KVError`
(through :func:`edgekv.rpc.error_from_rpc`), so a caller prints one line, not
a gRPC traceback.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgekv.channels import open_channel
from edgekv.closing import AsyncClosing
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.locate import locate_tls_ca
from edgekv.rpc import error_from_rpc
from edgekv.v1 import edge_pb2, edge_pb2_grpc

DEFAULT_TIMEOUT_S = 5.0


@dataclass
class EdgeCounters:
    """What an edge counts (EdgeStats in edge.proto says what each one means)."""

    hits: int = 0
    misses: int = 0
    expired: int = 0
    revalidated: int = 0
    stale_serves: int = 0
    upstream_calls: int = 0
    upstream_errors: int = 0
    upstream_bytes: int = 0
    watch_changes: int = 0
    refreshes: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters alone, by name (a subclass's other fields left out)."""
        return {field.name: getattr(self, field.name) for field in fields(EdgeCounters)}


@dataclass
class EdgeStats(EdgeCounters):
    """An edge's counters, with its identity and its cache's occupancy."""

    region: str = ""
    node: str = ""
    mode: str = ""
    bytes_cached: int = 0
    entries: int = 0
    evictions: int = 0


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """An edge's modelled link to central (LinkSettings in edge.proto)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    partitioned: bool = False

    def problem(self) -> str | None:
        """What makes these settings unusable, or None when they are fine."""
        if not (0 <= self.rtt_ms < math.inf and 0 <= self.jitter_ms < math.inf):
            return (
                f"link delays must be finite and >= 0 ms, got rtt {self.rtt_ms:g}, "
                f"jitter {self.jitter_ms:g}"
            )
        if not 0.0 <= self.loss <= 1.0:
            return f"link loss is a probability between 0 and 1, got {self.loss:g}"
        return None

    def validated(self) -> LinkSettings:
        problem = self.problem()
        if problem is not None:
            raise error(ErrorKind.LINK_SETTINGS_INVALID, detail=problem)
        return self

    def to_pb(self) -> edge_pb2.LinkSettings:
        return edge_pb2.LinkSettings(**asdict(self))

    @classmethod
    def from_pb(cls, message: edge_pb2.LinkSettings) -> LinkSettings:
        return cls(message.rtt_ms, message.jitter_ms, message.loss, message.partitioned)


def stats_from_pb(message: edge_pb2.EdgeStats) -> EdgeStats:
    return EdgeStats(**{field.name: getattr(message, field.name) for field in fields(EdgeStats)})


class NodeControl(AsyncClosing):
    """One node's health (any node) and EdgeControl (edges): ``async with NodeControl(addr)``.

    ``address`` is HOST:PORT, or a channel already open to the node (an
    in-process one, in a simulation). ``tls_ca`` is the CA of a TLS node; None
    finds it as a client does (:func:`edgekv.locate.locate_tls_ca`);
    ``tls_server_name``, the name its certificate has when not the host dialled.
    """

    def __init__(
        self,
        address: str | Any,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        self.address = address if isinstance(address, str) else "in-process"
        self.timeout_s = timeout_s
        if isinstance(address, str):
            ca = locate_tls_ca(tls_ca, [address])
            self._channel = open_channel(
                address, tls_ca=ca, options=(), tls_server_name=tls_server_name
            )
        else:
            self._channel = address
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._edge = edge_pb2_grpc.EdgeControlStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Any, request: Any, **options: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout_s, **options)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, f"the node at {self.address}") from None

    async def serving_status(self, wait: bool = False, service: str = "") -> str:
        """The node's health as grpc.health.v1 names it (``SERVING``, ``NOT_SERVING``, …).

        With ``wait``, wait for the node to come up (until the time-out) rather
        than fail at once while it cannot be reached.
        """
        answer = await self._call(
            self._health.Check, health_pb2.HealthCheckRequest(service=service), wait_for_ready=wait
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    async def healthy(self, wait: bool = False) -> bool:
        """Does the node answer SERVING? Any failure to answer means it is not healthy."""
        try:
            return await self.serving_status(wait) == "SERVING"
        except KVError:
            return False

    async def stats(self) -> EdgeStats:
        return stats_from_pb(await self._call(self._edge.GetStats, edge_pb2.GetStatsRequest()))

    async def flush(self, namespace_id: str | None = None) -> int:
        answer = await self._call(
            self._edge.Flush, edge_pb2.FlushRequest(namespace_id=namespace_id or "")
        )
        return int(answer.entries_dropped)

    async def link(self) -> LinkSettings:
        return LinkSettings.from_pb(await self._call(self._edge.GetLink, edge_pb2.GetLinkRequest()))

    async def set_link(self, settings: LinkSettings) -> LinkSettings:
        """Give the link exactly these settings, in one call; return what it has now."""
        return LinkSettings.from_pb(await self._call(self._edge.SetLink, settings.to_pb()))

    async def change_link(self, **changes: Any) -> LinkSettings:
        """Change some of the link's settings (the others stay); return them all."""
        return await self.set_link(replace(await self.link(), **changes))
