"""Central replicas behind one address list: calls spread over them, and fail over.

Two real ``edgekv central`` processes serve one real redis-server, each
counting its calls on its metrics endpoint. A Python client and a real edge
are given both as ``--central A,B`` (edgekv.channels): their calls are spread
over the two, and when one replica goes they carry on through the other —

* killed (``kill -9``): its connections close at once, so a read in flight
  fails UNAVAILABLE and is retried on the other replica, and no read fails;
* vanished (SIGSTOP: its sockets stay open, nothing answers, as when a host's
  interface goes down): HTTP/2 keepalive finds the dead connections within
  about 4 s, after which every call goes to the other replica. Without
  keepalive, every other call would hang to its deadline for as long as the
  host stays away.

Each test prints the window it measured (``-s`` shows it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import edgekv
from edgekv.client import RetryPolicy
from edgekv.core.errors import KVError
from tests.support.central_process import CentralLauncher, CentralProcess
from tests.support.edge_process import EdgeLauncher, EdgeProcess
from tests.support.metrics import scrape
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]

# Keys read once each through central by the client and once through the edge.
SPREAD_KEYS = 64
# Keys the edge has never read, so that each read of one during a failover is a miss
# that goes to central (a cached copy would hide the failover).
FRESH_KEYS = 4000
READERS = 4
# A vanished replica: the keepalive window (edgekv.channels: a ping at most 2 s after
# the last, dead when not answered within 3 s), a margin, and how long reads go on.
DETECTED_BY_S = 6.0
RUN_S = 8.0


@dataclass
class Replicas:
    a: CentralProcess
    b: CentralProcess
    metrics_ports: dict[str, int]
    namespace: str = ""

    @property
    def spec(self) -> str:
        return f"{self.a.address},{self.b.address}"

    async def gets(self, names: Sequence[str] = ("a", "b")) -> dict[str, float]:
        """Get calls each replica named answered so far."""
        counts = {}
        for name in names:
            port = self.metrics_ports[name]
            samples = (await scrape(port)).get("edgekv_central_requests_total", {})
            counts[name] = sum(n for labels, n in samples.items() if 'method="Get"' in labels)
        return counts


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[Replicas]:
    ports = {"a": free_port(), "b": free_port()}
    with CentralLauncher(tmp_path) as centrals:
        a, b = (
            centrals.start(
                redis_url,
                ["--no-write-rate-limit", "--metrics-listen", f"127.0.0.1:{ports[name]}"],
                name=f"central-{name}",
            )
            for name in ("a", "b")
        )
        try:
            yield Replicas(a, b, ports)
        finally:
            for central in (a, b):
                if central.process.returncode is None:
                    os.kill(central.pid, signal.SIGCONT)


@pytest.fixture
def edge(tmp_path: Path, replicas: Replicas) -> Iterator[EdgeProcess]:
    with EdgeLauncher(tmp_path) as edges:
        yield edges.start(replicas.spec, "eu-west")


async def _fill(replicas: Replicas) -> str:
    async with edgekv.Client(central=replicas.a.address) as admin:
        namespace = (await admin.create_namespace("replicas")).id
        kv = admin.namespace(namespace)
        await kv.bulk_put([{"key": f"k{i}", "value": f"v{i}"} for i in range(SPREAD_KEYS)])
        await kv.bulk_put([{"key": f"f{i}", "value": f"v{i}"} for i in range(FRESH_KEYS)])
    return namespace


@dataclass
class Reads:
    """Reads made by several readers while a replica went away, timed from that moment."""

    # (seconds after the event the read started, seconds it took, its error or None)
    outcomes: list[tuple[float, float, str | None]] = field(default_factory=list)

    def failed(self) -> list[tuple[float, float, str | None]]:
        return [outcome for outcome in self.outcomes if outcome[2] is not None]

    def longest_s(self, after_s: float = -1.0) -> float:
        """The longest a read took among those started ``after_s`` or later."""
        return max((took for at, took, _ in self.outcomes if at >= after_s), default=0.0)

    def summary(self) -> str:
        failed = self.failed()
        last = f", the last started {failed[-1][0]:+.2f} s" if failed else ""
        return (
            f"{len(self.outcomes)} reads, {len(failed)} failed{last}; "
            f"longest read {self.longest_s() * 1000:.0f} ms"
        )


async def _read_through(
    kv: edgekv.KVNamespace, keys: Iterator[str], event_at: list[float], until: asyncio.Event
) -> Reads:
    """Readers reading ``keys`` until ``until``; times are from ``event_at[0]``."""
    reads = Reads()

    async def reader() -> None:
        while not until.is_set():
            started = time.monotonic()
            problem = None
            try:
                await kv.get(next(keys))
            except KVError as exc:
                problem = exc.message
            reads.outcomes.append((started - event_at[0], time.monotonic() - started, problem))

    await asyncio.gather(*(reader() for _ in range(READERS)))
    reads.outcomes.sort()
    return reads


async def test_calls_spread_over_the_replicas_and_a_killed_one_costs_no_read(
    replicas: Replicas, edge: EdgeProcess
) -> None:
    namespace = await _fill(replicas)
    async with (
        edgekv.Client(central=replicas.spec, retry_rate_limited=False) as client,
        edgekv.Client(edge=edge.address) as via_edge,
    ):
        central_kv, edge_kv = client.namespace(namespace), via_edge.namespace(namespace)
        before = await replicas.gets()
        for i in range(SPREAD_KEYS):
            assert await central_kv.get(f"k{i}") == f"v{i}"
            assert await edge_kv.get(f"k{i}") == f"v{i}"  # a miss: the edge asks central
        after = await replicas.gets()
        spread = {name: after[name] - before[name] for name in after}
        print(f"\nGets per replica, 2 x {SPREAD_KEYS} through A,B: {spread}")
        assert sum(spread.values()) == 2 * SPREAD_KEYS, spread
        # round_robin alternates: each replica takes about half.
        assert min(spread.values()) >= SPREAD_KEYS / 2, spread

        # Readers in flight through the client and the edge while A is killed.
        killed_at = [time.monotonic() + 3600.0]
        stop = asyncio.Event()
        central_keys = (f"k{i % SPREAD_KEYS}" for i in range(10**9))
        fresh_keys = (f"f{i}" for i in range(FRESH_KEYS))
        readers = asyncio.gather(
            _read_through(central_kv, central_keys, killed_at, stop),
            _read_through(edge_kv, fresh_keys, killed_at, stop),
        )
        await asyncio.sleep(0.3)
        killed_at[0] = time.monotonic()
        await asyncio.to_thread(replicas.a.kill)
        await asyncio.sleep(1.0)
        stop.set()
        central_reads, edge_reads = await readers
        print(f"kill -9 of replica A; through the client: {central_reads.summary()}")
        print(f"kill -9 of replica A; through the edge:   {edge_reads.summary()}")
        for reads in (central_reads, edge_reads):
            assert any(at < 0 for at, _, _ in reads.outcomes), "no read before the kill"
            assert any(at > 0.5 for at, _, _ in reads.outcomes), "no read after the kill"
            assert not reads.failed(), reads.failed()[:3]
            # The failover took one retry at most: well under a second.
            assert reads.longest_s() < 1.0, reads.summary()

        # Writes go to B: through the client and through the edge.
        await central_kv.put("after", "written at B")
        await edge_kv.put("after-edge", "written through the edge")
        assert await central_kv.get("after-edge") == "written through the edge"
        assert (await replicas.gets(["b"]))["b"] > after["b"]


async def test_a_replica_that_vanishes_is_left_within_the_keepalive_window(
    replicas: Replicas, edge: EdgeProcess
) -> None:
    """SIGSTOP: connections stay open and calls to the replica hang, as when its host's
    interface goes down. Each call here is tried once, with a short deadline, so a call
    that picked the vanished replica fails; once keepalive has found the dead
    connections, none does."""
    namespace = await _fill(replicas)
    call_deadline_s = 0.5
    async with (
        edgekv.Client(
            central=replicas.spec, timeout_s=call_deadline_s, retry=RetryPolicy.NONE
        ) as client,
        edgekv.Client(edge=edge.address, timeout_s=2.0, retry=RetryPolicy.NONE) as via_edge,
    ):
        central_kv, edge_kv = client.namespace(namespace), via_edge.namespace(namespace)
        assert await central_kv.get("k0") == "v0"
        stopped_at = [time.monotonic()]
        os.kill(replicas.a.pid, signal.SIGSTOP)
        stop = asyncio.Event()
        central_keys = (f"k{i % SPREAD_KEYS}" for i in range(10**9))
        fresh_keys = (f"f{i}" for i in range(FRESH_KEYS))
        readers = asyncio.gather(
            _read_through(central_kv, central_keys, stopped_at, stop),
            _read_through(edge_kv, fresh_keys, stopped_at, stop),
        )
        await asyncio.sleep(RUN_S)
        stop.set()
        central_reads, edge_reads = await readers
        print(f"\nSIGSTOP of replica A; through the client: {central_reads.summary()}")
        print(f"SIGSTOP of replica A; through the edge:   {edge_reads.summary()}")
        # Calls did pick the vanished replica at first (else this test shows nothing) ...
        assert central_reads.failed(), central_reads.summary()
        # ... and none did once keepalive (a ping every 2 s, answered within 3 s) had
        # found its connections dead.
        for reads in (central_reads, edge_reads):
            late = [outcome for outcome in reads.failed() if outcome[0] > DETECTED_BY_S]
            assert not late, (reads.summary(), late[:3])
            assert any(at > DETECTED_BY_S + 1.0 for at, _, _ in reads.outcomes), reads.summary()
            assert reads.longest_s(after_s=DETECTED_BY_S) < call_deadline_s, reads.summary()
