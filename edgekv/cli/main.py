"""Entry point of the ``edgekv`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import cast

from edgekv.cli import (
    bench_cmd,
    central_cmd,
    cluster_cmd,
    demo_cmd,
    deploy_cmd,
    edge_cmd,
    experiment_cmd,
    health_cmd,
    kv_cmd,
)
from edgekv.cli.common import OneLineParser, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edgekv",
        description="A simulator of Cloudflare Workers KV: a central store, edge caches, "
        "and the eventual consistency between them.",
    )
    # Subcommand parsers are OneLineParsers too (argparse uses the parent's class).
    subcommands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND", required=True),
    )
    central_cmd.register(subcommands)
    edge_cmd.register(subcommands)
    kv_cmd.register(subcommands)
    cluster_cmd.register(subcommands)
    demo_cmd.register(subcommands)
    health_cmd.register(subcommands)
    deploy_cmd.register(subcommands)
    experiment_cmd.register(subcommands)
    bench_cmd.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC's C core prints its own log lines (e.g. on a failed bind) beside ours; the
    # error we print says the same in one line. GRPC_VERBOSITY=debug brings them back.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    arguments = kv_cmd.wrangler_argv(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    return run_command(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
