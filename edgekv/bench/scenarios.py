"""The named benchmarks: what one call is, where it goes, and what it is judged against.

Theory of operation: a :class:`Scenario` is a name, a *connector* and the
floor it is divided by. The connector is a module-level async context manager
(so a worker process can rebuild it from its name): given the run's targets —
addresses, namespace ids, key counts — it opens its channels and yields
``call(i)``, one call for the i-th arrival (i = -1 is the warm-up). The
:class:`BenchCluster` starts every server the scenarios need as child
processes — the no-op floor, a ``redis-server`` baseline, central on SQLite
and on Redis, one edge per region with that region's modelled RTT — and
writes the keys they read, before anything is timed.
"""

from __future__ import annotations

import functools
import os
import random
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

import edgekv
from edgekv.bench.loadgen import CallFn, Connector
from edgekv.bench.servers import (
    CALL_TIMEOUT_S,
    NOOP_ARGV,
    NOOP_METHOD,
    ServerGroup,
    relay_argv,
    start_redis,
)
from edgekv.channels import open_channel
from edgekv.client import RetryPolicy
from edgekv.core.errors import UsageError
from edgekv.experiments.theory import key_weights
from edgekv.node_args import central_args, edge_args, edgekv_command
from edgekv.topology import DEFAULT_REGION_RTT_MS, CentralSpec, EdgeSpec, RegionSpec, Topology
from edgekv.v1 import edge_pb2, edge_pb2_grpc

KEY_COUNT = 1000
VALUE = b"v" * 100
BIG_VALUE_BYTES = 25 * 1024 * 1024
BENCH_CACHE_MAX_BYTES = 256 * 1024 * 1024
BULK_ENTRIES = 10_000
# A HIT must stay a HIT for the whole run: copies live this long.
LONG_CACHE_TTL_S = 86_400
MIXED_ZIPF = 1.0
REDIS_MAX_CONNECTIONS = 10_000


def key(index: int) -> str:
    return f"key-{index % KEY_COUNT}"


def unique_prefix() -> str:
    """Keys no other worker or run writes: process id and a random tag."""
    return f"{os.getpid()}-{random.randrange(1 << 30)}"


# -- connectors ---------------------------------------------------------------------------


@asynccontextmanager
async def connect_overhead(targets: dict[str, Any]) -> AsyncIterator[CallFn]:
    """No I/O at all: what is left is the generator's own cost."""

    async def call(index: int) -> None:
        return None

    yield call


@asynccontextmanager
async def connect_floor(targets: dict[str, Any], rtt_ms: float = 0.0) -> AsyncIterator[CallFn]:
    """The no-op server; with ``rtt_ms``, the relay: a do-nothing edge across its link."""
    address = targets["relay"] if rtt_ms else targets["noop"]
    request = f"{rtt_ms:g}".encode() if rtt_ms else b""
    # The channel every edgekv client makes (edgekv.channels), so the floor is like for like.
    async with open_channel(address) as channel:
        method = channel.unary_unary(
            NOOP_METHOD, request_serializer=None, response_deserializer=None
        )

        async def call(index: int) -> object:
            return await method(request, timeout=CALL_TIMEOUT_S)

        yield call


@asynccontextmanager
async def connect_redis(targets: dict[str, Any], operation: str) -> AsyncIterator[CallFn]:
    host, _, port = targets["redis"].rpartition(":")
    # An open loop may have many calls in flight: redis-py's pool must not be the limit.
    client = aioredis.Redis(host=host, port=int(port), max_connections=REDIS_MAX_CONNECTIONS)
    prefix = unique_prefix()
    try:

        async def call(index: int) -> object:
            if operation == "get":
                return await client.get(key(index))
            return await client.set(f"set-{prefix}-{index}", VALUE)

        yield call
    finally:
        await client.aclose()


@asynccontextmanager
async def connect_central(
    targets: dict[str, Any], operation: str, storage: str
) -> AsyncIterator[CallFn]:
    async with edgekv.Client(
        central=targets[f"central_{storage}"], retry=RetryPolicy.NONE
    ) as client:
        kv = client.namespace(targets[f"namespace_{storage}"])
        prefix = unique_prefix()

        async def call(index: int) -> object:
            if operation == "get":
                return await kv.get(key(index))
            if operation == "list":
                return await kv.list(prefix="key-", limit=100)
            if operation == "bulk-put":
                entries = [
                    {"key": f"bulk-{prefix}-{index}-{n}", "value": "v"} for n in range(BULK_ENTRIES)
                ]
                result = await kv.bulk_put(entries)
                if result.unsuccessful_keys:
                    raise RuntimeError(f"{len(result.unsuccessful_keys)} bulk entries failed")
                return result
            return await kv.put(f"put-{prefix}-{index}", VALUE)

        yield call


@asynccontextmanager
async def connect_edge(
    targets: dict[str, Any], operation: str, region: str
) -> AsyncIterator[CallFn]:
    async with edgekv.Client(edge=targets["edges"][region], retry=RetryPolicy.NONE) as client:
        kv = client.namespace(targets["namespace_sqlite"])
        prefix = unique_prefix()
        weights = key_weights(KEY_COUNT, MIXED_ZIPF)
        rng = random.Random(f"{prefix}")

        async def expect(name: str, status: str) -> object:
            read = await kv.get_with_metadata(name, type="bytes", cache_ttl=LONG_CACHE_TTL_S)
            if read.cache_status != status and index_is_measured(name):
                raise RuntimeError(f"expected {status} for {name}, got {read.cache_status}")
            return read

        async def call(index: int) -> object:
            if operation == "hit":
                return await expect(key(index), "HIT")
            if operation == "miss":
                name = f"miss-{region}-{index}" if index >= 0 else f"miss-{region}-warm"
                return await expect(name, "MISS")
            if operation == "big":
                return await expect("big", "HIT")
            if operation == "put":
                return await kv.put(f"edge-put-{prefix}-{index}", VALUE)
            # mixed: 95 % reads, 5 % writes, Zipf-popular keys, Workers' default cacheTtl
            chosen = key(rng.choices(range(KEY_COUNT), weights)[0])
            if rng.random() < 0.05:
                return await kv.put(chosen, VALUE)
            return await kv.get(chosen)

        yield call


@asynccontextmanager
async def connect_edge_stub(targets: dict[str, Any]) -> AsyncIterator[CallFn]:
    """A HIT without the client library: prepared requests, the answer checked by status."""
    async with open_channel(targets["edges"]["us-east"]) as channel:
        stub = edge_pb2_grpc.EdgeKVStub(channel)
        requests = [
            edge_pb2.EdgeGetRequest(
                namespace_id=targets["namespace_sqlite"],
                key=key(k).encode(),
                cache_ttl=LONG_CACHE_TTL_S,
            )
            for k in range(KEY_COUNT)
        ]
        hit = edge_pb2.CACHE_STATUS_HIT

        async def call(index: int) -> object:
            answer = await stub.Get(requests[index % KEY_COUNT], timeout=CALL_TIMEOUT_S)
            if answer.info.cache_status != hit:
                raise RuntimeError(f"expected HIT, got status {answer.info.cache_status}")
            return answer

        yield call


def index_is_measured(name: str) -> bool:
    """The warm-up call may find anything; measured calls must find what they expect."""
    return not name.endswith("-warm")


# -- the scenarios ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    connect: Connector
    rate_per_s: float
    # The scenario whose p50 this one is divided by (None: it is a floor).
    floor: str | None = "floor"
    # A MISS crosses the modelled link: its RTT is taken off before the ratio.
    rtt_ms: float = 0.0
    in_quick: bool = False
    # Rates of the knee sweep (empty: no sweep).
    sweep_rates: tuple[float, ...] = ()
    # Concurrent callers of the closed-loop throughput run (0: none).
    closed_callers: int = 0


SWEEP = (250.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0)


def all_scenarios() -> list[Scenario]:
    p = functools.partial
    scenarios = [
        Scenario(
            "generator-overhead",
            "a call that does nothing: the generator's own cost",
            connect_overhead,
            1000,
            floor=None,
            in_quick=True,
        ),
        Scenario(
            "floor",
            "a no-op gRPC call to a bare grpc.aio server",
            connect_floor,
            300,
            floor=None,
            in_quick=True,
            sweep_rates=SWEEP,
        ),
        Scenario(
            "redis-get",
            "GET of a 100-byte value from redis-server (redis-py asyncio)",
            p(connect_redis, operation="get"),
            300,
            floor=None,
            in_quick=True,
            sweep_rates=SWEEP,
        ),
        Scenario(
            "redis-set",
            "SET of a 100-byte value in redis-server (redis-py asyncio)",
            p(connect_redis, operation="set"),
            300,
            floor=None,
        ),
        Scenario(
            "edge-hit",
            "kv.get through the us-east edge, served from its cache",
            p(connect_edge, operation="hit", region="us-east"),
            300,
            in_quick=True,
            sweep_rates=SWEEP,
        ),
        Scenario(
            "edge-hit-stub",
            "the same HIT through the raw EdgeKV stub with prepared requests (the server alone)",
            connect_edge_stub,
            300,
            sweep_rates=SWEEP,
        ),
        *(
            Scenario(
                f"edge-miss-{region}",
                f"kv.get of an uncached key through the {region} edge "
                f"({rtt_ms:g} ms modelled RTT to central)",
                p(connect_edge, operation="miss", region=region),
                100,
                rtt_ms=rtt_ms,
                in_quick=True,
            )
            for region, rtt_ms in DEFAULT_REGION_RTT_MS.items()
        ),
        *(
            Scenario(
                f"relay-{region}",
                f"a do-nothing edge: a relay across a {rtt_ms:g} ms link "
                "to the no-op server (two hops and a link, no edgekv code)",
                p(connect_floor, rtt_ms=rtt_ms),
                100,
                rtt_ms=rtt_ms,
                in_quick=region == "us-east",
            )
            for region, rtt_ms in DEFAULT_REGION_RTT_MS.items()
        ),
        Scenario(
            "central-get",
            "kv.get at central (SQLite)",
            p(connect_central, operation="get", storage="sqlite"),
            300,
            in_quick=True,
            sweep_rates=SWEEP,
            closed_callers=16,
        ),
        Scenario(
            "central-put-sqlite",
            "kv.put at central, durable (SQLite WAL, synchronous=FULL)",
            p(connect_central, operation="put", storage="sqlite"),
            300,
            in_quick=True,
            closed_callers=16,
        ),
        Scenario(
            "central-put-redis",
            "kv.put at central on Redis (one Lua script per write)",
            p(connect_central, operation="put", storage="redis"),
            300,
            closed_callers=16,
        ),
        Scenario(
            "central-list",
            "kv.list of 100 keys at central (SQLite)",
            p(connect_central, operation="list", storage="sqlite"),
            100,
        ),
        Scenario(
            "edge-put",
            "kv.put through the us-east edge (2 ms RTT), durable at central",
            p(connect_edge, operation="put", region="us-east"),
            200,
            rtt_ms=2.0,
        ),
        Scenario(
            "bulk-put-10k",
            "one bulk put of 10,000 keys at central (SQLite, one commit)",
            p(connect_central, operation="bulk-put", storage="sqlite"),
            1,
        ),
        Scenario(
            "edge-25mib",
            "kv.get of a 25 MiB value through the us-east edge (HIT)",
            p(connect_edge, operation="big", region="us-east"),
            2,
        ),
        *(
            Scenario(
                f"mixed-{region}",
                f"Workers-style: 95 % reads, 5 % writes, Zipf keys, through the {region} edge",
                p(connect_edge, operation="mixed", region=region),
                200,
            )
            for region in DEFAULT_REGION_RTT_MS
        ),
    ]
    return scenarios


def scenario_named(name: str) -> Scenario:
    for scenario in all_scenarios():
        if scenario.name == name:
            return scenario
    known = ", ".join(s.name for s in all_scenarios())
    raise UsageError(f"unknown scenario {name!r} (scenarios: {known})")


# -- the servers ----------------------------------------------------------------------------


def bench_topology(work_dir: Path) -> Topology:
    """Central on SQLite without the write-rate limit; one edge per default region.

    No jitter, so a MISS costs exactly its region's RTT; a cache large enough that
    every key a scenario reads, the 25 MiB value included, stays cached.
    """
    edge = EdgeSpec(cache_max_bytes=BENCH_CACHE_MAX_BYTES)
    regions = tuple(
        RegionSpec(name, rtt_ms, jitter_ms=0.0, edge=edge)
        for name, rtt_ms in DEFAULT_REGION_RTT_MS.items()
    )
    central = CentralSpec(storage=f"sqlite:{work_dir / 'central.db'}", write_rate_limit=False)
    return Topology(central, regions)


class BenchCluster:
    """Every server the scenarios use, started as child processes, and their data."""

    def __init__(self, work_dir: Path | None = None) -> None:
        self._temp = None if work_dir else tempfile.TemporaryDirectory(prefix="edgekv-bench-")
        self.work_dir = work_dir or Path(self._temp.name)  # type: ignore[union-attr]
        self.group = ServerGroup(self.work_dir)
        self.targets: dict[str, Any] = {}
        self.pids: dict[str, int] = {}

    def start(self, miss_keys: int) -> dict[str, Any]:
        _, redis_address = start_redis(self.group)
        (noop,) = self.group.start([("noop", NOOP_ARGV)])
        topology = bench_topology(self.work_dir)
        relay, central_sqlite, central_redis = self.group.start(
            [
                ("relay", relay_argv(noop.address)),
                ("central-sqlite", edgekv_command(central_args(topology))),
                (
                    "central-redis",
                    edgekv_command(central_args(topology, storage=f"redis://{redis_address}/1")),
                ),
            ]
        )
        edges = self.group.start(
            [
                (
                    f"edge-{edge.region.name}",
                    edgekv_command(
                        edge_args(
                            topology,
                            edge.region,
                            central=central_sqlite.address,
                            seed=edge.seed,
                            node=f"{edge.region.name}-bench",
                        )
                    ),
                )
                for edge in topology.edge_nodes()
            ]
        )
        self.targets = {
            "noop": noop.address,
            "relay": relay.address,
            "redis": redis_address,
            "central_sqlite": central_sqlite.address,
            "central_redis": central_redis.address,
            "edges": {server.name.removeprefix("edge-"): server.address for server in edges},
            "miss_keys": miss_keys,
        }
        self.pids = {server.name: server.pid for server in self.group.servers}
        return self.targets

    async def prepare(self) -> None:
        """Namespaces, the keys every read finds, the MISS pools, the big value; warm the HITs."""
        targets = self.targets
        for storage in ("sqlite", "redis"):
            async with edgekv.Client(central=targets[f"central_{storage}"]) as client:
                namespace = await client.create_namespace(f"bench-{storage}")
                targets[f"namespace_{storage}"] = namespace.id
                kv = client.namespace(namespace.id)
                await kv.bulk_put(
                    [{"key": key(k), "value": VALUE.decode()} for k in range(KEY_COUNT)]
                )
        async with edgekv.Client(central=targets["central_sqlite"]) as client:
            kv = client.namespace(targets["namespace_sqlite"])
            for region in DEFAULT_REGION_RTT_MS:
                names = [f"miss-{region}-{i}" for i in range(targets["miss_keys"])] + [
                    f"miss-{region}-warm"
                ]
                for start in range(0, len(names), BULK_ENTRIES):
                    await kv.bulk_put(
                        [
                            {"key": n, "value": VALUE.decode()}
                            for n in names[start : start + BULK_ENTRIES]
                        ]
                    )
            await kv.put("big", b"b" * BIG_VALUE_BYTES)
        host, _, port = targets["redis"].rpartition(":")
        async with aioredis.Redis(host=host, port=int(port)) as redis_client:
            await redis_client.mset({key(k): VALUE for k in range(KEY_COUNT)})
        async with edgekv.Client(edge=targets["edges"]["us-east"]) as client:
            kv = client.namespace(targets["namespace_sqlite"])
            for k in range(KEY_COUNT):
                await kv.get(key(k), cache_ttl=LONG_CACHE_TTL_S)
            await kv.get("big", type="bytes", cache_ttl=LONG_CACHE_TTL_S)

    def stop(self) -> None:
        self.group.stop_all()
        if self._temp is not None:
            self._temp.cleanup()
