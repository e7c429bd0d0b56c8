"""``edgekv edge``: serve an edge node in front of a central store."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from edgekv.cli.common import (
    Subcommands,
    add_client_tls_flag,
    add_health_listen_flag,
    add_redis_password_flag,
    add_server_tls_flags,
    add_time_flags,
    clock_from,
    configure_logging,
    redis_url_from,
)
from edgekv.cli.env_flags import apply_env_defaults
from edgekv.core.errors import UsageError
from edgekv.process import format_ready
from edgekv.topology import (
    DEFAULT_EDGE_PORT,
    MODE_NAMES,
    EdgeSpec,
    MiB,
    dns_label,
    parse_size,
)

log = logging.getLogger("edgekv.edge")

# The topology's edge defaults are the command's: a node started by hand or by a launcher
# behaves the same unless told otherwise.
DEFAULTS = EdgeSpec()


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "edge",
        help="run an edge node",
        description="Serve an edge node: a regional cache in front of the central store.",
        epilog="example: edgekv edge --listen 127.0.0.1:7101 --central 127.0.0.1:7000 "
        "--region eu-west --rtt-ms 83",
    )
    parser.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_EDGE_PORT}", metavar="HOST:PORT")
    parser.add_argument(
        "--central",
        required=True,
        metavar="HOST:PORT",
        help="the central store; replicas as HOST:PORT,HOST:PORT,... or dns:///NAME:PORT "
        "(calls are spread over them and fail over)",
    )
    parser.add_argument("--region", required=True, metavar="NAME")
    parser.add_argument("--node", default=None, metavar="NAME", help="default: REGION-HOSTNAME")
    parser.add_argument(
        "--cache",
        default=DEFAULTS.cache,
        metavar="URL",
        help=f"{DEFAULTS.cache} (default) or redis://HOST:PORT/DB",
    )
    add_redis_password_flag(parser)
    parser.add_argument(
        "--cache-max-bytes",
        type=parse_size,
        default=DEFAULTS.cache_max_bytes,
        metavar="SIZE",
        help=f"what the cache may hold, e.g. 1GiB (default {DEFAULTS.cache_max_bytes // MiB}MiB)",
    )
    parser.add_argument("--mode", choices=MODE_NAMES, default=DEFAULTS.mode)
    parser.add_argument(
        "--refresh-ahead",
        type=float,
        default=DEFAULTS.refresh_ahead,
        metavar="FRACTION",
        help="refresh a copy read in the last FRACTION of its cacheTtl (0 = off)",
    )
    parser.add_argument(
        "--max-stale-s",
        type=float,
        default=DEFAULTS.max_stale_s,
        help="serve a copy up to this long past its cacheTtl while central is unreachable",
    )
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="modelled RTT to central")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="mean extra delay")
    parser.add_argument("--loss", type=float, default=0.0, help="probability a call is lost")
    parser.add_argument("--seed", type=int, default=0, help="seed of link and retry randomness")
    parser.add_argument("--metrics-listen", default=None, metavar="HOST:PORT")
    parser.add_argument(
        "--auth",
        action="store_true",
        help="refuse calls without an API token, as a central with --auth does",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the token the edge's own calls to central carry (its watches): the operator "
        "token of a central with --auth",
    )
    add_server_tls_flags(parser)
    add_health_listen_flag(parser)
    add_client_tls_flag(parser, "central", finds_cluster=False)
    add_time_flags(parser)
    parser.set_defaults(run=run)
    apply_env_defaults(parser)


async def run(args: argparse.Namespace) -> int:
    from edge.node import EdgePolicy
    from edge.server import EdgeConfig, start_edge
    from edgekv.channels import parse_target
    from edgekv.control import LinkSettings
    from edgekv.operator_token import read_operator_token
    from edgekv.serving import host_port, install_stop_signals
    from edgekv.tls import read_ca, server_tls
    from edgekv.topology import Mode

    configure_logging()
    if not 0.0 <= args.refresh_ahead < 1.0:
        raise UsageError(f"--refresh-ahead must be in [0, 1), got {args.refresh_ahead}")
    if args.max_stale_s < 0:
        raise UsageError(f"--max-stale-s must be >= 0, got {args.max_stale_s}")
    dns_label(args.region, "--region")
    if args.node is not None:
        dns_label(args.node, "--node")
    parse_target(args.central)  # a bad --central is one line before anything starts
    tls = server_tls(args.tls_cert, args.tls_key)
    if args.tls_ca is not None:
        read_ca(args.tls_ca)
    config = EdgeConfig(
        central=args.central,
        region=args.region,
        listen=args.listen,
        node=args.node,
        cache_url=redis_url_from(args.cache, args),
        cache_max_bytes=args.cache_max_bytes,
        policy=EdgePolicy(Mode(args.mode), args.max_stale_s, args.refresh_ahead),
        link=LinkSettings(args.rtt_ms, args.jitter_ms, args.loss).validated(),
        seed=args.seed,
        metrics_listen=args.metrics_listen,
        require_token=args.auth,
        token=None if args.token_file is None else read_operator_token(args.token_file),
        tls_ca=args.tls_ca,
        tls=tls,
        health_listen=args.health_listen,
    )
    clock = clock_from(args)
    server = await start_edge(config, clock)
    stopping = asyncio.Event()
    install_stop_signals(stopping.set)
    fields = {
        "region": config.region,
        "node": config.node_name,
        "central": config.central,
        "mode": args.mode,
        "rtt-ms": args.rtt_ms,
        "tls": "on" if tls is not None else "off",
    }
    if args.health_listen is not None and server.grpc_node is not None:
        fields["health"] = host_port(args.health_listen, server.grpc_node.health_port)
    print(format_ready("edge", server.address, fields), flush=True)
    await stopping.wait()
    log.info("stopping")
    await server.stop()
    return 0
