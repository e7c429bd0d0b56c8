"""What every subcommand shares: time flags and the one-line error convention.

Theory of operation: a subcommand raises; :func:`run_command` turns the
errors a user can cause or fix (bad input, unreachable servers, bad files)
into one line on stderr and exit code 1 — never a traceback. Around the whole
command (parsing and ``--help`` included), :func:`run_quietly` handles the
reader of our output going away (``edgekv bench list | head -1``): that is
not an error, so the command stops without a word, as ``cat`` would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeAlias

from edgekv.clock import ScaledClock, valid_time_scale
from edgekv.core.errors import KVError, UsageError
from edgekv.redis_urls import PASSWORD_VARIABLE, configured_password, redact, with_password

USER_ERRORS: tuple[type[BaseException], ...] = (KVError, UsageError, OSError)
# What each command module's register() adds its parsers to.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other edgekv error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"edgekv: error: {self.prog}: {message} (see --help)\n")


def add_time_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="run simulated time S times faster than real time (default 1)",
    )
    parser.add_argument(
        "--time-anchor",
        type=float,
        default=None,
        metavar="EPOCH_SECONDS",
        help="Unix time at which simulated and real time coincide (default: start time); "
        "give every node of a cluster the same anchor so their clocks agree",
    )


def clock_from(args: argparse.Namespace) -> ScaledClock:
    scale = valid_time_scale(args.time_scale, "--time-scale")
    return ScaledClock(scale=scale, anchor=args.time_anchor)


class RedactingFormatter(logging.Formatter):
    """Log lines (tracebacks included) with every Redis URL's password as ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def add_redis_password_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-password-file",
        default=None,
        metavar="FILE",
        help=f"the Redis password, on the first line of FILE (else ${PASSWORD_VARIABLE}); "
        "used for a redis:// URL that has none of its own, and never shown",
    )


def add_server_tls_flags(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert`` and ``--tls-key``: serve over TLS (both or neither)."""
    parser.add_argument(
        "--tls-cert",
        default=None,
        metavar="FILE",
        help="serve over TLS with this PEM certificate (chain); needs --tls-key",
    )
    parser.add_argument(
        "--tls-key", default=None, metavar="FILE", help="the PEM private key of --tls-cert"
    )


def add_health_listen_flag(parser: argparse.ArgumentParser) -> None:
    """``--health-listen``: grpc.health.v1 alone, in plain gRPC, for probes."""
    parser.add_argument(
        "--health-listen",
        default=None,
        metavar="HOST:PORT",
        help="also serve the gRPC health service alone, without TLS, here: for probes that "
        "speak plain gRPC (Kubernetes' grpc probe) while the node serves over TLS",
    )


def add_client_tls_flag(
    parser: argparse.ArgumentParser, servers: str, finds_cluster: bool = True
) -> None:
    """``--tls-ca``: reach ``servers`` over TLS, trusting this CA. A command that finds
    the cluster by itself (``finds_cluster``) also finds its CA (edgekv.locate)."""
    default = (
        " (default: $EDGEKV_TLS_CA, else the CA of the cluster in the state file, "
        "for its own addresses)"
        if finds_cluster
        else ""
    )
    parser.add_argument(
        "--tls-ca",
        default=None,
        metavar="FILE",
        help=f"reach {servers} over TLS, trusting the PEM CA certificate in FILE{default}",
    )


def redis_url_from(url: str, args: argparse.Namespace) -> str:
    """``url`` with the password of ``--redis-password-file`` or the environment filled in."""
    return with_password(url, configured_password(args.redis_password_file))


# Exit code when the reader of stdout has gone: that of a process SIGPIPE killed, as
# `yes | true` reports for yes (Python ignores SIGPIPE, so it would otherwise print).
BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE


def run_quietly(command: Callable[[], int]) -> int:
    """Run a whole command; if the reader of stdout has gone, exit quietly with 141.

    Output still buffered when the command ends is flushed here, where a
    broken pipe can be caught, and stdout then points at /dev/null so that the
    interpreter's last flush on the way out has nothing left to fail on.
    """
    try:
        try:
            return command()
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE_EXIT


def run_command(command: Callable[[], Awaitable[int]]) -> int:
    try:
        return asyncio.run(command())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # an OSError, but nobody's mistake: run_quietly's to handle
        raise
    except USER_ERRORS as exc:
        message = exc.message if isinstance(exc, KVError) else str(exc)
        print(f"edgekv: error: {redact(message)}", file=sys.stderr)
        return 1
