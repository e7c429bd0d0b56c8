"""Edge reads — HIT, MISS across a modelled link, and the cache's memory bound — in one run.

Run::

    .venv/bin/python -m benchmarks.edge_bench [--duration-s 3] [--out FILE.json]

Theory of operation (the machinery is :mod:`benchmarks.harness`, shared with
``central_bench``: child processes, the no-op gRPC floor, closed loop,
interleaved rounds):

* **Processes.** The no-op floor server; a *relay* (a do-nothing edge: it
  waits half the modelled RTT, calls the no-op server, waits the other half,
  with ``asyncio.sleep`` as the edge's link does); ``edgekv central`` (SQLite,
  no write rate limit); and ``edgekv edge`` processes in ``ttl`` mode without
  jitter: ``local`` (``--rtt-ms 0``), ``us-east`` (``--rtt-ms 2``; it also
  serves the HIT scenarios, which never cross its link), ``eu-west``
  (``--rtt-ms 83``) — the two RTTs are the us-east and eu-west rows of the
  design's RTT table — and ``bounded-1`` and ``bounded-4`` (``--cache-max-bytes
  64MiB``) for the memory bound.
* **HIT.** 1,000 keys of 100 bytes, written at central with one bulk write
  and read once through the edge before any round, then read with a cacheTtl
  of a day at 1 and 16 callers, through ``edgekv.Client`` (``client``) and
  the raw EdgeKV stub (``stub``). Every answer must say HIT, and the edge's
  own counters (EdgeControl.GetStats, read before and after each slice) must
  show as many hits as calls, no miss and no call to central.
* **MISS.** One caller reads keys that no read at that edge ever named (a pool
  written at central up front, each edge walking it from the start), so every
  read crosses the link to central: at 0, 2 and 83 ms of modelled RTT. Every
  answer must say MISS, and the edge's counters must agree. Next to each, the
  relay at the same RTT: what two hops and the link model cost on this
  machine with no edgekv code at all, so ``MISS - relay`` is edgekv's own
  share. Slices at 83 ms are twice as long: such calls are slow to sample.
* **Memory bound.** After the rounds, 200 MiB of distinct 1 MiB values are
  written at central (bulk writes of 64 MiB, inside the 100 MiB limit) and
  read through a bounded edge, all MISS, by one caller (``bounded-1``: what
  the cache bound bounds) and by four (``bounded-4``: with four reads' copies
  in flight too). Each edge's resident set (``VmRSS`` in ``/proc/PID/status``)
  is read when idle, after a few small reads, and every 10 ms while reading;
  the peak is the kernel's ``VmHWM`` (the sampled maximum is reported next to
  it), and GetStats gives the bytes cached and the evictions.
* **Targets.** HIT p50 <= 1.2 x floor p50 (1 caller, client path); MISS p50
  - modelled RTT <= 1.5 x floor p50 (1 caller, client path, at 2 and 83 ms);
  peak RSS <= idle RSS + 1.5 x the cache bound (one caller). The same ratios
  elsewhere (stub path, 16 callers, the relay, four readers) are printed as
  information. A missed target is a finding; a failed check (a HIT that was
  not one, say) makes the run invalid (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from benchmarks.harness import (
    CALL_TIMEOUT_S,
    CENTRAL_READY,
    EDGE_READY,
    NOOP_ARGV,
    NOOP_READY,
    RELAY_READY,
    Call,
    LoopSettings,
    MiB,
    Result,
    Scenario,
    ServerGroup,
    ServerProcess,
    add_loop_arguments,
    check_loop_arguments,
    contention,
    find,
    finish_machine,
    loop_settings,
    machine,
    noop_call,
    print_machine,
    print_ratios,
    print_results,
    process_memory,
    ratio,
    relay_argv,
    run_main,
    run_rounds,
)
from edgekv import Client
from edgekv.client import BulkPutEntry, KVNamespace
from edgekv.core import limits
from edgekv.rpc import CHANNEL_OPTIONS
from edgekv.v1 import edge_pb2, edge_pb2_grpc

VALUE_BYTES = 100
HIT_KEYS = 1000
CACHE_TTL_S = 86_400
HIT_CONCURRENCIES = (1, 16)
HIT_EDGE_RTT_MS = 2.0
# Modelled RTTs of the MISS scenarios: the design's us-east and eu-west rows, and none;
# each has its own edge, named by region.
REGIONS = {0.0: "local", 2.0: "us-east", 83.0: "eu-west"}
MISS_RTTS_MS = tuple(REGIONS)
TARGET_MISS_RTTS_MS = (2.0, 83.0)
# Slices of calls slower than this are longer: an 83 ms read is slow to sample.
SLOW_RTT_MS = 20.0
SLOW_DURATION_FACTOR = 2.0
# The fastest a MISS could conceivably be (two gRPC hops): sizes the pool of never-read keys.
MISS_FASTEST_S = 0.0004
MEMORY_CACHE_BYTES = 64 * MiB
MEMORY_READ_BYTES = 200 * MiB
MEMORY_VALUE_BYTES = 1 * MiB
MEMORY_BATCH = 64  # values per bulk write: 64 MiB, inside the 100 MiB bulk limit
# One reader (the target: what the cache bound bounds), and four (in-flight copies too).
MEMORY_CALLERS = (1, 4)
MEMORY_WARMUP_READS = 5
RSS_SAMPLE_S = 0.01
TARGET_HIT_OVER_FLOOR_P50 = 1.2
TARGET_MISS_MINUS_RTT_OVER_FLOOR_P50 = 1.5
TARGET_RSS_GROWTH_OVER_CACHE_BOUND = 1.5


def _miss(rtt_ms: float) -> str:
    return f"miss-rtt{rtt_ms:g}"


def _relay(rtt_ms: float) -> str:
    return f"relay-rtt{rtt_ms:g}"


def _callers(n: int) -> str:
    return f"{n} caller{'s' * (n != 1)}"


def _duration_factor(rtt_ms: float) -> float:
    return SLOW_DURATION_FACTOR if rtt_ms >= SLOW_RTT_MS else 1.0


ALL_LABELS = (
    *(f"floor-raw-{n}" for n in HIT_CONCURRENCIES),
    *(f"hit-{path}-{n}" for n in HIT_CONCURRENCIES for path in ("client", "stub")),
    *(f"{_relay(rtt)}-raw-1" for rtt in MISS_RTTS_MS),
    *(f"{_miss(rtt)}-client-1" for rtt in MISS_RTTS_MS),
)


class UnexpectedStatus(Exception):
    """An edge answered HIT where MISS was expected, or the other way round."""


class Edge:
    """One edge process, a client reading through it, and its control stub."""

    def __init__(self, server: ServerProcess, namespace_id: str) -> None:
        self.server = server
        self.client = Client(edge=server.address, timeout_s=CALL_TIMEOUT_S)
        self.kv = self.client.namespace(namespace_id)
        stub = self.client.edge_stub
        assert stub is not None
        self.stub: edge_pb2_grpc.EdgeKVStub = stub
        self._channel = grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS)
        self._control = edge_pb2_grpc.EdgeControlStub(self._channel)

    async def stats(self) -> edge_pb2.EdgeStats:
        stats: edge_pb2.EdgeStats = await self._control.GetStats(
            edge_pb2.GetStatsRequest(), timeout=CALL_TIMEOUT_S
        )
        return stats

    async def close(self) -> None:
        await self.client.close()
        await self._channel.close()


def counting(edge: Edge, expect: str) -> Callable[[Scenario], AbstractAsyncContextManager[None]]:
    """Around each slice: add the edge's hit/miss counters to the scenario's checks."""

    @asynccontextmanager
    async def around(scenario: Scenario) -> AsyncIterator[None]:
        before, calls_before = await edge.stats(), scenario.calls
        yield
        after = await edge.stats()
        checks = scenario.checks
        checks["expect"] = expect
        checks["calls"] = checks.get("calls", 0) + scenario.calls - calls_before
        for name in ("hits", "misses", "expired", "revalidated", "stale_serves", "upstream_calls"):
            delta = getattr(after, name) - getattr(before, name)
            checks[f"edge_{name}"] = checks.get(f"edge_{name}", 0) + delta

    return around


def verify(scenario: Scenario) -> str | None:
    """Why the scenario's edge counters contradict what it was meant to measure, if they do."""
    checks = scenario.checks
    if "expect" not in checks:
        return None
    calls = checks["calls"]
    others = checks["edge_expired"] + checks["edge_revalidated"] + checks["edge_stale_serves"]
    if checks["expect"] == "HIT":
        ok = checks["edge_hits"] == calls and checks["edge_misses"] == 0 and others == 0
        ok = ok and checks["edge_upstream_calls"] == 0
    else:
        ok = checks["edge_misses"] == calls and checks["edge_hits"] == 0 and others == 0
    checks["verified"] = ok
    if ok:
        return None
    counters = {name: value for name, value in checks.items() if name.startswith("edge_")}
    return f"{scenario.label}: expected {calls} {checks['expect']}s, the edge counted {counters}"


# -- scenarios ------------------------------------------------------------------------


def _every_round(call: Call) -> Callable[[int], Call]:
    return lambda round_number: call


def hit_scenarios(edge: Edge, keys: list[str]) -> list[Scenario]:
    stride = len(keys) // max(HIT_CONCURRENCIES) + 1
    kv = edge.kv
    hit = edge_pb2.CACHE_STATUS_HIT

    async def hit_client(worker: int, i: int) -> object:
        result = await kv.get_with_metadata(
            keys[(worker * stride + i) % len(keys)], cache_ttl=CACHE_TTL_S
        )
        if result.cache_status != "HIT":
            raise UnexpectedStatus(f"expected HIT, got {result.cache_status}")
        return result

    requests = [
        edge_pb2.EdgeGetRequest(namespace_id=kv.id, key=key.encode(), cache_ttl=CACHE_TTL_S)
        for key in keys
    ]
    stub_get = edge.stub.Get

    async def hit_stub(worker: int, i: int) -> object:
        answer = await stub_get(
            requests[(worker * stride + i) % len(requests)], timeout=CALL_TIMEOUT_S
        )
        if answer.info.cache_status != hit:
            raise UnexpectedStatus(f"expected HIT, got {answer.info.cache_status}")
        return answer

    pids = (edge.server.pid,)
    around = counting(edge, "HIT")
    scenarios = []
    for callers in HIT_CONCURRENCIES:
        scenarios += [
            Scenario("hit", "client", callers, lambda _: hit_client, pids, around_slice=around),
            Scenario("hit", "stub", callers, lambda _: hit_stub, pids, around_slice=around),
        ]
    return scenarios


def miss_scenario(edge: Edge, central: ServerProcess, pool: list[str], rtt_ms: float) -> Scenario:
    kv = edge.kv
    following = itertools.count()  # the next never-read key, across every round

    async def miss_client(worker: int, i: int) -> object:
        n = next(following)
        if n >= len(pool):
            raise RuntimeError(f"the pool of {len(pool)} never-read keys ran out")
        result = await kv.get_with_metadata(pool[n], cache_ttl=CACHE_TTL_S)
        if result.cache_status != "MISS":
            raise UnexpectedStatus(f"expected MISS, got {result.cache_status}")
        return result

    scenario = Scenario(
        _miss(rtt_ms),
        "client",
        1,
        lambda _: miss_client,
        (edge.server.pid, central.pid),  # a MISS costs both servers CPU
        duration_factor=_duration_factor(rtt_ms),
        around_slice=counting(edge, "MISS"),
    )
    scenario.checks["rtt_ms"] = rtt_ms
    return scenario


async def write_keys(kv: KVNamespace, keys: Sequence[str], value: bytes) -> None:
    """Write ``keys`` at central in bulk writes of at most 10,000 entries."""
    step = limits.MAX_BULK_ENTRIES
    for start in range(0, len(keys), step):
        batch = keys[start : start + step]
        bulk = await kv.bulk_put([BulkPutEntry(key, value) for key in batch])
        if bulk.successful_key_count != len(batch):
            raise RuntimeError(f"pre-writing {len(batch)} keys failed: {bulk.unsuccessful_keys}")


async def read_all(kv: KVNamespace, keys: Sequence[str], concurrency: int = 50) -> None:
    """Read every key once (through an edge: each becomes a cached copy there)."""
    for start in range(0, len(keys), concurrency):
        await asyncio.gather(
            *(kv.get(key, cache_ttl=CACHE_TTL_S) for key in keys[start : start + concurrency])
        )


# -- the memory bound -----------------------------------------------------------------


async def write_large_values(central_kv: KVNamespace) -> list[str]:
    """200 MiB of distinct values at central, in bulk writes within the 100 MiB limit."""
    count = MEMORY_READ_BYTES // MEMORY_VALUE_BYTES
    keys = [f"big{i:05d}" for i in range(count)]
    started = time.monotonic()
    for start in range(0, count, MEMORY_BATCH):
        batch = keys[start : start + MEMORY_BATCH]
        entries = [
            BulkPutEntry(key, (start + n).to_bytes(8, "big") * (MEMORY_VALUE_BYTES // 8))
            for n, key in enumerate(batch)
        ]
        bulk = await central_kv.bulk_put(entries)
        if bulk.successful_key_count != len(batch):
            raise RuntimeError(f"pre-writing {len(batch)} large values failed")
        del entries
    write_s = time.monotonic() - started
    print(f"memory: wrote {count} values of {MEMORY_VALUE_BYTES // 1024} KiB in {write_s:.1f} s")
    return keys


async def memory_bound(
    edge: Edge, keys: list[str], warm_keys: list[str], callers: int
) -> dict[str, Any]:
    """Read ``keys`` (never read there) through an edge bounded to 64 MiB; watch its RSS."""
    pid = edge.server.pid
    for key in warm_keys[:MEMORY_WARMUP_READS]:
        await edge.kv.get(key, cache_ttl=CACHE_TTL_S)
    await asyncio.sleep(0.5)
    idle_rss = process_memory(pid)["VmRSS"]
    stats_before = await edge.stats()

    samples: list[tuple[float, int, int]] = []  # (seconds, RSS, bytes read so far)
    read_bytes = 0
    errors: list[str] = []
    done = asyncio.Event()

    async def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - t0, process_memory(pid)["VmRSS"], read_bytes))
            await asyncio.sleep(RSS_SAMPLE_S)

    requests = iter(
        edge_pb2.EdgeGetRequest(namespace_id=edge.kv.id, key=key.encode(), cache_ttl=CACHE_TTL_S)
        for key in keys
    )
    stub_get = edge.stub.Get
    miss = edge_pb2.CACHE_STATUS_MISS

    async def reader() -> None:
        nonlocal read_bytes
        for request in requests:
            answer = await stub_get(request, timeout=CALL_TIMEOUT_S)
            if answer.info.cache_status != miss or len(answer.entry.value) != MEMORY_VALUE_BYTES:
                errors.append(f"{request.key!r}: {answer.info.cache_status}")
            read_bytes += len(answer.entry.value)

    sampler = asyncio.create_task(sample())
    try:
        started = time.monotonic()
        await asyncio.gather(*(reader() for _ in range(callers)))
        read_s = time.monotonic() - started
        rss_after = process_memory(pid)["VmRSS"]
        await asyncio.sleep(1.0)
    finally:
        done.set()
        await sampler
    memory = process_memory(pid)
    stats = await edge.stats()
    peak = memory["VmHWM"]
    bound = idle_rss + TARGET_RSS_GROWTH_OVER_CACHE_BOUND * MEMORY_CACHE_BYTES
    sampled_max = max((rss for _, rss, _ in samples), default=0)
    result: dict[str, Any] = {
        "cache_max_bytes": MEMORY_CACHE_BYTES,
        "values": len(keys),
        "value_bytes": MEMORY_VALUE_BYTES,
        "callers": callers,
        "read_bytes": read_bytes,
        "read_s": round(read_s, 2),
        "read_mib_per_s": round(read_bytes / MiB / max(read_s, 1e-9), 1),
        "idle_rss_bytes": idle_rss,
        "max_rss_bytes": peak,  # VmHWM: the kernel's peak, not a sample
        "max_sampled_rss_bytes": sampled_max,
        "rss_after_bytes": rss_after,
        "rss_after_1s_bytes": memory["VmRSS"],
        "rss_bound_bytes": int(bound),
        "rss_within_bound": peak <= bound,
        "bytes_cached": stats.bytes_cached,
        "bytes_cached_within_bound": stats.bytes_cached <= MEMORY_CACHE_BYTES,
        "entries": stats.entries,
        "evictions": stats.evictions - stats_before.evictions,
        "misses": stats.misses - stats_before.misses,
        "errors": errors[:5],
        # Every 50 MiB read: the RSS then (a coarse trace for the report).
        "rss_trace": _trace(samples),
    }
    print(
        f"memory: read {read_bytes / MiB:.0f} MiB in {read_s:.1f} s "
        f"({result['read_mib_per_s']} MiB/s, {_callers(callers)}); RSS idle "
        f"{idle_rss / MiB:.1f} MiB, peak {peak / MiB:.1f} (sampled max "
        f"{sampled_max / MiB:.1f}), after {rss_after / MiB:.1f}, 1 s later "
        f"{memory['VmRSS'] / MiB:.1f}; bound {bound / MiB:.1f} MiB; cached "
        f"{stats.bytes_cached / MiB:.1f} MiB in {stats.entries} entries, "
        f"{result['evictions']} evictions",
        flush=True,
    )
    return result


def _trace(samples: list[tuple[float, int, int]]) -> list[dict[str, float]]:
    trace = []
    mark = 0
    for seconds, rss, read in samples:
        if read >= mark:
            trace.append(
                {
                    "s": round(seconds, 2),
                    "read_mib": round(read / MiB),
                    "rss_mib": round(rss / MiB, 1),
                }
            )
            mark += 50 * MiB
    return trace


# -- the run --------------------------------------------------------------------------


def _edge_argv(central: str, region: str, rtt_ms: float, *extra: str) -> list[str]:
    return [
        "edgekv",
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--central",
        central,
        "--region",
        region,
        "--node",
        f"{region}-bench",
        "--rtt-ms",
        f"{rtt_ms:g}",
        "--jitter-ms",
        "0",
        *extra,
    ]


def miss_pool_size(settings: LoopSettings) -> int:
    longest_s = settings.duration_s * SLOW_DURATION_FACTOR + settings.rounds * settings.warmup_s
    return int(longest_s / MISS_FASTEST_S) + 100


@dataclass
class Measured:
    results: list[Result]
    problems: list[str]
    memory: list[dict[str, Any]]


def _bounded(callers: int) -> str:
    return f"bounded-{callers}"


async def measure(
    settings: LoopSettings, only: Sequence[str], with_memory: bool, work_dir: Path
) -> Measured:
    db_path = work_dir / "edge-bench.db"
    storage = f"sqlite:{db_path}"
    central_argv = ["edgekv", "central", "--listen", "127.0.0.1:0", "--storage", storage]
    scenarios: list[Scenario] = []
    memory: list[dict[str, Any]] = []
    try:
        with ServerGroup(work_dir) as group:
            noop, central = group.start(
                [
                    ("noop", NOOP_ARGV, NOOP_READY),
                    ("central", [*central_argv, "--no-write-rate-limit"], CENTRAL_READY),
                ]
            )
            print(f"central storage: {storage}", flush=True)
            specs: list[tuple[str, Sequence[str], re.Pattern[str]]] = [
                ("relay", relay_argv(noop.address), RELAY_READY)
            ]
            specs += [
                (REGIONS[rtt], _edge_argv(central.address, REGIONS[rtt], rtt), EDGE_READY)
                for rtt in MISS_RTTS_MS
            ]
            if with_memory:
                bound = ("--cache-max-bytes", f"{MEMORY_CACHE_BYTES // MiB}MiB")
                specs += [
                    (_bounded(n), _edge_argv(central.address, _bounded(n), 0.0, *bound), EDGE_READY)
                    for n in MEMORY_CALLERS
                ]
            relay, *started = group.start(specs)
            async with (
                grpc.aio.insecure_channel(noop.address, options=CHANNEL_OPTIONS) as noop_channel,
                grpc.aio.insecure_channel(relay.address, options=CHANNEL_OPTIONS) as relay_channel,
                Client(central=central.address, timeout_s=CALL_TIMEOUT_S) as admin,
            ):
                ns = await admin.create_namespace(f"edge-bench-{os.getpid()}-{time.time_ns()}")
                central_kv = admin.namespace(ns.id)
                hit_keys = [f"k{i:05d}" for i in range(HIT_KEYS)]
                pool = [f"m{i:06d}" for i in range(miss_pool_size(settings))]
                await write_keys(central_kv, hit_keys + pool, b"v" * VALUE_BYTES)
                print(f"wrote {len(hit_keys)} HIT keys and {len(pool)} MISS keys at central")
                edges: dict[str, Edge] = {}
                try:
                    for server in started:
                        edges[server.name] = Edge(server, ns.id)
                    hit_edge = edges[REGIONS[HIT_EDGE_RTT_MS]]
                    await read_all(hit_edge.kv, hit_keys)
                    scenarios = [
                        Scenario("floor", "raw", n, lambda _: noop_call(noop_channel), (noop.pid,))
                        for n in HIT_CONCURRENCIES
                    ]
                    scenarios += hit_scenarios(hit_edge, hit_keys)
                    for rtt in MISS_RTTS_MS:
                        relay_scenario = Scenario(
                            _relay(rtt),
                            "raw",
                            1,
                            _every_round(noop_call(relay_channel, rtt)),
                            (relay.pid, noop.pid),
                            duration_factor=_duration_factor(rtt),
                        )
                        scenarios.append(relay_scenario)
                        scenarios.append(miss_scenario(edges[REGIONS[rtt]], central, pool, rtt))
                    scenarios.sort(key=lambda s: s.callers)  # stable: floor first
                    if only:
                        scenarios = [s for s in scenarios if s.label in only]
                    await run_rounds(scenarios, settings)
                    if with_memory:
                        large_keys = await write_large_values(central_kv)
                        for n in MEMORY_CALLERS:
                            edge = edges[_bounded(n)]
                            memory.append(await memory_bound(edge, large_keys, hit_keys, n))
                finally:
                    for edge in edges.values():
                        await edge.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    problems = [problem for scenario in scenarios if (problem := verify(scenario))]
    for entry in memory:
        if entry["errors"] or entry["misses"] != entry["values"]:
            problems.append(f"memory: not every large read was a MISS: {entry['errors']}")
    return Measured([scenario.result() for scenario in scenarios], problems, memory)


# -- report ---------------------------------------------------------------------------


def ratios(results: list[Result], memory: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    floor = find(results, "floor", "raw", 1)
    for callers in HIT_CONCURRENCIES:
        floor_n = find(results, "floor", "raw", callers)
        for path in ("client", "stub"):
            hit = find(results, "hit", path, callers)
            if floor_n and hit and floor_n.p50_us:
                value = hit.p50_us / floor_n.p50_us
                out[f"hit_p50_over_floor_p50_c{callers}_{path}"] = ratio(
                    f"HIT p50 / floor p50 at {_callers(callers)} ({path})",
                    value,
                    f"<= {TARGET_HIT_OVER_FLOOR_P50}",
                    value <= TARGET_HIT_OVER_FLOOR_P50,
                    is_target=(callers, path) == (1, "client"),
                )
    for rtt_ms in MISS_RTTS_MS:
        miss = find(results, _miss(rtt_ms), "client", 1)
        relay = find(results, _relay(rtt_ms), "raw", 1)
        if not (floor and floor.p50_us):
            continue
        for name, result in (("MISS", miss), ("relay", relay)):
            if result is None:
                continue
            value = (result.p50_us - rtt_ms * 1000) / floor.p50_us
            out[f"{name.lower()}_p50_minus_rtt_over_floor_p50_rtt{rtt_ms:g}"] = ratio(
                f"({name} p50 - {rtt_ms:g} ms RTT) / floor p50 at 1 caller",
                value,
                f"<= {TARGET_MISS_MINUS_RTT_OVER_FLOOR_P50}",
                value <= TARGET_MISS_MINUS_RTT_OVER_FLOOR_P50,
                is_target=name == "MISS" and rtt_ms in TARGET_MISS_RTTS_MS,
            )
        if miss and relay:
            # What edgekv's MISS costs beyond a do-nothing edge on the same link, in µs.
            out[f"miss_minus_relay_p50_us_rtt{rtt_ms:g}"] = ratio(
                f"MISS p50 - relay p50 at {rtt_ms:g} ms, in µs (edgekv's own share)",
                miss.p50_us - relay.p50_us,
                None,
                None,
                is_target=False,
            )
    for entry in memory:
        callers = entry["callers"]
        growth = (entry["max_rss_bytes"] - entry["idle_rss_bytes"]) / MEMORY_CACHE_BYTES
        out[f"rss_growth_over_cache_bound_c{callers}"] = ratio(
            f"(max RSS - idle RSS) / 64 MiB cache bound, 200 MiB read by {_callers(callers)}",
            growth,
            f"<= {TARGET_RSS_GROWTH_OVER_CACHE_BOUND}",
            growth <= TARGET_RSS_GROWTH_OVER_CACHE_BOUND,
            is_target=callers == 1,
        )
        out[f"bytes_cached_over_cache_bound_c{callers}"] = ratio(
            f"bytes cached / 64 MiB cache bound, after 200 MiB read by {_callers(callers)}",
            entry["bytes_cached"] / MEMORY_CACHE_BYTES,
            "<= 1.0",
            entry["bytes_cached_within_bound"],
            is_target=False,
        )
    return out


async def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    settings = loop_settings(args)
    info = machine()
    print_machine(info)
    print(
        f"closed loop; floor and HIT at {'/'.join(map(str, HIT_CONCURRENCIES))} callers, relay and "
        f"MISS at 1 caller and {', '.join(f'{rtt:g}' for rtt in MISS_RTTS_MS)} ms RTT; "
        f"per scenario {settings.duration_s:g} s ({SLOW_DURATION_FACTOR:g}x at RTTs >= "
        f"{SLOW_RTT_MS:g} ms) measured in {settings.rounds} rounds, each slice after "
        f"{settings.warmup_s:g} s warm-up; {VALUE_BYTES}-byte values, cacheTtl {CACHE_TTL_S} s",
        flush=True,
    )
    measured = await measure(settings, args.only, not args.no_memory, work_dir)
    print_results(measured.results, args.markdown)
    for problem in measured.problems:
        print(f"CHECK FAILED: {problem}")
    if not measured.problems:
        print("checks: every HIT and MISS confirmed by the answers and by the edges' counters")
    computed = ratios(measured.results, measured.memory)
    finish_machine(info)
    contended = contention(measured.results, info["usable_cores"])
    if contended:
        print(f"WARNING: {contended}")
    print_ratios(computed, "ratios (client path = what users see):")
    return {
        "machine": info,
        "settings": {
            "duration_s": settings.duration_s,
            "rounds": settings.rounds,
            "warmup_s_per_slice": settings.warmup_s,
            "slow_rtt_ms": SLOW_RTT_MS,
            "slow_duration_factor": SLOW_DURATION_FACTOR,
            "hit_callers": list(HIT_CONCURRENCIES),
            "miss_rtts_ms": list(MISS_RTTS_MS),
            "value_bytes": VALUE_BYTES,
            "hit_keys": HIT_KEYS,
            "cache_ttl_s": CACHE_TTL_S,
            "memory_callers": list(MEMORY_CALLERS),
            "loop": "closed",
            "central_storage": "sqlite (WAL, synchronous=FULL)",
        },
        "results": [asdict(result) for result in measured.results],
        "memory": measured.memory,
        "ratios": computed,
        "check_failures": measured.problems,
        "failed": bool(measured.problems),
        "contention_warning": contended,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.edge_bench",
        description="Edge HIT and MISS latency against a gRPC no-op floor, and the cache's "
        "memory bound.",
    )
    add_loop_arguments(parser, ALL_LABELS)
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the memory-bound measurement"
    )
    args = parser.parse_args(argv)
    check_loop_arguments(parser, args, ALL_LABELS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda work_dir: run(args, work_dir), args.out)


if __name__ == "__main__":
    sys.exit(main())
