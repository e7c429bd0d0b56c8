"""Entry point of the ``edgekv`` command.

Theory of operation: gRPC's C core prints log lines of its own to stderr —
``add_port.cc`` on a failed bind, ``fork_posix.cc`` whenever a process that
has used gRPC forks (the launcher forks to start each node) — beside the one
line our errors already say. It reads its log settings (``GRPC_VERBOSITY``,
``GRPC_TRACE``) once, when grpc is first imported, so :func:`quiet_grpc` sets
them at the top of this module, before any import below can load grpc; the
processes the command starts (cluster nodes, benchmark workers and servers)
inherit the environment and are quiet too. ``EDGEKV_GRPC_VERBOSITY=debug``
brings the lines back, for whoever is debugging gRPC itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import MutableMapping, Sequence
from typing import cast


def quiet_grpc(environ: MutableMapping[str, str]) -> None:
    """Silence gRPC's C core, whatever the shell says, unless EDGEKV_GRPC_VERBOSITY is set."""
    wanted = environ.get("EDGEKV_GRPC_VERBOSITY", "")
    if wanted:
        environ["GRPC_VERBOSITY"] = wanted
        return
    environ["GRPC_VERBOSITY"] = "NONE"
    # Tracers print even below NONE's threshold on some versions; a shell's setting for
    # another program must not turn them on here.
    environ.pop("GRPC_TRACE", None)


# Before the imports below: several of them import grpc.
quiet_grpc(os.environ)

from edgekv.cli import (  # noqa: E402
    api_cmd,
    bench_cmd,
    central_cmd,
    cluster_cmd,
    demo_cmd,
    deploy_cmd,
    edge_cmd,
    env_cmd,
    experiment_cmd,
    health_cmd,
    kv_cmd,
    sim_cmd,
    token_cmd,
)
from edgekv.cli.common import OneLineParser, Subcommands, run_command, run_quietly  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edgekv",
        description="A simulator of Cloudflare Workers KV: a central store, edge caches, "
        "and the eventual consistency between them.",
    )
    # Subcommand parsers are OneLineParsers too (argparse uses the parent's class).
    subcommands = cast(
        Subcommands, parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    )
    central_cmd.register(subcommands)
    edge_cmd.register(subcommands)
    api_cmd.register(subcommands)
    token_cmd.register(subcommands)
    kv_cmd.register(subcommands)
    cluster_cmd.register(subcommands)
    env_cmd.register(subcommands)
    demo_cmd.register(subcommands)
    health_cmd.register(subcommands)
    deploy_cmd.register(subcommands)
    experiment_cmd.register(subcommands)
    bench_cmd.register(subcommands)
    sim_cmd.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> int:
        arguments = kv_cmd.wrangler_argv(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(arguments)
        return run_command(lambda: args.run(args))

    return run_quietly(command)


if __name__ == "__main__":
    sys.exit(main())
