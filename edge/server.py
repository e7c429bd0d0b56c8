"""Running an edge node: cache store, link, upstream, node, services — started as one.

Theory of operation: :func:`start_edge` checks that central answers (a bad
``--central`` fails at start with one line), opens the cache store, wires the
node with the injected clock and a seeded RNG (link jitter and loss, retry
jitter and watcher backoff all draw from it, so a seed replays a run), and
serves EdgeKV and EdgeControl with health and reflection. :meth:`EdgeServer.stop`
stops serving, then the watchers, the background refreshes and the stores.
"""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass, field
from typing import Any

from edge.cache import open_cache
from edge.link import Link, LinkSettings
from edge.metrics import serve_metrics
from edge.node import EdgeIdentity, EdgeNode, EdgePolicy
from edge.pages import PageCache
from edge.service import EdgeControlService, EdgeKVService
from edge.stats import EdgeCounters
from edge.upstream import RetrySettings, Upstream
from edge.watcher import NamespaceWatchers
from edgekv.clock import Clock
from edgekv.serving import GrpcNode, host_port
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
    # Real seconds to wait for central's health check at start.
    startup_timeout_s: float = 5.0

    @property
    def node_name(self) -> str:
        return self.node or f"{self.region}-{socket.gethostname()}"


@dataclass
class EdgeServer:
    node: EdgeNode
    link: Link
    address: str
    grpc_node: GrpcNode
    watchers: NamespaceWatchers
    metrics: Any = None

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.grpc_node.stop(grace_s)
        await self.watchers.close()
        await self.node.close()
        await self.node.cache.close()
        await self.node.upstream.close()
        if self.metrics is not None:
            # shutdown() waits for the serving thread's poll loop; keep the event loop free.
            await asyncio.to_thread(self.metrics.shutdown)
            self.metrics.server_close()


async def start_edge(config: EdgeConfig, clock: Clock) -> EdgeServer:
    rng = random.Random(config.seed)
    counters = EdgeCounters()
    link = Link(config.link, rng, clock, config.node_name)
    upstream = Upstream(config.central, link, clock, rng, counters, config.retry)
    try:
        await upstream.check_reachable(config.startup_timeout_s)
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
    watchers = NamespaceWatchers(node, rng)
    if config.policy.mode is not Mode.TTL:
        node.on_namespace = watchers.ensure
        node.revision_floor = watchers.floor
    grpc_node = GrpcNode(SERVICE_NAMES)
    edge_pb2_grpc.add_EdgeKVServicer_to_server(EdgeKVService(node), grpc_node.server)
    edge_pb2_grpc.add_EdgeControlServicer_to_server(
        EdgeControlService(node, link), grpc_node.server
    )
    server = EdgeServer(node, link, "", grpc_node, watchers)
    try:
        port = await grpc_node.start(config.listen)
        if config.metrics_listen:
            server.metrics = serve_metrics(
                config.metrics_listen, counters, config.region, config.node_name
            )
    except BaseException:
        await server.stop(grace_s=0)
        raise
    server.address = host_port(config.listen, port)
    return server
