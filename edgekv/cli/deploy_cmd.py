"""``edgekv deploy compose``.

Theory of operation: ``edgekv deploy compose`` turns a topology into a docker-compose file
(:mod:`edgekv.compose` builds the dict; this writes it as YAML).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekv.cli.common import Subcommands
from edgekv.clock import valid_time_scale


def register(subcommands: Subcommands) -> None:
    deploy = subcommands.add_parser(
        "deploy",
        help="generate deployment files",
        description="Generate deployment files from a topology.",
    )
    targets = deploy.add_subparsers(dest="target", metavar="TARGET", required=True)
    compose = targets.add_parser(
        "compose",
        help="write a docker-compose file for a topology",
        description="Write a docker-compose file: redis, central, one service per region "
        "(replicas = the region's edge count), and an 'experiment' profile.",
        epilog="example: edgekv deploy compose --output deploy/docker-compose.yml",
    )
    compose.add_argument("--topology", metavar="FILE", help="a topology TOML (default: 5 regions)")
    compose.add_argument("--time-scale", type=float, default=None, metavar="S")
    compose.add_argument(
        "--output", "-o", metavar="FILE", help="write here instead of standard output"
    )
    compose.set_defaults(run=run_compose)


async def run_compose(args: argparse.Namespace) -> int:
    from edgekv.compose import compose_yaml
    from edgekv.topology import default_topology, load_topology

    topology = load_topology(args.topology) if args.topology else default_topology()
    if args.time_scale is not None:
        valid_time_scale(args.time_scale, "--time-scale")
    regenerate = "edgekv deploy compose"
    if args.topology:
        regenerate += f" --topology {args.topology}"
    if args.time_scale is not None:
        regenerate += f" --time-scale {args.time_scale:g}"
    regenerate += f" --output {args.output or 'deploy/docker-compose.yml'}"
    text = compose_yaml(topology.with_time_scale(args.time_scale), regenerate)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
