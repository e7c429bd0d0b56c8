"""``edgekv central``: serve the central store until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from edgekv.cli.common import (
    Subcommands,
    add_health_listen_flag,
    add_redis_password_flag,
    add_server_tls_flags,
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
        help="sqlite:PATH (default sqlite:edgekv.db), memory:, redis://HOST:PORT/DB, or "
        "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]: the primary the Sentinels "
        "name, followed across failovers",
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
        choices=("local", "replicated", "none"),
        help="what an acknowledged write survives. local (the default for sqlite: and redis): "
        "it is on the local disk first; SQLite fsyncs every commit group, and Redis must run "
        "with appendonly yes and appendfsync always ('fsync every time new commands are "
        "appended to the AOF. Very very slow, very safe', in Redis's words), which central "
        "checks when it connects: it survives kill -9 and a crash of the host, but Redis "
        "replication is asynchronous, so a failover to a replica may lose it. replicated (Redis "
        "only): local, and a replica has it too before it is acknowledged (WAIT 1 1000; a write "
        "no replica took in time fails); central refuses to start on a Redis that has no "
        "replica or refuses WAIT. A failover keeps it, though WAIT 'does not make Redis a "
        "strongly consistent store': 'acknowledged writes can still be lost during a failover', "
        "in 'certain hard to trigger failure modes'. none (what memory: means): nothing is "
        "promised; needed for a Redis that does not let central read its CONFIG",
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
    add_server_tls_flags(parser)
    add_health_listen_flag(parser)
    add_time_flags(parser)
    parser.set_defaults(run=run)
    apply_env_defaults(parser)


async def run(args: argparse.Namespace) -> int:
    from central.server import start_central
    from central.service import CentralSettings
    from central.storage.base import Durability
    from edgekv.serving import host_port, install_stop_signals
    from edgekv.tls import server_tls

    configure_logging()
    clock = clock_from(args)
    # Checked before the store is opened: a bad file is one line, and nothing to undo.
    tls = server_tls(args.tls_cert, args.tls_key)
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
        tls=tls,
        health_listen=args.health_listen,
    )
    stopping = asyncio.Event()
    install_stop_signals(stopping.set)
    fields = {
        "storage": args.storage,
        # What an acknowledged write survives: local (on disk), replicated (on a replica too)
        # or none, said where it starts.
        "durability": server.storage.durability.value,
        "revision": server.storage.revision,
        "time-scale": clock.scale,
        "auth": "on" if args.auth else "off",
        "tls": "on" if tls is not None else "off",
    }
    if args.health_listen is not None:
        fields["health"] = host_port(args.health_listen, server.node.health_port)
    print(format_ready("central", server.address, fields), flush=True)
    await stopping.wait()
    log.info("stopping: finishing calls in flight, then closing storage")
    # Central's calls are short; 2 s lets those in flight finish without keeping a
    # launcher (or an orchestrator's stop timeout) waiting.
    await server.stop(grace_s=2.0)
    log.info("stopped")
    return 0
