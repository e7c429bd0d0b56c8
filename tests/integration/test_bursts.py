"""Bursts: thousands of concurrent calls from one client all succeed.

A ``grpc.aio`` server takes calls from gRPC's core one at a time on its event
loop, and the core cancels (CANCELLED) calls that arrive while more than 1,000
are waiting to be taken — at random between 1,000 and 3,000, always above. So a
client, or an edge's upstream, that starts every call of a burst at once would
fail some of them by its own doing; each bounds its calls in flight per channel
instead (:mod:`edgekv.inflight`) and queues the rest. The servers are real
processes on real sockets; central keeps its one-write-per-second rule, so
every put writes a key of its own.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator

import pytest

import edgekv
from edge.link import Link
from edge.upstream import RetrySettings, Upstream, central_channel
from edgekv.clock import ScaledClock
from edgekv.control import EdgeCounters, LinkSettings
from tests.support.central_process import CentralLauncher, CentralProcess
from tests.support.edge_process import EdgeLauncher, EdgeProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralProcess]:
    folder = tmp_path_factory.mktemp("bursts-central")
    with CentralLauncher(folder) as launcher:
        yield launcher.start("memory:")


@pytest.fixture(scope="module")
def edge(
    central: CentralProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    with EdgeLauncher(tmp_path_factory.mktemp("bursts-edge")) as launcher:
        yield launcher.start(central.address, "eu-west")


def outcomes(results: list[object]) -> Counter[str]:
    """How many calls succeeded, and how many failed with which error."""
    return Counter(
        "ok" if not isinstance(result, BaseException) else f"{type(result).__name__}: {result}"
        for result in results
    )


async def put_burst(kv: edgekv.KVNamespace, calls: int) -> Counter[str]:
    puts = [kv.put(f"burst-{n:05d}", f"value {n}") for n in range(calls)]
    return outcomes(await asyncio.gather(*puts, return_exceptions=True))


async def test_3000_concurrent_puts_through_central_all_succeed(central: CentralProcess) -> None:
    async with edgekv.Client(central=central.address) as client:
        namespace = await client.create_namespace("burst-central")
        counted = await put_burst(client.namespace(namespace.id), 3000)
        assert counted == {"ok": 3000}
        assert await client.namespace(namespace.id).get("burst-02999") == "value 2999"


async def test_2000_concurrent_puts_through_an_edge_all_succeed(
    central: CentralProcess, edge: EdgeProcess
) -> None:
    async with edgekv.Client(central=central.address, edge=edge.address) as client:
        namespace = await client.create_namespace("burst-edge")
        counted = await put_burst(client.namespace(namespace.id), 2000)
        assert counted == {"ok": 2000}


async def test_3000_concurrent_reads_by_an_edges_upstream_all_succeed(
    central: CentralProcess,
) -> None:
    async with edgekv.Client(central=central.address) as client:
        namespace = (await client.create_namespace("burst-upstream")).id
        await client.namespace(namespace).put("hot", "value")
    clock = ScaledClock()
    rng = random.Random(1)
    link = Link(LinkSettings(), rng, clock, "burst-edge")
    upstream = Upstream(
        central_channel(central.address), link, clock, rng, EdgeCounters(), RetrySettings()
    )
    try:
        reads = [upstream.get(namespace, "hot") for _ in range(3000)]
        counted = outcomes(await asyncio.gather(*reads, return_exceptions=True))
    finally:
        await upstream.close()
    assert counted == {"ok": 3000}
