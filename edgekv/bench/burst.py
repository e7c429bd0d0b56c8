"""Bursts: how many calls one client should have in flight per channel.

Theory of operation: ``edgekv bench burst`` starts a central store (SQLite)
and two edges (one 2 ms and one 83 ms from central) as child processes, and
for each bound B on a client's calls in flight (:mod:`edgekv.inflight`) fires
bursts of N calls at once from one :class:`edgekv.Client`:

* ``central-put`` — N puts of distinct keys at central: the server's CPU is
  the limit, so a small B leaves nothing idle that a larger B would use;
* ``edge-miss-2ms`` / ``edge-miss-83ms`` — N reads of keys no edge holds, each
  a MISS that crosses the edge's modelled link: the round trip is the limit, so
  by Little's law a burst cannot go faster than B calls per round trip.

Each burst reports its throughput (calls that succeeded per second of the
burst), the completion time of its median and 99th-percentile call (queueing
included, from the burst's start) and its failures. The bounds are tried in
rounds, every bound once per round, so that a neighbour's load on a shared
machine falls on all of them alike; a bound's throughput is its median over
the rounds, given as a ratio to the best median of that workload among the bounds that failed no
call. A
bound of 0 stands for no bound at all (every call started at once), to show
what grpc.aio's server does to a burst of more than 1,000 calls: it cancels
some. The best bound is the smallest one at which every workload reaches
its best throughput within the noise.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import edgekv
from edgekv.bench.servers import ServerGroup
from edgekv.node_args import central_args, edge_args, edgekv_command
from edgekv.topology import CentralSpec, RegionSpec, Topology

DEFAULT_BOUNDS = (32, 64, 128, 256, 512, 1024, 0)
DEFAULT_CALLS = 3000
DEFAULT_ROUNDS = 3
# No bound: more slots than any burst has calls.
UNBOUNDED = 1_000_000
EDGE_RTTS_MS = (2.0, 83.0)


def _topology(work_dir: Path) -> Topology:
    regions = tuple(RegionSpec(f"r{rtt_ms:g}ms", rtt_ms) for rtt_ms in EDGE_RTTS_MS)
    return Topology(CentralSpec(storage=f"sqlite:{work_dir / 'burst.db'}"), regions)


async def _burst(calls: list[Callable[[], Awaitable[object]]]) -> dict[str, Any]:
    """Start every call at once; when each ended, and how."""
    started = time.monotonic()
    ended: list[float] = []
    failures: Counter[str] = Counter()

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except Exception as exc:
            failures[type(exc).__name__ + ": " + str(exc)[:60]] += 1
        else:
            ended.append(time.monotonic() - started)

    await asyncio.gather(*(one(call) for call in calls))
    elapsed_s = time.monotonic() - started
    ended.sort()
    return {
        "calls": len(calls),
        "ok": len(ended),
        "failures": dict(failures),
        "elapsed_s": round(elapsed_s, 3),
        "throughput_per_s": round(len(ended) / elapsed_s, 1),
        "p50_done_ms": round(1000 * statistics.median(ended), 1) if ended else None,
        "p99_done_ms": round(1000 * ended[int(0.99 * (len(ended) - 1))], 1) if ended else None,
    }


async def _bursts_at(
    bound: int, calls: int, central: str, edges: dict[str, str], namespace: str, round_number: int
) -> dict[str, dict[str, Any]]:
    """One burst of each workload, every call's key new (no put is rate limited, no read
    finds a copy)."""
    slots = bound or UNBOUNDED
    measured: dict[str, dict[str, Any]] = {}
    async with edgekv.Client(
        central=central, max_in_flight=slots, retry=edgekv.RetryPolicy.NONE
    ) as client:
        kv = client.namespace(namespace)
        put = functools.partial(kv.put, value="v")
        measured["central-put"] = await _burst(
            [functools.partial(put, f"put-{round_number}-{bound}-{n}") for n in range(calls)]
        )
    for name, address in edges.items():
        async with edgekv.Client(
            edge=address, max_in_flight=slots, retry=edgekv.RetryPolicy.NONE
        ) as client:
            kv = client.namespace(namespace)
            keys = [f"miss-{name}-{round_number}-{bound}-{n}" for n in range(calls)]
            measured[f"edge-miss-{name}"] = await _burst(
                [functools.partial(kv.get, key) for key in keys]
            )
    return measured


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (bound, workload): median throughput over the rounds, and its ratio
    to the best median of the workload; failures summed over the rounds."""
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["bound"], row["workload"]), []).append(row)
    summary = []
    for (bound, workload), runs in groups.items():
        failures: Counter[str] = Counter()
        for run in runs:
            failures.update(run["failures"])
        summary.append(
            {
                "bound": bound,
                "workload": workload,
                "rounds": len(runs),
                "throughput_per_s": statistics.median(run["throughput_per_s"] for run in runs),
                "p99_done_ms": statistics.median(run["p99_done_ms"] or 0.0 for run in runs),
                "failed": sum(failures.values()),
                "failures": dict(failures),
            }
        )
    # The best is that of a bound that failed no call: failing calls end early, and a
    # burst that loses a fifth of its calls is not faster for it.
    best: dict[str, float] = {}
    for row in summary:
        if not row["failed"] or row["workload"] not in best:
            best[row["workload"]] = max(best.get(row["workload"], 0.0), row["throughput_per_s"])
    for row in summary:
        row["throughput_over_best"] = round(row["throughput_per_s"] / best[row["workload"]], 2)
    return summary


async def measure(
    bounds: Sequence[int] = DEFAULT_BOUNDS,
    calls: int = DEFAULT_CALLS,
    rounds: int = DEFAULT_ROUNDS,
) -> list[dict[str, Any]]:
    """Every workload's burst at every bound (0: none), ``rounds`` times; one row per burst."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgekv-burst-") as tmp:
        work_dir = Path(tmp)
        topology = _topology(work_dir)
        with ServerGroup(work_dir) as group:
            (central,) = group.start([("central", edgekv_command(central_args(topology)))])
            specs = [
                (
                    region.name,
                    edgekv_command(edge_args(topology, region, central=central.address, seed=1)),
                )
                for region in topology.regions
            ]
            started = group.start(specs)
            edges = {
                f"{rtt_ms:g}ms": edge.address
                for rtt_ms, edge in zip(EDGE_RTTS_MS, started, strict=True)
            }
            async with edgekv.Client(central=central.address) as admin:
                namespace = (await admin.create_namespace("burst")).id
            for round_number in range(1, rounds + 1):
                for bound in bounds:
                    measured = await _bursts_at(
                        bound, calls, central.address, edges, namespace, round_number
                    )
                    for workload, result in measured.items():
                        row = {"round": round_number, "bound": bound or "none"}
                        rows.append({**row, "workload": workload, **result})
                        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    failed = sum(row["failures"].values())
    return (
        f"round {row['round']}  bound {row['bound']!s:>5}  {row['workload']:<17} "
        f"{row['ok']:>5}/{row['calls']} ok "
        f"in {row['elapsed_s']:6.2f} s  {row['throughput_per_s']:8.1f}/s  "
        f"p50 {row['p50_done_ms']} ms  p99 {row['p99_done_ms']} ms"
        + (f"  {failed} failed: {row['failures']}" if failed else "")
    )


def table(summary: list[dict[str, Any]]) -> str:
    """The markdown table benchmarks/README.md shows: throughput / best, per bound."""
    rows = summary
    workloads = list(dict.fromkeys(row["workload"] for row in rows))
    bounds = list(dict.fromkeys(row["bound"] for row in rows))
    cells = {(row["bound"], row["workload"]): row for row in rows}
    lines = [
        "| calls in flight | " + " | ".join(workloads) + " |",
        "|---:|" + "---:|" * len(workloads),
    ]
    for bound in bounds:
        parts = []
        for workload in workloads:
            row = cells[(bound, workload)]
            failed = row["failed"]
            parts.append(
                f"{row['throughput_over_best']:.2f}" + (f" ({failed} failed)" if failed else "")
            )
        lines.append(f"| {bound} | " + " | ".join(parts) + " |")
    return "\n".join(lines)
