"""``edgekv sim compare`` and ``edgekv sim explore``: the simulation engine's own tools.

Theory of operation: ``compare`` takes the staleness experiment's options
(its workload, seed, duration and the cluster's time scale), runs it on both
engines and judges their agreement (:mod:`edgekv.sim.compare`); exit 0 when
every measure agrees within its tolerance. ``explore`` runs seed after seed
of a random workload under random faults and checks each history
(:mod:`edgekv.sim.explore`); a failure prints what broke and the one command
that replays it, and leaves the run's history and scenario in ``--out``;
exit 0 when no seed failed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edgekv.cli.common import Subcommands
from edgekv.core.errors import UsageError


def register(subcommands: Subcommands) -> None:
    from edgekv.experiments.base import add_common_arguments
    from edgekv.experiments.staleness import Staleness

    parser = subcommands.add_parser(
        "sim",
        help="the simulation engine: compare it with the cluster",
        description="Tools around the simulation engine (experiments take --engine sim).",
    )
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    compare = tools.add_parser(
        "compare",
        help="run one seeded staleness workload on the cluster and in the simulation, and "
        "compare hit ratio, stale reads and central load",
        description="Run the staleness experiment with these options on a fresh cluster of "
        "processes and then in the simulation, with the same seed, and compare per cacheTtl: "
        "hit ratio within 2%%, stale-read fraction within 10%% or 0.005, central reads within "
        "5%%. Both results folders and agreement-<time>.json go to OUT/compare-engines/.",
        epilog="example: edgekv sim compare --duration 2400 --time-scale 150",
    )
    add_common_arguments(compare, Staleness())
    Staleness().add_arguments(compare)
    compare.set_defaults(run=run_compare)
    explore = tools.add_parser(
        "explore",
        help="run many seeds of a random workload under random faults and check every history",
        description="For each seed, draw a scenario (regions, mode, keys, cacheTtl, rates, "
        "writers) and faults (lossy links, partitions, central restarts), run it in the "
        "simulation and check monotonic reads, read-your-writes, the visibility promise, "
        "nothing lost and convergence. A failure prints the command that replays it.",
        epilog="example: edgekv sim explore --seeds 1000",
    )
    explore.add_argument("--seeds", type=int, default=100, metavar="N", help="seeds to run")
    explore.add_argument(
        "--first-seed", type=int, default=1, metavar="S", help="the first seed (default 1)"
    )
    explore.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="a failed seed's history and scenario go to DIR/explore/seed-S/ (default ./results)",
    )
    explore.set_defaults(run=run_explore)
    grid = tools.add_parser(
        "grid",
        help="the staleness theory checked on a grid of 21 settings, each over several seeds",
        description="For 7 (read rate, write rate) pairs at cacheTtl 30, 60 and 120 s, run "
        "the staleness workload in the simulation once per seed and compare the average hit "
        "ratio and stale-read fraction with docs/design.md's predictions: hit ratio within "
        "1%%, stale fraction within 3%% (prediction >= 0.05) or 6%% (0.01 to 0.05); the noise "
        "(standard error over seeds) must be at most a third of that. Writes grid.json, "
        "grid.csv and grid.png to OUT/grid-<time>/; exit 0 when every point matches and is "
        "sized.",
        epilog="example: edgekv sim grid --seeds 4 --jobs 2",
    )
    grid.add_argument("--seeds", type=int, default=4, metavar="N", help="seeds per point")
    grid.add_argument(
        "--first-seed", type=int, default=1, metavar="S", help="the first seed (default 1)"
    )
    grid.add_argument(
        "--reads",
        type=int,
        default=80_000,
        metavar="N",
        help="measured reads per cacheTtl per seed, at least (a pair with rare writes gets "
        "more, for enough stale episodes) (default %(default)s)",
    )
    grid.add_argument(
        "--episodes",
        type=int,
        default=20_000,
        metavar="N",
        help="stale episodes (writes times reading edges) per pair per seed, at least "
        "(default %(default)s)",
    )
    grid.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes (default: one per core)",
    )
    grid.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results go to DIR/grid-<time>/ (default ./results)",
    )
    grid.set_defaults(run=run_grid)


async def run_compare(args: argparse.Namespace) -> int:
    from edgekv.experiments.base import validate_common
    from edgekv.experiments.staleness import Staleness
    from edgekv.sim.compare import compare_engines

    if args.engine != "cluster" or args.state is not None:
        raise UsageError("sim compare runs both engines on fresh clusters: drop --engine/--state")
    validate_common(args)
    Staleness().validate(args)
    return await compare_engines(args)


async def run_explore(args: argparse.Namespace) -> int:
    from edgekv.sim.explore import explore_seeds

    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    return await explore_seeds(range(args.first_seed, args.first_seed + args.seeds), args.out)


async def run_grid(args: argparse.Namespace) -> int:
    from edgekv.sim.grid import run_grid as measure_and_write

    least_of = {"--seeds": 2, "--reads": 1000, "--episodes": 100, "--jobs": 1}
    given = {"--seeds": args.seeds, "--reads": args.reads, "--episodes": args.episodes,
             "--jobs": args.jobs}  # fmt: skip
    for flag, least in least_of.items():
        value = given[flag]
        if value < least:
            raise UsageError(f"{flag} must be at least {least}, got {value}")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    return await measure_and_write(list(seeds), args.reads, args.episodes, args.jobs, args.out)
