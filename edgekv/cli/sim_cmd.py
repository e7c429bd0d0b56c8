"""``edgekv sim compare``: the simulation against the cluster, on one seeded workload.

Theory of operation: the command takes the staleness experiment's options
(its workload, seed, duration and the cluster's time scale), runs it on both
engines and judges their agreement (:mod:`edgekv.sim.compare`). Exit 0 when
every measure agrees within its tolerance.
"""

from __future__ import annotations

import argparse

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


async def run_compare(args: argparse.Namespace) -> int:
    from edgekv.experiments.base import validate_common
    from edgekv.experiments.staleness import Staleness
    from edgekv.sim.compare import compare_engines

    if args.engine != "cluster" or args.state is not None:
        raise UsageError("sim compare runs both engines on fresh clusters: drop --engine/--state")
    validate_common(args)
    Staleness().validate(args)
    return await compare_engines(args)
