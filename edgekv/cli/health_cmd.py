"""``edgekv health``: ask a node's gRPC health service whether it is SERVING.

Exit 0 when it is; otherwise one line and exit 1. The Dockerfile's HEALTHCHECK
and the compose file's healthchecks run it inside each container.
"""

from __future__ import annotations

import argparse


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "health",
        help="check that a node is serving (gRPC health checking)",
        description="Ask a central store or an edge (grpc.health.v1) whether it is SERVING: "
        "exit 0 if it is, 1 with one line if not.",
        epilog="example: edgekv health 127.0.0.1:7000",
    )
    parser.add_argument("address", metavar="HOST:PORT")
    parser.add_argument(
        "--timeout-s", type=float, default=2.0, metavar="S", help="give up after S seconds"
    )
    parser.add_argument(
        "--service", default="", metavar="NAME", help="a service name (default: the whole node)"
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if args.timeout_s <= 0:
        raise ValueError(f"--timeout-s must be positive, got {args.timeout_s}")
    async with grpc.aio.insecure_channel(args.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            details = (exc.details() or "").splitlines()
            reason = f"{exc.code().name}: {details[0]}" if details else exc.code().name
            raise ConnectionError(f"{args.address} is not serving ({reason})") from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise ConnectionError(f"{args.address} is not serving (status {status})")
    print(f"{args.address} {status}", flush=True)
    return 0
