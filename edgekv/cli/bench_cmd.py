"""``edgekv bench``: the latency benchmarks (the harness is :mod:`edgekv.bench`).

Theory of operation: ``quick`` runs the main scenarios for a few seconds each
(about a minute in all) and prints the table people look at first; ``run``
takes any scenarios, rates and sweeps; ``burst`` measures one client's bursts
at several bounds on its calls in flight; ``api`` measures the REST API node's
GET beside a bare HTTP endpoint, central's Get and the gRPC floor
(:mod:`edgekv.bench.api`); ``replicas`` measures central's Get and Put with one
and with two central processes on one Redis (:mod:`edgekv.bench.replicas`);
``list`` names them. Each run writes
``results/bench/<timestamp>/`` under the current directory (``resources``:
``results/bench/resources-<timestamp>/``, ``burst``: ``burst-<timestamp>``,
``api``: ``api-<timestamp>``, ``replicas``: ``replicas-<timestamp>``;
``--out DIR`` for another parent
than ``results``), as the experiments write ``results/<experiment>/...``. Exit 0 when every run was
valid (the generator kept up) and no call failed; 1 otherwise, saying why.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekv.cli.common import Subcommands
from edgekv.core.errors import UsageError


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "bench",
        help="open-loop latency benchmarks with floors measured in the same run",
        description="Open-loop latency benchmarks: arrivals at a rate whatever the latency, "
        "latency from the intended start, full HdrHistograms, a no-op gRPC floor and a "
        "redis-server baseline measured in the same run.",
        epilog="example: edgekv bench quick",
    )
    kinds = parser.add_subparsers(
        dest="bench_command",
        metavar="quick|run|resources|soak|burst|sim|api|replicas|list",
        required=True,
    )
    quick = kinds.add_parser("quick", help="the main scenarios, about a minute")
    _common(quick)
    quick.set_defaults(run=run_quick)
    full = kinds.add_parser("run", help="chosen scenarios, rates and sweeps")
    _common(full)
    full.add_argument(
        "--scenarios", default="all", metavar="A,B", help="names (see `edgekv bench list`) or all"
    )
    full.add_argument(
        "--duration", type=float, default=5.0, metavar="S", help="seconds per run (default 5)"
    )
    full.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="PER_S",
        help="calls per second for every scenario (default: each scenario's own)",
    )
    full.add_argument(
        "--sweep", action="store_true", help="also step the rate up to find each knee"
    )
    full.add_argument(
        "--p99-bound-ms",
        type=float,
        default=20.0,
        metavar="MS",
        help="a knee is the highest rate with p99 under this (default 20)",
    )
    full.set_defaults(run=run_full)
    resources = kinds.add_parser(
        "resources",
        help="edge memory under its cache bound; a cluster's start time, idle CPU and RSS",
    )
    resources.add_argument(
        "--idle-s",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds of idle CPU measured (default 10)",
    )
    _add_out_flag(resources)
    resources.set_defaults(run=run_resources)
    soak = kinds.add_parser(
        "soak",
        help="a steady mixed workload through five regions for a long time; fails on growth",
        description="Run 80% of the measured knee (or --rate) of a mixed workload through a "
        "five-region cluster for --duration seconds, sampling each process's RSS, open file "
        "descriptors and tasks and each slice's latency; fail if any call fails or a gauge "
        "grows more than 10% from the second quarter of the run to the last.",
    )
    soak.add_argument(
        "--duration", type=float, default=3600.0, metavar="S", help="seconds (default 3600)"
    )
    soak.add_argument(
        "--rate", type=float, default=None, metavar="PER_S", help="calls/s (default: 80%% of knee)"
    )
    soak.add_argument(
        "--sample-every", type=float, default=5.0, metavar="S", help="seconds (default 5)"
    )
    soak.add_argument("--seed", type=int, default=1, help="seed of the workload (default 1)")
    _add_out_flag(soak)
    soak.set_defaults(run=run_soak)
    burst = kinds.add_parser(
        "burst",
        help="bursts of calls from one client at several bounds on its calls in flight",
    )
    burst.add_argument(
        "--calls", type=int, default=3000, metavar="N", help="calls per burst (default 3000)"
    )
    burst.add_argument(
        "--bounds",
        default="32,64,128,256,512,1024,0",
        metavar="B,B",
        help="calls in flight per channel to try; 0 is no bound (default 32,64,...,1024,0)",
    )
    burst.add_argument(
        "--rounds", type=int, default=3, metavar="R", help="bursts per bound (default 3)"
    )
    _add_out_flag(burst)
    burst.set_defaults(run=run_burst)
    sim = kinds.add_parser(
        "sim",
        help="simulated operations per real second, against the node code's own cost",
        description="Measure the node code alone (an edge HIT, central's Get, called "
        "directly), then a five-region staleness workload in the simulation: simulated "
        "operations per real second and their cost as a multiple of the HIT floor; with "
        "--profile, where the time goes by layer.",
    )
    sim.add_argument(
        "--duration", type=float, default=300.0, metavar="S", help="simulated s (default 300)"
    )
    sim.add_argument(
        "--read-rate",
        type=float,
        default=200.0,
        metavar="PER_S",
        help="reads per simulated second in each of the four reading regions (default 200)",
    )
    sim.add_argument("--profile", action="store_true", help="split the time by layer")
    _add_out_flag(sim)
    sim.set_defaults(run=run_sim)
    _register_api(kinds)
    _register_replicas(kinds)
    listing = kinds.add_parser("list", help="the scenarios and what one call of each is")
    listing.set_defaults(run=run_list)


def _register_api(kinds: Any) -> None:
    api = kinds.add_parser(
        "api",
        help="the REST API's GET beside a bare HTTP endpoint, central's Get and the gRPC floor",
        description="Measure GET of a value through `edgekv api`, a bare aiohttp no-op "
        "endpoint, central's gRPC Get and the no-op gRPC floor, in the same run: p50/p90/p99 "
        "at an open-loop rate and throughput at 16 closed-loop callers, in interleaved "
        "rounds; judge (API GET p50 - central Get p50) <= 1.2 x the bare endpoint's p50 and "
        "API throughput >= 0.7 x central's.",
        epilog="example: edgekv bench api --duration 15",
    )
    api.add_argument(
        "--duration",
        type=float,
        default=6.0,
        metavar="S",
        help="seconds per measurement, open and closed loop each (default 6)",
    )
    api.add_argument(
        "--rate", type=float, default=300.0, metavar="PER_S", help="open-loop calls/s (default 300)"
    )
    api.add_argument(
        "--callers", type=int, default=16, metavar="N", help="closed-loop callers (default 16)"
    )
    api.add_argument(
        "--rounds", type=int, default=3, metavar="R", help="interleaved rounds (default 3)"
    )
    api.add_argument(
        "--storage",
        choices=("sqlite", "memory"),
        default="sqlite",
        help="central's storage (default sqlite, in a temporary folder)",
    )
    _common(api)
    api.set_defaults(run=run_api)


def _register_replicas(kinds: Any) -> None:
    replicas = kinds.add_parser(
        "replicas",
        help="central's Get and Put with one and with two central processes on one Redis",
        description="Start one redis-server (appendonly yes, appendfsync always) and three "
        "centrals on it: one alone on a database, two sharing another, called through the "
        "address list A,B. Measure Get and Put throughput at N closed-loop callers (a "
        "generator process of its own) and each process's CPU per operation, both "
        "configurations in interleaved rounds of the same run; judge central CPU per "
        "operation with 2 replicas <= 1.1 x with 1 and throughput with 2 >= with 1, and say "
        "what each limit (a core per central, Redis's one thread, the cores) allows here and "
        "on 4 cores.",
        epilog="example: edgekv bench replicas --duration 15",
    )
    replicas.add_argument(
        "--duration",
        type=float,
        default=6.0,
        metavar="S",
        help="seconds per configuration and operation, over the rounds (default 6)",
    )
    replicas.add_argument(
        "--callers", type=int, default=16, metavar="N", help="closed-loop callers (default 16)"
    )
    replicas.add_argument(
        "--rounds", type=int, default=6, metavar="R", help="interleaved rounds (default 6)"
    )
    _add_out_flag(replicas)
    replicas.set_defaults(run=run_replicas)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arrival",
        choices=("poisson", "constant"),
        default="poisson",
        help="arrival process (default poisson)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="generator processes (default: as the rate needs)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the arrivals (default 1)")
    _add_out_flag(parser)


def _add_out_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write results under DIR/bench/ (default: results, in the current directory)",
    )


async def run_resources(args: argparse.Namespace) -> int:
    import json

    from edgekv.bench.resources import measure
    from edgekv.bench.runner import DEFAULT_OUT, results_folder
    from edgekv.bench.servers import machine
    from edgekv.provenance import provenance

    if args.idle_s <= 0:
        raise UsageError(f"--idle-s must be positive, got {args.idle_s:g}")
    results = await measure(args.idle_s)
    folder = results_folder(args.out or DEFAULT_OUT, prefix="resources-")
    document = {"machine": machine(), **provenance(), **results}
    (folder / "summary.json").write_text(json.dumps(document, indent=2))
    print(f"\nresults: {folder}")
    within = all(m["within_target"] for m in results["edge_memory"])
    return 0 if within else 1


async def run_soak(args: argparse.Namespace) -> int:
    import json

    from edgekv.bench.runner import DEFAULT_OUT
    from edgekv.bench.soak import SoakOptions, soak

    if not args.duration > 0 or not args.sample_every > 0:
        raise UsageError("--duration and --sample-every must be positive")
    if args.rate is not None and not args.rate > 0:
        raise UsageError(f"--rate must be positive, got {args.rate:g}")
    if args.sample_every * 8 > args.duration:
        raise UsageError("--duration must hold at least 8 samples (--sample-every x 8)")
    options = SoakOptions(
        args.duration, args.rate, sample_every_s=args.sample_every, seed=args.seed,
        out=args.out or DEFAULT_OUT,
    )  # fmt: skip
    folder = await soak(options)
    summary = json.loads((folder / "summary.json").read_text())
    print(
        f"\n{summary['calls']} calls at {summary['rate_per_s']:.0f}/s, {summary['errors']} errors"
    )
    for reason in summary["reasons"]:
        print(f"edgekv: error: {reason}")
    print(f"results: {folder}")
    return 0 if summary["passed"] else 1


async def run_burst(args: argparse.Namespace) -> int:
    import json

    from edgekv.bench.burst import measure, summarise, table
    from edgekv.bench.runner import DEFAULT_OUT, results_folder
    from edgekv.bench.servers import machine
    from edgekv.provenance import provenance

    try:
        bounds = [int(bound) for bound in args.bounds.split(",") if bound.strip()]
    except ValueError:
        raise UsageError(f"--bounds takes whole numbers, got {args.bounds!r}") from None
    if args.calls < 1 or args.rounds < 1 or not bounds or min(bounds) < 0:
        raise UsageError("--calls and --rounds must be positive and --bounds 0 or more")
    info = machine()
    rows = await measure(bounds, args.calls, args.rounds)
    summary = summarise(rows)
    folder = results_folder(args.out or DEFAULT_OUT, prefix="burst-")
    document = {
        "machine": info,
        **provenance(),
        "calls": args.calls,
        "summary": summary,
        "bursts": rows,
    }
    (folder / "summary.json").write_text(json.dumps(document, indent=2))
    print(
        f"\nmedian throughput / the best median of its workload (of the bounds that failed "
        f"no call):\n{table(summary)}"
        f"\n\nresults: {folder}"
    )
    return 0


async def run_list(args: argparse.Namespace) -> int:
    from edgekv.bench.scenarios import all_scenarios

    for scenario in all_scenarios():
        floor = f"floor: {scenario.floor}" if scenario.floor else "a floor"
        print(f"{scenario.name:<22} {scenario.rate_per_s:>6g}/s  {floor:<14} {scenario.what}")
    return 0


async def run_quick(args: argparse.Namespace) -> int:
    from edgekv.bench.scenarios import all_scenarios

    names = [scenario.name for scenario in all_scenarios() if scenario.in_quick]
    return await _run(args, names, duration_s=3.0, rate=None, sweep=False, bound_ms=20.0)


async def run_full(args: argparse.Namespace) -> int:
    from edgekv.bench.scenarios import all_scenarios, scenario_named

    if args.scenarios == "all":
        names = [scenario.name for scenario in all_scenarios()]
    else:
        names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
        for name in names:
            scenario_named(name)
    return await _run(args, names, args.duration, args.rate, args.sweep, args.p99_bound_ms)


async def _run(
    args: argparse.Namespace,
    names: list[str],
    duration_s: float,
    rate: float | None,
    sweep: bool,
    bound_ms: float,
) -> int:
    import asyncio

    from edgekv.bench.runner import DEFAULT_OUT, BenchOptions, run

    if duration_s <= 0 or (rate is not None and not rate > 0) or args.workers < 0:
        raise UsageError("--duration and --rate must be positive, --workers 0 or more")
    options = BenchOptions(
        names,
        duration_s,
        rate,
        args.arrival,
        sweep,
        p99_bound_ms=bound_ms,
        workers=args.workers,
        seed=args.seed,
        out=args.out or DEFAULT_OUT,
    )
    # The harness runs its own event loops (and worker processes): give it a thread.
    finished = await asyncio.to_thread(run, options)
    return _judged([m.row() for m in finished.measured], finished.folder)


def _judged(rows: list[dict[str, Any]], folder: Path) -> int:
    """0 when every run was valid and no call failed; else 1, saying which."""
    # A sweep is meant to run past the knee: only its steps may be invalid.
    bad = [
        f"{row['scenario']} ({row['problems'] or str(row['errors']) + ' errors'})"
        for row in rows
        if row["mode"] != "sweep" and (not row["valid"] or row["errors"])
    ]
    print(f"\nresults: {folder}")
    if bad:
        print(f"edgekv: error: not every run is valid: {', '.join(bad)}")
        return 1
    return 0


async def run_api(args: argparse.Namespace) -> int:
    import asyncio

    from edgekv.bench.api import ApiBenchOptions, run_api_bench
    from edgekv.bench.runner import DEFAULT_OUT

    if not args.duration > 0 or not args.rate > 0 or args.callers < 1 or args.rounds < 1:
        raise UsageError("--duration, --rate, --callers and --rounds must be positive")
    if args.workers < 0:
        raise UsageError("--workers must be 0 or more")
    options = ApiBenchOptions(
        args.duration, args.rate, args.callers, args.rounds, args.storage, args.arrival,
        args.workers, args.seed, args.out or DEFAULT_OUT,
    )  # fmt: skip
    # The harness runs its own event loops (and worker processes): give it a thread.
    finished = await asyncio.to_thread(run_api_bench, options)
    return _judged(finished.rows(), finished.folder)


async def run_replicas(args: argparse.Namespace) -> int:
    import asyncio

    from edgekv.bench.replicas import ReplicasBenchOptions, run_replicas_bench
    from edgekv.bench.runner import DEFAULT_OUT

    if not args.duration > 0 or args.callers < 1 or args.rounds < 1:
        raise UsageError("--duration, --callers and --rounds must be positive")
    options = ReplicasBenchOptions(
        args.duration, args.callers, args.rounds, args.out or DEFAULT_OUT
    )
    # The harness runs its own event loops (and the generator's process): give it a thread.
    finished = await asyncio.to_thread(run_replicas_bench, options)
    return _judged(finished.rows(), finished.folder)


async def run_sim(args: argparse.Namespace) -> int:
    import json

    from edgekv.bench.runner import DEFAULT_OUT, results_folder
    from edgekv.bench.simspeed import measure
    from edgekv.provenance import provenance
    from edgekv.sim.loop import in_virtual_time

    if args.duration <= 0 or args.read_rate <= 0:
        raise UsageError("--duration and --read-rate must be positive")
    folder = results_folder(args.out or DEFAULT_OUT, prefix="sim-")
    speed = await in_virtual_time(
        lambda: measure(args.duration, args.read_rate, folder, profile=args.profile)
    )
    summary = {"duration_s": args.duration, "read_rate": args.read_rate} | speed.as_dict()
    (folder / "summary.json").write_text(
        json.dumps(summary | provenance(), indent=2), encoding="utf-8"
    )
    print(speed.as_text())
    print(f"\nresults: {folder}")
    return 0
