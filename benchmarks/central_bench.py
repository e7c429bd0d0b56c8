"""Central store latency and throughput, measured against the gRPC floor in the same run.

Run::

    .venv/bin/python -m benchmarks.central_bench [--duration-s 3] [--out FILE.json]

Theory of operation (the machinery is :mod:`benchmarks.harness`, shared with
``edge_bench``):

* **Floor in the same run.** Absolute numbers say more about the machine than
  about edgekv, so every run also measures what gRPC alone costs here: a child
  process serving ``/bench.Noop/Call`` through a generic handler with identity
  (de)serializers that returns its (empty) request. The targets are ratios to
  that floor, or between scenarios of the same run.
* **Interleaved rounds.** Every scenario's measured time is split into
  ``--rounds`` slices and the slices run round-robin (floor, Get, Put, ...,
  then again), so a neighbour's load or a clock change skews all scenarios
  alike instead of one of them; the slices of a scenario add up to its result.
* **Separate processes.** Both servers (the no-op one and ``python -m edgekv
  central --storage sqlite:... --no-write-rate-limit``) are child processes,
  so the load generator never shares an event loop or a GIL with a server;
  only one of them is busy at a time.
* **Closed loop.** A scenario runs N coroutines on one channel, each issuing
  its next call as soon as the previous one returns, first for a warm-up and
  then for the measured slice. A closed loop under-reports tail latency (a
  slow call delays the next one: coordinated omission) and its throughput is
  "N callers' worth", not capacity; it is a first script, to be replaced by an
  open-loop harness with a fixed arrival rate.
* **Two paths.** ``client`` is what users see (``edgekv.Client``:
  ``kv.get`` / ``kv.put`` with validation, the read-retry wrapper, decoding);
  ``stub`` calls the raw generated stub with prepared requests, which
  separates client-library cost from server cost. The target ratios use the
  client path; the stub ratios are printed next to them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc

from benchmarks.harness import (
    CALL_TIMEOUT_S,
    CENTRAL_READY,
    NOOP_ARGV,
    NOOP_READY,
    Call,
    LoopSettings,
    Result,
    Scenario,
    ServerGroup,
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
    ratio,
    run_main,
    run_rounds,
)
from edgekv import Client
from edgekv.client import BulkPutEntry, KVNamespace
from edgekv.rpc import CHANNEL_OPTIONS
from edgekv.v1 import central_pb2 as pb

VALUE_BYTES = 100
GET_KEYS = 1000
CONCURRENCIES = (1, 16)
OPERATIONS = (
    ("floor", "raw"),
    ("get", "client"),
    ("get", "stub"),
    ("put", "client"),
    ("put", "stub"),
)
ALL_LABELS = tuple(f"{op}-{path}-{n}" for n in CONCURRENCIES for op, path in OPERATIONS)
TARGET_GET_OVER_FLOOR_P50 = 1.3
TARGET_PUT_OVER_GET_THROUGHPUT = 0.7


# -- scenarios ------------------------------------------------------------------------


def central_scenarios(client: Client, kv: KVNamespace, keys: list[str]) -> list[Scenario]:
    value = b"v" * VALUE_BYTES
    # Each caller walks the keys from its own offset, so concurrent callers read different rows.
    stride = len(keys) // max(CONCURRENCIES) + 1

    async def get_client(worker: int, i: int) -> object:
        return await kv.get(keys[(worker * stride + i) % len(keys)])

    requests = [pb.GetRequest(namespace_id=kv.id, key=key.encode()) for key in keys]
    stub_get = client.stub.Get

    async def get_stub(worker: int, i: int) -> object:
        request = requests[(worker * stride + i) % len(requests)]
        return await stub_get(request, timeout=CALL_TIMEOUT_S)

    stub_put = client.stub.Put

    def put(path: str, callers: int) -> Callable[[int], Call]:
        # Every call writes a key never written before: the per-key limit can never trigger.
        def make(round_number: int) -> Call:
            tag = f"p-{path}-{callers}-{round_number}"

            async def put_client(worker: int, i: int) -> object:
                return await kv.put(f"{tag}-{worker}-{i}", value)

            async def put_stub(worker: int, i: int) -> object:
                key = f"{tag}-{worker}-{i}".encode()
                request = pb.PutRequest(namespace_id=kv.id, key=key, value=value)
                return await stub_put(request, timeout=CALL_TIMEOUT_S)

            return put_client if path == "client" else put_stub

        return make

    scenarios = []
    for callers in CONCURRENCIES:
        scenarios += [
            Scenario("get", "client", callers, lambda _: get_client),
            Scenario("get", "stub", callers, lambda _: get_stub),
            Scenario("put", "client", callers, put("client", callers)),
            Scenario("put", "stub", callers, put("stub", callers)),
        ]
    return scenarios


async def measure(
    settings: LoopSettings, only: Sequence[str], db_dir: Path, log_dir: Path
) -> list[Result]:
    """Start both servers, then run every scenario for a slice in each of the rounds."""
    db_path = db_dir / "central-bench.db"
    storage = f"sqlite:{db_path}"
    central_argv = ["edgekv", "central", "--listen", "127.0.0.1:0", "--storage", storage]
    try:
        with ServerGroup(log_dir) as group:
            noop, central = group.start(
                [
                    ("noop", NOOP_ARGV, NOOP_READY),
                    ("central", [*central_argv, "--no-write-rate-limit"], CENTRAL_READY),
                ]
            )
            print(f"central storage: {storage}", flush=True)
            async with (
                grpc.aio.insecure_channel(noop.address, options=CHANNEL_OPTIONS) as channel,
                Client(central=central.address, timeout_s=CALL_TIMEOUT_S) as client,
            ):
                ns = await client.create_namespace(f"bench-{os.getpid()}-{time.time_ns()}")
                kv = client.namespace(ns.id)
                keys = [f"k{i:05d}" for i in range(GET_KEYS)]
                bulk = await kv.bulk_put([BulkPutEntry(key, b"v" * VALUE_BYTES) for key in keys])
                if bulk.successful_key_count != GET_KEYS:
                    raise RuntimeError(f"pre-writing {GET_KEYS} keys failed: {bulk}")
                noop_scenarios = [
                    Scenario("floor", "raw", n, lambda _: noop_call(channel), (noop.pid,))
                    for n in CONCURRENCIES
                ]
                scenarios = noop_scenarios + central_scenarios(client, kv, keys)
                for scenario in scenarios[len(noop_scenarios) :]:
                    scenario.server_pids = (central.pid,)
                scenarios.sort(key=lambda s: s.callers)  # stable: floor first at each concurrency
                if only:
                    scenarios = [s for s in scenarios if s.label in only]
                await run_rounds(scenarios, settings)
    finally:
        for suffix in ("", "-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    return [scenario.result() for scenario in scenarios]


# -- report ---------------------------------------------------------------------------


def ratios(results: list[Result]) -> dict[str, dict[str, Any]]:
    """The target ratios (client path) and the same ratios on the stub path, for comparison."""
    out: dict[str, dict[str, Any]] = {}
    top = max(CONCURRENCIES)
    floor = find(results, "floor", "raw", 1)
    for path in ("client", "stub"):
        get1 = find(results, "get", path, 1)
        if floor and get1 and floor.p50_us:
            value = get1.p50_us / floor.p50_us
            out[f"get_p50_over_floor_p50_c1_{path}"] = ratio(
                f"Get p50 / floor p50 at 1 caller ({path})",
                value,
                f"<= {TARGET_GET_OVER_FLOOR_P50}",
                value <= TARGET_GET_OVER_FLOOR_P50,
                is_target=path == "client",
            )
        get16 = find(results, "get", path, top)
        put16 = find(results, "put", path, top)
        if get16 and put16 and get16.ops_per_s:
            value = put16.ops_per_s / get16.ops_per_s
            out[f"put_over_get_throughput_c{top}_{path}"] = ratio(
                f"Put throughput / Get throughput at {top} callers ({path})",
                value,
                f">= {TARGET_PUT_OVER_GET_THROUGHPUT}",
                value >= TARGET_PUT_OVER_GET_THROUGHPUT,
                is_target=path == "client",
            )
    return out


# -- main -----------------------------------------------------------------------------


async def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    settings = loop_settings(args)
    db_dir = args.db_dir or work_dir
    info = machine()
    print_machine(info)
    print(
        f"closed loop, callers {'/'.join(map(str, CONCURRENCIES))}; per scenario "
        f"{settings.duration_s:g} s measured in {settings.rounds} rounds, each slice after "
        f"{settings.warmup_s:g} s warm-up; {VALUE_BYTES}-byte values; sqlite in {db_dir}",
        flush=True,
    )
    results = await measure(settings, args.only, db_dir, work_dir)
    print_results(results, args.markdown)
    computed = ratios(results)
    finish_machine(info)
    contended = contention(results, info["usable_cores"])
    if contended:
        print(f"WARNING: {contended}")
    print_ratios(computed, "ratios (client path = what users see; stub path for comparison):")
    return {
        "machine": info,
        "settings": {
            "duration_s": settings.duration_s,
            "rounds": settings.rounds,
            "warmup_s_per_slice": settings.warmup_s,
            "callers": list(CONCURRENCIES),
            "value_bytes": VALUE_BYTES,
            "get_keys": GET_KEYS,
            "loop": "closed",
            "storage": "sqlite (WAL, synchronous=FULL)",
        },
        "results": [asdict(result) for result in results],
        "ratios": computed,
        "contention_warning": contended,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.central_bench",
        description="Central Get/Put latency and throughput against a gRPC no-op floor.",
    )
    add_loop_arguments(parser, ALL_LABELS)
    parser.add_argument(
        "--db-dir", type=Path, help="folder for the SQLite file (default: a fresh temp folder)"
    )
    args = parser.parse_args(argv)
    check_loop_arguments(parser, args, ALL_LABELS)
    if args.db_dir is not None and not args.db_dir.is_dir():
        parser.error(f"--db-dir: {args.db_dir} is not a folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda work_dir: run(args, work_dir), args.out)


if __name__ == "__main__":
    sys.exit(main())
