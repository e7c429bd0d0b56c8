"""``edgekv health``: ask a node's gRPC health service whether it is SERVING.

Exit 0 when it is; otherwise one line and exit 1. The Dockerfile's HEALTHCHECK
and the compose file's healthchecks run it inside each container. An
``http://`` or ``https://`` URL asks an API node's health endpoint instead
(HTTP 200). A TLS node is asked over TLS with ``--tls-ca`` (or ``EDGEKV_TLS_CA``).
"""

from __future__ import annotations

import argparse

from edgekv.cli.common import Subcommands, add_client_tls_flag


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "health",
        help="check that a node is serving (gRPC health checking)",
        description="Ask a central store or an edge (grpc.health.v1) whether it is SERVING: "
        "exit 0 if it is, 1 with one line if not.",
        epilog="example: edgekv health 127.0.0.1:7000",
    )
    parser.add_argument(
        "address",
        metavar="HOST:PORT",
        help="a gRPC node, or http(s)://HOST:PORT/healthz of an API node",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=2.0, metavar="S", help="give up after S seconds"
    )
    parser.add_argument(
        "--service", default="", metavar="NAME", help="a service name (default: the whole node)"
    )
    add_client_tls_flag(parser, "the node")
    parser.add_argument(
        "--tls-server-name",
        default=None,
        metavar="NAME",
        help="the name the node's TLS certificate has, when not the host dialled (a check "
        "of 127.0.0.1 inside a container whose certificate names its Service)",
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from edgekv.control import NodeControl
    from edgekv.core.errors import KVError, UsageError

    if args.timeout_s <= 0:
        raise UsageError(f"--timeout-s must be positive, got {args.timeout_s}")
    if args.address.startswith(("http://", "https://")):
        return await _http_health(args.address, args.timeout_s, args.tls_ca)
    async with NodeControl(
        args.address,
        timeout_s=args.timeout_s,
        tls_ca=args.tls_ca,
        tls_server_name=args.tls_server_name,
    ) as control:
        try:
            status = await control.serving_status(service=args.service)
        except KVError as exc:
            reason = exc.message.splitlines()[0] if exc.message else exc.kind.value
            raise ConnectionError(f"{args.address} is not serving ({reason})") from None
    if status != "SERVING":
        raise ConnectionError(f"{args.address} is not serving (status {status})")
    print(f"{args.address} {status}", flush=True)
    return 0


async def _http_health(url: str, timeout_s: float, tls_ca: str | None) -> int:
    import ssl

    import aiohttp

    from edgekv.locate import locate_tls_ca
    from edgekv.tls import client_context

    ca = locate_tls_ca(tls_ca, [url.split("/")[2]]) if url.startswith("https://") else None
    context: ssl.SSLContext | bool = True if ca is None else client_context(ca)
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=context) as answer,
        ):
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ConnectionError(f"{url} is not serving ({exc or type(exc).__name__})") from None
    if status != 200:
        raise ConnectionError(f"{url} is not serving (HTTP {status})")
    print(f"{url} SERVING", flush=True)
    return 0
