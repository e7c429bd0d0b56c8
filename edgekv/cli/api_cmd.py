"""``edgekv api``: serve Cloudflare's v4 KV REST API in front of a central store."""

from __future__ import annotations

import argparse
import asyncio
import logging

from edgekv.cli.common import (
    Subcommands,
    add_client_tls_flag,
    add_server_tls_flags,
    configure_logging,
)
from edgekv.cli.env_flags import apply_env_defaults
from edgekv.process import format_ready
from edgekv.topology import DEFAULT_API_PORT

log = logging.getLogger("edgekv.api")


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "api",
        help="serve Cloudflare's v4 REST API for KV (wrangler, the Cloudflare SDKs)",
        description="Serve the KV routes of Cloudflare's v4 REST API under /client/v4, each "
        "a call to the central store. Every request needs an API token "
        "(`edgekv token create`). Point wrangler at it with CLOUDFLARE_API_BASE_URL, the "
        "Python SDK with CLOUDFLARE_BASE_URL (`edgekv env` prints both).",
        epilog="example: edgekv api --listen 127.0.0.1:8787 --central 127.0.0.1:7000",
    )
    parser.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_API_PORT}",
        metavar="HOST:PORT",
        help="port 0 picks a free port",
    )
    parser.add_argument(
        "--central",
        required=True,
        metavar="HOST:PORT",
        help="the central store; replicas as HOST:PORT,HOST:PORT,... or dns:///NAME:PORT",
    )
    parser.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics",
    )
    add_server_tls_flags(parser)
    add_client_tls_flag(parser, "central", finds_cluster=False)
    parser.set_defaults(run=run)
    apply_env_defaults(parser)


async def run(args: argparse.Namespace) -> int:
    from api.server import ApiCollector, ApiServer
    from edgekv.serving import install_stop_signals, serve_metrics
    from edgekv.tls import server_tls

    configure_logging()
    tls = server_tls(args.tls_cert, args.tls_key)
    server = ApiServer(args.central, tls_ca=args.tls_ca, tls=tls)
    port = await server.start(args.listen)
    metrics = None
    try:
        if args.metrics_listen:
            metrics = serve_metrics(args.metrics_listen, ApiCollector(server.service))
        stopping = asyncio.Event()
        install_stop_signals(stopping.set)
        host = args.listen.rpartition(":")[0] or "127.0.0.1"
        scheme = "http" if tls is None else "https"
        fields = {"central": args.central, "base-url": f"{scheme}://{host}:{port}/client/v4"}
        print(format_ready("api", f"{host}:{port}", fields), flush=True)
        await stopping.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        await server.stop()
        if metrics is not None:
            await metrics.stop()
    log.info("stopped")
    return 0
