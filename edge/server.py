"""Running an edge node: cache store, link, upstream, node, services — started as one.

Theory of operation: :func:`assemble_edge` is the one way an edge is wired:
cache store, link, upstream over a given channel, node with the injected clock
and a seeded RNG, and the watchers of the watch-driven modes. A server
(:func:`start_edge`) first checks that central answers over a real channel
(a bad ``--central`` fails at start with one line; a list of replicas that
serve different stores too), then serves EdgeKV and
EdgeControl with health and reflection; an in-process wiring (tests, a
simulation) hands :func:`assemble_edge` an in-process channel instead and
registers the same services on an in-process server (:func:`add_edge_services`).
:meth:`EdgeServer.stop` stops serving, then the watchers, the background
refreshes and the stores.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field
from typing import Any

from edge.access import DEFAULT_LIFETIME_S, AccessChecks
from edge.cache import open_cache
from edge.link import Link
from edge.metrics import EdgeCollector
from edge.node import EdgeIdentity, EdgeNode, EdgePolicy
from edge.pages import PageCache
from edge.service import EdgeControlService, EdgeKVService
from edge.upstream import (
    RetrySettings,
    Upstream,
    central_channel,
    check_reachable,
)
from edge.watcher import MAX_WATCHERS, NamespaceWatchers
from edgekv.clock import Clock
from edgekv.control import EdgeCounters, LinkSettings
from edgekv.core import limits
from edgekv.replicas import check_one_store
from edgekv.serving import GrpcNode, MetricsServer, host_port, serve_metrics
from edgekv.tls import ServerTls
from edgekv.topology import DEFAULT_CACHE_MAX_BYTES, EdgeSpec, Mode
from edgekv.v1 import edge_pb2, edge_pb2_grpc

SERVICE_NAMES = [
    edge_pb2.DESCRIPTOR.services_by_name["EdgeKV"].full_name,
    edge_pb2.DESCRIPTOR.services_by_name["EdgeControl"].full_name,
]


@dataclass(frozen=True)
class EdgeConfig:
    central: str
    region: str
    listen: str = "127.0.0.1:0"
    node: str | None = None
    cache_url: str = EdgeSpec.cache
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    policy: EdgePolicy = field(default_factory=EdgePolicy)
    link: LinkSettings = field(default_factory=LinkSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    seed: int = 0
    metrics_listen: str | None = None
    # Namespaces watched at most, in the watch modes (see edge.watcher).
    max_watchers: int = MAX_WATCHERS
    # Real seconds to wait for central's health check at start.
    startup_timeout_s: float = 5.0
    # Refuse calls without an API token (as a central with --auth does; see edge.access).
    require_token: bool = False
    # The edge's own API token, for the calls it makes for no caller (its watches).
    token: str | None = None
    # How long central's yes to a token is trusted (real seconds; edge.access).
    token_check_lifetime_s: float = DEFAULT_LIFETIME_S
    # The CA central's TLS certificate is checked against (a PEM file); None: plain gRPC.
    tls_ca: str | None = None
    # The edge's own certificate and key, to serve over TLS; None: plain gRPC.
    tls: ServerTls | None = None
    # Also serve the health service alone, in plain gRPC, here (probes; --health-listen).
    health_listen: str | None = None

    @property
    def node_name(self) -> str:
        return self.node or f"{self.region}-{socket.gethostname()}"


@dataclass
class Edge:
    """An edge node wired to its upstream, cache and watchers, not yet serving."""

    node: EdgeNode
    link: Link
    watchers: NamespaceWatchers
    access: AccessChecks

    async def close(self) -> None:
        await self.watchers.close()
        await self.node.close()
        await self.node.cache.close()
        await self.node.upstream.close()


async def assemble_edge(config: EdgeConfig, clock: Clock, channel: Any) -> Edge:
    """Wire an edge over ``channel`` to central: the one way, served or in-process.

    The node draws all its randomness (link jitter and loss, retry jitter,
    watcher backoff) from one RNG seeded with ``config.seed``, so a seed
    replays a run.
    """
    rng = random.Random(config.seed)
    counters = EdgeCounters()
    link = Link(config.link, rng, clock, config.node_name)
    upstream = Upstream(
        channel,
        link,
        clock,
        rng,
        counters,
        config.retry,
        config.central,
        authorization=None if config.token is None else f"Bearer {config.token}",
    )
    try:
        cache = await open_cache(config.cache_url, config.cache_max_bytes, clock, config.region)
    except BaseException:
        await upstream.close()
        raise
    node = EdgeNode(
        EdgeIdentity(config.region, config.node_name),
        config.policy,
        cache,
        PageCache(max(1024 * 1024, config.cache_max_bytes // 8)),
        upstream,
        clock,
        counters,
    )
    watchers = NamespaceWatchers(node, rng, config.max_watchers)
    if config.policy.mode is not Mode.TTL:
        node.on_namespace = watchers.ensure
        node.revision_floor = watchers.floor
    access = AccessChecks(
        upstream, require_token=config.require_token, lifetime_s=config.token_check_lifetime_s
    )
    return Edge(node, link, watchers, access)


def add_edge_services(edge: Edge, server: Any) -> None:
    """Register EdgeKV and EdgeControl on a grpc server (or an in-process one)."""
    edge_pb2_grpc.add_EdgeKVServicer_to_server(EdgeKVService(edge.node, edge.access), server)
    edge_pb2_grpc.add_EdgeControlServicer_to_server(
        EdgeControlService(edge.node, edge.link), server
    )


@dataclass
class EdgeServer(Edge):
    """An edge serving on a socket: the wired edge, its address, its gRPC node, its metrics."""

    address: str = ""
    grpc_node: GrpcNode | None = None
    metrics: MetricsServer | None = None

    async def stop(self, grace_s: float = 5.0) -> None:
        if self.grpc_node is not None:
            await self.grpc_node.stop(grace_s)
        await self.close()
        if self.metrics is not None:
            await self.metrics.stop()


async def start_edge(config: EdgeConfig, clock: Clock) -> EdgeServer:
    """Check that central answers (a bad ``--central`` fails at start), then serve."""
    channel = central_channel(config.central, config.tls_ca)
    try:
        await check_reachable(channel, config.central, config.startup_timeout_s)
        own = None if config.token is None else f"Bearer {config.token}"
        await check_one_store(config.central, config.tls_ca, own, config.startup_timeout_s)
    except BaseException:
        await channel.close()
        raise
    edge = await assemble_edge(config, clock, channel)
    # A Put is the largest request an edge takes: a bigger message is refused unread.
    grpc_node = GrpcNode(SERVICE_NAMES, max_receive_bytes=limits.MAX_EDGE_REQUEST_BYTES)
    add_edge_services(edge, grpc_node.server)
    server = EdgeServer(edge.node, edge.link, edge.watchers, edge.access, grpc_node=grpc_node)
    try:
        port = await grpc_node.start(config.listen, config.tls, config.health_listen)
        if config.metrics_listen:
            collector = EdgeCollector(edge.node.counters, config.region, config.node_name)
            server.metrics = serve_metrics(config.metrics_listen, collector)
    except BaseException:
        await server.stop(grace_s=0)
        raise
    server.address = host_port(config.listen, port)
    return server
