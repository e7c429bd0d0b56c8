"""Fixtures for edge tests: a central store and edge nodes in-process, on real sockets.

A :class:`Cluster` is one central store and any number of edges, all on
127.0.0.1 port 0, all sharing ONE clock — a :class:`ManualClock` by default, so
tests move time instead of waiting for it (with the default RTT of 0 the
modelled link never sleeps), or a fast :class:`ScaledClock` for tests of
modelled latency. One namespace is created at start; each edge gets an
``edgekv.Client(edge=...)`` and a :class:`KVNamespace` on it, plus the
operators' :class:`~edgekv.control.NodeControl`. Everything a cluster started
is stopped at teardown.

Two defaults keep the tests about the edge and nothing else:

* with a ManualClock an edge's retry backoff (it sleeps on the clock) would
  wait for the test to move the clock, so edges of such a cluster retry
  without backoff unless a test passes its own :class:`RetrySettings`;
* edge clients do not retry (``RetryPolicy.NONE``), so each client
  read is exactly one edge read and the edge's counters can be asserted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import edgekv
from central.server import CentralServer, start_central
from central.service import CentralSettings
from edge.node import EdgePolicy
from edge.server import EdgeConfig, EdgeServer, start_edge
from edge.upstream import RetrySettings
from edgekv.clock import Clock, ManualClock
from edgekv.control import EdgeStats, LinkSettings, NodeControl
from tests.support.metrics import scrape as scrape  # the edge tests import it from here

NO_BACKOFF = RetrySettings(initial_backoff_s=0.0)
NO_CLIENT_RETRY = edgekv.RetryPolicy.NONE
POLL_S = 0.01


@dataclass
class Edge:
    """One in-process edge node and the ways a test talks to it."""

    server: EdgeServer
    client: edgekv.Client
    kv: edgekv.KVNamespace
    control: NodeControl

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def name(self) -> str:
        return self.server.node.identity.node

    async def stats(self) -> EdgeStats:
        return await self.control.stats()

    async def set_link(self, **changes: Any) -> LinkSettings:
        """EdgeControl.SetLink with the current settings, changed by ``changes``."""
        return await self.control.change_link(**changes)

    async def close(self) -> None:
        await self.client.close()
        await self.control.close()
        await self.server.stop(grace_s=0)


@dataclass
class Cluster:
    clock: Clock
    storage_url: str
    write_rate_limit: bool
    central: CentralServer | None = None
    admin: edgekv.Client | None = None
    namespace_id: str = ""
    edges: list[Edge] = field(default_factory=list)
    _central_address: str = ""

    # -- central ----------------------------------------------------------------

    async def start_central(self, listen: str = "127.0.0.1:0") -> CentralServer:
        settings = CentralSettings(write_rate_limit=self.write_rate_limit)
        self.central = await start_central(listen, self.storage_url, self.clock, settings)
        self._central_address = self.central.address
        return self.central

    async def stop_central(self) -> None:
        if self.central is not None:
            await self.central.stop(grace_s=0)
            self.central = None

    async def restart_central(self) -> CentralServer:
        """Start central again on the address it had, over the same storage."""
        assert self.central is None, "stop central first"
        return await self.start_central(self._central_address)

    @property
    def central_address(self) -> str:
        return self._central_address

    @property
    def revision(self) -> int:
        assert self.central is not None
        return self.central.storage.revision

    @property
    def kv(self) -> edgekv.KVNamespace:
        """The namespace at central (the authoritative store, like the REST API)."""
        return self.central_namespace(self.namespace_id)

    def central_namespace(self, namespace_id: str) -> edgekv.KVNamespace:
        assert self.admin is not None
        return self.admin.namespace(namespace_id)

    # -- edges ------------------------------------------------------------------

    async def add_edge(
        self,
        node: str,
        region: str = "eu-west",
        *,
        policy: EdgePolicy | None = None,
        link: LinkSettings | None = None,
        retry: RetrySettings | None = None,
        seed: int = 0,
        cache_url: str = "memory",
        metrics_listen: str | None = None,
        max_watchers: int | None = None,
    ) -> Edge:
        if retry is None:
            retry = NO_BACKOFF if isinstance(self.clock, ManualClock) else RetrySettings()
        config = EdgeConfig(
            central=self._central_address,
            region=region,
            node=node,
            cache_url=cache_url,
            policy=policy or EdgePolicy(),
            link=link or LinkSettings(),
            retry=retry,
            seed=seed,
            metrics_listen=metrics_listen,
            **({} if max_watchers is None else {"max_watchers": max_watchers}),
        )
        server = await start_edge(config, self.clock)
        client = edgekv.Client(edge=server.address, retry=NO_CLIENT_RETRY)
        edge = Edge(
            server, client, client.namespace(self.namespace_id), NodeControl(server.address)
        )
        self.edges.append(edge)
        return edge

    async def stop_edge(self, edge: Edge) -> None:
        self.edges.remove(edge)
        await edge.close()

    async def close(self) -> None:
        for edge in self.edges:
            await edge.close()
        self.edges.clear()
        if self.admin is not None:
            await self.admin.close()
        await self.stop_central()


MakeCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def make_cluster() -> AsyncIterator[MakeCluster]:
    """``await make_cluster(clock=..., storage_url=..., write_rate_limit=...)``."""
    started: list[Cluster] = []

    async def make(
        clock: Clock | None = None,
        storage_url: str = "memory:",
        write_rate_limit: bool = True,
    ) -> Cluster:
        cluster = Cluster(clock or ManualClock(), storage_url, write_rate_limit)
        started.append(cluster)
        central = await cluster.start_central()
        cluster.admin = edgekv.Client(central=central.address)
        cluster.namespace_id = (await cluster.admin.create_namespace("edge-tests")).id
        return cluster

    yield make
    for cluster in started:
        await cluster.close()


@pytest.fixture
async def cluster(make_cluster: MakeCluster) -> Cluster:
    """A central store with a ManualClock at 1_700_000_000 and no edges yet."""
    return await make_cluster()


@pytest.fixture
def clock(cluster: Cluster) -> ManualClock:
    assert isinstance(cluster.clock, ManualClock)
    return cluster.clock


async def eventually(
    probe: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``probe`` with short real sleeps until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        await asyncio.sleep(POLL_S)
