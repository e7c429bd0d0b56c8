"""``edgekv deploy compose`` and ``edgekv deploy k8s``.

Theory of operation: ``edgekv deploy compose`` turns a topology into a docker-compose
file (:mod:`edgekv.compose` builds the dict; this writes it as YAML), ``edgekv deploy
k8s`` into Kubernetes manifests (:mod:`edgekv.k8s`): a folder for ``kubectl apply -k``,
or one YAML stream on standard output for ``kubectl apply -f -``. Both take the same
topology flags, and both run central's replicas on a Redis of their own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekv.cli.common import Subcommands
from edgekv.clock import valid_time_scale
from edgekv.topology import Topology


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
    _add_topology_flags(compose)
    compose.add_argument(
        "--output", "-o", metavar="FILE", help="write here instead of standard output"
    )
    compose.set_defaults(run=run_compose)

    k8s = targets.add_parser(
        "k8s",
        help="write Kubernetes manifests for a topology",
        description="Write Kubernetes manifests: central's replicas (a Deployment) on a Redis "
        "StatefulSet or the topology's own Redis, a Deployment and a Service per region "
        "(replicas = the region's edge count), the REST API node, the cluster's state file "
        "in a ConfigMap, a kustomization.yaml, and an experiment Job in experiment/.",
        epilog="example: edgekv deploy k8s --central-replicas 2 --output deploy/k8s",
    )
    _add_topology_flags(k8s)
    k8s.add_argument(
        "--output",
        "-o",
        metavar="DIR",
        help="write the files into this folder (for kubectl apply -k DIR); without it, "
        "write what kubectl apply -k would apply to standard output (kubectl apply -f -)",
    )
    k8s.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve and call over TLS with the Secret edgekv-tls (default: on; "
        "--no-tls for plaintext, e.g. behind a service mesh that encrypts)",
    )
    k8s.add_argument(
        "--time-anchor",
        type=float,
        default=None,
        metavar="UNIX_S",
        help="the instant every node's scaled clock starts from; needed with a time scale "
        "other than 1 (e.g. $(date +%%s))",
    )
    k8s.set_defaults(run=run_k8s)


def _add_topology_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", metavar="FILE", help="a topology TOML (default: 5 regions)")
    parser.add_argument("--time-scale", type=float, default=None, metavar="S")
    parser.add_argument(
        "--central-replicas",
        type=int,
        default=None,
        metavar="N",
        help="central processes on the deployment's Redis (default: the topology's "
        "central.replicas, 1 unless it says)",
    )


def _topology(args: argparse.Namespace) -> tuple[Topology, str]:
    """The topology the flags describe, and the flags that describe it (for a file's head)."""
    from edgekv.k8s import with_central_replicas
    from edgekv.topology import default_topology, load_topology

    topology = load_topology(args.topology) if args.topology else default_topology()
    if args.time_scale is not None:
        valid_time_scale(args.time_scale, "--time-scale")
    topology = with_central_replicas(
        topology.with_time_scale(args.time_scale), args.central_replicas
    )
    flags = ""
    if args.topology:
        flags += f" --topology {args.topology}"
    if args.time_scale is not None:
        flags += f" --time-scale {args.time_scale:g}"
    if args.central_replicas is not None:
        flags += f" --central-replicas {args.central_replicas}"
    return topology, flags


async def run_compose(args: argparse.Namespace) -> int:
    from edgekv.compose import compose_yaml

    topology, flags = _topology(args)
    regenerate = (
        f"edgekv deploy compose{flags} --output {args.output or 'deploy/docker-compose.yml'}"
    )
    text = compose_yaml(topology, regenerate)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


async def run_k8s(args: argparse.Namespace) -> int:
    from edgekv.k8s import Options, render_files, render_stream, write_files

    topology, flags = _topology(args)
    if not args.tls:
        flags += " --no-tls"
    if args.time_anchor is not None:
        flags += f" --time-anchor {args.time_anchor!r}"
    options = Options(tls=args.tls, time_anchor=args.time_anchor)
    if args.output is None:
        sys.stdout.write(render_stream(topology, options, f"edgekv deploy k8s{flags}"))
        return 0
    output = args.output.rstrip("/") or "/"
    texts = render_files(topology, options, f"edgekv deploy k8s{flags} --output {output}", output)
    for path in write_files(texts, Path(output)):
        print(f"edgekv: removed {path}, generated for a region this topology no longer has")
    print(f"wrote {len(texts)} files to {output}; apply with: kubectl apply -k {output}")
    return 0
