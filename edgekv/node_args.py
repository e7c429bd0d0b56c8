"""A topology's nodes as ``edgekv central`` and ``edgekv edge`` command lines.

Theory of operation: the local launcher (child processes), the compose file
(containers) and the benchmarks all start nodes described by a
:class:`~edgekv.topology.Topology`; :func:`central_args` and :func:`edge_args`
are the only place that turns its specs into flags, so the three cannot
drift apart. What legitimately differs between them is a parameter: where a
node listens, where its central is, central's storage URL, an edge's node
name (containers leave it to their hostname), its seed, the time anchor
(containers get it from ``EDGEKV_TIME_ANCHOR``), and where a deployment keeps
its TLS files (``tls_cert``/``tls_key`` for a server, ``tls_ca`` for a
client; each flag only when given). Flags come in a fixed order, so the same
topology always gives the same command.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from edgekv.topology import RegionSpec, Topology

# Listen on a free loopback port; the node's ready line says which.
ANY_LOOPBACK_PORT = "127.0.0.1:0"


def edgekv_command(args: Sequence[str]) -> list[str]:
    """``edgekv ARGS`` run by this interpreter, whatever is on PATH."""
    return [sys.executable, "-m", "edgekv", *args]


def central_args(
    topology: Topology,
    *,
    listen: str = ANY_LOOPBACK_PORT,
    storage: str | None = None,
    time_anchor: float | None = None,
    operator_token_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> list[str]:
    """``central ...`` for the topology's central; ``storage`` overrides its URL. (Central
    serves over TLS; it calls no edgekv node, so it takes no CA.)"""
    args = [
        "central",
        "--listen", listen,
        "--storage", storage or topology.central.storage,
        *_time_args(topology, time_anchor),
    ]  # fmt: skip
    if not topology.central.write_rate_limit:
        args.append("--no-write-rate-limit")
    if topology.central.auth:
        args.append("--auth")
    if operator_token_file is not None:
        args += ["--operator-token-file", operator_token_file]
    return [*args, *tls_args(tls_cert, tls_key)]


def api_args(
    *,
    central: str,
    listen: str = ANY_LOOPBACK_PORT,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_ca: str | None = None,
) -> list[str]:
    """``api ...``: the REST API node in front of ``central``."""
    return [
        "api", "--listen", listen, "--central", central, *tls_args(tls_cert, tls_key, tls_ca)
    ]  # fmt: skip


def edge_args(
    topology: Topology,
    region: RegionSpec,
    *,
    central: str,
    seed: int,
    listen: str = ANY_LOOPBACK_PORT,
    node: str | None = None,
    time_anchor: float | None = None,
    token_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_ca: str | None = None,
) -> list[str]:
    """``edge ...`` for an edge of ``region``; without ``node``, it names itself. With
    central's auth on, it refuses calls without a token too, and its own calls carry the
    token in ``token_file``."""
    spec = region.edge
    auth = ["--auth"] if topology.central.auth else []
    if topology.central.auth and token_file is not None:
        auth += ["--token-file", token_file]
    return [
        "edge",
        "--listen", listen,
        "--central", central,
        "--region", region.name,
        *(["--node", node] if node else []),
        "--cache", spec.cache,
        "--cache-max-bytes", str(spec.cache_max_bytes),
        "--mode", spec.mode,
        "--max-stale-s", repr(spec.max_stale_s),
        "--refresh-ahead", repr(spec.refresh_ahead),
        "--rtt-ms", repr(region.rtt_ms),
        "--jitter-ms", repr(region.jitter_ms),
        "--loss", repr(region.loss),
        "--seed", str(seed),
        *auth,
        *_time_args(topology, time_anchor),
        *tls_args(tls_cert, tls_key, tls_ca),
    ]  # fmt: skip


def tls_args(
    tls_cert: str | None = None, tls_key: str | None = None, tls_ca: str | None = None
) -> list[str]:
    """``--tls-cert``/``--tls-key`` (serve over TLS) and ``--tls-ca`` (call over TLS), each
    only when given."""
    args: list[str] = []
    for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--tls-ca", tls_ca)):
        if path is not None:
            args += [flag, path]
    return args


def _time_args(topology: Topology, time_anchor: float | None) -> list[str]:
    anchor = [] if time_anchor is None else ["--time-anchor", repr(time_anchor)]
    return ["--time-scale", repr(topology.time_scale), *anchor]
