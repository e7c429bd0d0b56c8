"""``edgekv central``: serve the central store until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from edgekv.cli.common import (
    Subcommands,
    add_redis_password_flag,
    add_time_flags,
    clock_from,
    configure_logging,
    redis_url_from,
)
from edgekv.cli.env_flags import apply_env_defaults
from edgekv.process import format_ready
from edgekv.topology import DEFAULT_CENTRAL_PORT

log = logging.getLogger("edgekv.central")


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "central",
        help="run the central store",
        description="Serve the authoritative central store over gRPC.",
        epilog="example: edgekv central --listen 127.0.0.1:7000 --storage sqlite:edgekv.db",
    )
    parser.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_CENTRAL_PORT}",
        metavar="HOST:PORT",
        help="port 0 picks a free port",
    )
    parser.add_argument(
        "--storage",
        default="sqlite:edgekv.db",
        metavar="URL",
        help="sqlite:PATH (default sqlite:edgekv.db), memory:, or redis://HOST:PORT/DB",
    )
    add_redis_password_flag(parser)
    parser.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics",
    )
    parser.add_argument(
        "--durability",
        choices=("local", "none"),
        help="what an acknowledged write survives. local (the default for sqlite: and redis://): "
        "it is on the local disk first; SQLite fsyncs every commit group, and Redis must run "
        "with appendonly yes and appendfsync always, which central checks when it connects. "
        "none (what memory: means): nothing is promised; needed for a Redis that does not let "
        "central read its CONFIG",
    )
    parser.add_argument(
        "--store-record",
        type=Path,
        metavar="FILE",
        help="the file where central records its store's id and highest acknowledged "
        "revision, so that it refuses a store that went missing, was replaced or went back "
        "(default: PATH.record.json beside sqlite:PATH; for Redis, none unless given)",
    )
    parser.add_argument(
        "--no-write-rate-limit",
        action="store_true",
        help="allow more than one write per second to a key (Workers KV refuses with 429)",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="refuse calls without an API token (or the operator token); without it a call "
        "without a token acts as the operator, as a local cluster always has",
    )
    parser.add_argument(
        "--operator-token-file",
        type=Path,
        metavar="FILE",
        help="where the operator token is kept (made at first start, readable by its owner "
        "only; default: PATH.operator-token beside sqlite:PATH; for other stores, none "
        "unless given, and --auth needs one)",
    )
    add_time_flags(parser)
    parser.set_defaults(run=run)
    apply_env_defaults(parser)


async def run(args: argparse.Namespace) -> int:
    from central.server import start_central
    from central.service import CentralSettings
    from central.storage.base import Durability
    from edgekv.serving import install_stop_signals

    configure_logging()
    clock = clock_from(args)
    settings = CentralSettings(
        write_rate_limit=not args.no_write_rate_limit, require_auth=args.auth
    )
    server = await start_central(
        args.listen,
        redis_url_from(args.storage, args),
        clock,
        settings,
        durability=None if args.durability is None else Durability(args.durability),
        store_record=args.store_record,
        metrics_listen=args.metrics_listen,
        operator_token_file=args.operator_token_file,
    )
    stopping = asyncio.Event()
    install_stop_signals(stopping.set)
    fields = {
        "storage": args.storage,
        # What an acknowledged write survives: local (on disk) or none, said where it starts.
        "durability": server.storage.durability.value,
        "revision": server.storage.revision,
        "time-scale": clock.scale,
        "auth": "on" if args.auth else "off",
    }
    print(format_ready("central", server.address, fields), flush=True)
    await stopping.wait()
    log.info("stopping: finishing calls in flight, then closing storage")
    # Central's calls are short; 2 s lets those in flight finish without keeping a
    # launcher (or an orchestrator's stop timeout) waiting.
    await server.stop(grace_s=2.0)
    log.info("stopped")
    return 0
