"""``edgekv up``, ``edgekv status`` and ``edgekv down``: a whole cluster in one command.

Theory of operation: ``up`` starts the topology's nodes with
:class:`~edgekv.launcher.LocalCluster`, prints a table of them, and writes the
cluster state file that ``edgekv kv``, ``edgekv.Client`` users and
``edgekv.bindings`` find by themselves. In the foreground it supervises: a
node that exits is reported at once, Ctrl-C or SIGTERM stops every node and
removes the state file. ``--detach`` runs that supervisor in the background
and returns once the cluster is healthy; ``down`` signals it and waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from edgekv.cli.common import Subcommands
from edgekv.core.errors import UsageError
from edgekv.launcher import LocalCluster, RunningNode
from edgekv.locate import ClusterState, read_state, read_state_file, state_file_path
from edgekv.private_files import make_private_dirs
from edgekv.process import ProcessIdentity, alive, spawn, stop_processes
from edgekv.redis_urls import redact
from edgekv.topology import Topology, default_topology, load_topology

DEFAULT_DATA_DIR = Path.home() / ".edgekv" / "cluster-data"
DOWN_GRACE_S = 20.0


def register(subcommands: Subcommands) -> None:
    up = subcommands.add_parser(
        "up",
        help="start a whole cluster (central + edges) on this machine",
        description="Start the central store and every edge of a topology as local processes.",
        epilog="example: edgekv up --time-scale 10 --detach",
    )
    up.add_argument("--topology", metavar="FILE", help="a topology TOML (default: 5 regions)")
    up.add_argument("--time-scale", type=float, default=None, metavar="S")
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, metavar="DIR")
    up.add_argument("--follow", action="store_true", help="stream every node's log")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument(
        "--auth",
        action="store_true",
        help="central refuses gRPC calls without an API token (the REST API always asks)",
    )
    up.add_argument(
        "--tls",
        action="store_true",
        help="every node serves over TLS, with a throwaway CA and certificate for "
        "127.0.0.1 and localhost made in DATA_DIR/tls (needs the openssl command); the "
        "state file names the CA, so edgekv kv, status and edgekv.Client() trust it",
    )
    up.set_defaults(run=run_up)

    status = subcommands.add_parser(
        "status",
        help="health and stats of every node of the running cluster",
        epilog="example: edgekv status",
    )
    status.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="the cluster this state file describes (default: $EDGEKV_STATE_FILE, else "
        "~/.edgekv/cluster.json), e.g. a Kubernetes deployment's, from its edgekv-cluster "
        "ConfigMap",
    )
    status.set_defaults(run=run_status)

    down = subcommands.add_parser(
        "down", help="stop a cluster started with --detach", epilog="example: edgekv down"
    )
    down.set_defaults(run=run_down)


def print_table(state: ClusterState) -> None:
    print(f"{'node':<16} {'region':<14} {'address':<22} {'rtt ms':>7}  pid")
    for name, info in state.nodes.items():
        rtt = "-" if info["kind"] != "edge" else f"{float(str(info['rtt_ms'])):g}"
        print(f"{name:<16} {info['region']!s:<14} {info['address']!s:<22} {rtt:>7}  {info['pid']}")


async def run_up(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology) if args.topology else default_topology()
    topology = topology.with_time_scale(args.time_scale).with_auth(args.auth)
    existing = read_state()
    running = existing.launcher_identity() if existing is not None else None
    if existing is not None and running is not None and running.is_running():
        raise UsageError(
            f"a cluster is already running (launcher pid {existing.launcher_pid}); "
            "stop it with `edgekv down`"
        )
    if args.detach:
        return await _detach(args)
    return await _supervise(args, topology)


async def _supervise(args: argparse.Namespace, topology: Topology) -> int:
    started = time.monotonic()
    cluster = await LocalCluster.start(topology, args.data_dir, tls=args.tls)
    state_path = state_file_path()
    try:
        state = cluster.state()
        state.write(state_path)
        print(
            f"cluster healthy in {time.monotonic() - started:.1f} s "
            f"(time scale {topology.time_scale:g}); state in {state_path}"
        )
        print_table(state)
        print("logs in", args.data_dir / "logs", "- Ctrl-C stops every node", flush=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        follow = asyncio.ensure_future(_follow(cluster.nodes)) if args.follow else None
        reported: set[str] = set()
        while not stopping.is_set():
            for node in cluster.exited():
                if node.name not in reported:
                    reported.add(node.name)
                    print(
                        f"edgekv: node {node.name} exited with code {node.returncode}: "
                        f"{redact(node.log_tail(2))} (log: {node.log_path})",
                        file=sys.stderr,
                        flush=True,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.2)
        if follow is not None:
            follow.cancel()
        print("stopping every node ...", flush=True)
    finally:
        await cluster.stop()
        current = read_state()
        if current is not None and current.launcher_pid == os.getpid():
            state_path.unlink(missing_ok=True)
    print("stopped")
    return 0


async def _follow(nodes: list[RunningNode]) -> None:
    """Print every node's new complete log lines, prefixed by the node's name."""
    offsets: dict[str, int] = {}
    while True:
        for node in nodes:
            data = node.log_path.read_bytes()
            start = offsets.get(node.name, 0)
            end = data.rfind(b"\n") + 1
            for line in data[start:end].decode("utf-8", "replace").splitlines():
                print(f"{node.name:>14} | {redact(line)}", flush=True)
            offsets[node.name] = max(start, end)
        await asyncio.sleep(0.2)


async def _detach(args: argparse.Namespace) -> int:
    make_private_dirs(args.data_dir)
    command = [
        sys.executable,
        "-m",
        "edgekv",
        "up",
        "--data-dir",
        str(args.data_dir),
    ]
    if args.topology:
        command += ["--topology", args.topology]
    if args.time_scale is not None:
        command += ["--time-scale", repr(args.time_scale)]
    if args.auth:
        command.append("--auth")
    if args.tls:
        command.append("--tls")
    log_path = args.data_dir / "launcher.log"
    # The supervisor must outlive this process: no parent-death signal.
    launcher = spawn(command, log_path, name="launcher", die_with_parent=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_state()
        if state is not None and state.launcher_pid == launcher.pid:
            print_table(state)
            print(
                f"running in the background (launcher pid {launcher.pid}); stop with `edgekv down`"
            )
            return 0
        if launcher.returncode is not None:
            raise OSError(f"the cluster did not start: {launcher.tail(1) or 'no output'}")
        await asyncio.sleep(0.1)
    launcher.signal(signal.SIGTERM)
    raise OSError(f"the cluster was not healthy within 60 s; see {log_path}")


def _running_state() -> ClusterState:
    state = read_state()
    if state is None:
        raise UsageError(f"no cluster is running (no state file at {state_file_path()})")
    return state


async def run_down(args: argparse.Namespace) -> int:
    state = _running_state()
    launcher = state.launcher_identity()
    nodes = state.node_identities()
    ours = _still_ours(state, launcher, nodes)
    running_nodes = [p for p in nodes.values() if p is not None and p in ours]
    # The launcher stops its nodes in order; what is left after the grace period is killed.
    # Without it (it died), the nodes are told to stop themselves.
    terminate = [launcher] if launcher is not None and launcher in ours else running_nodes
    await stop_processes(ours, DOWN_GRACE_S, terminate=terminate)
    state_file_path().unlink(missing_ok=True)
    print(f"stopped {len(running_nodes)} nodes")
    return 0


def _still_ours(
    state: ClusterState,
    launcher: ProcessIdentity | None,
    nodes: dict[str, ProcessIdentity | None],
) -> list[ProcessIdentity]:
    """The recorded processes that still run as recorded; a word on stderr for each other.

    A state file outlives its cluster when the machine restarts or the launcher is
    killed, and its PIDs may by then belong to anyone: a PID is signalled only while
    its start time and command line are still those recorded.
    """
    recorded: dict[str, tuple[object, ProcessIdentity | None]] = {
        "launcher": (state.launcher_pid, launcher)
    }
    recorded |= {
        f"node {name}": (info.get("pid"), nodes[name]) for name, info in state.nodes.items()
    }
    ours = []
    for what, (pid, identity) in recorded.items():
        if identity is not None and identity.is_running():
            ours.append(identity)
        elif identity is None and isinstance(pid, int) and alive(pid):
            print(
                f"edgekv: {what}: pid {pid} left alone: the state file does not say which "
                "process it was (stop it by hand if it is edgekv's)",
                file=sys.stderr,
            )
        elif identity is not None and alive(identity.pid):
            print(
                f"edgekv: {what}: pid {identity.pid} left alone: it is another process now",
                file=sys.stderr,
            )
    return ours


async def run_status(args: argparse.Namespace) -> int:
    from edgekv.control import NodeControl
    from edgekv.core.errors import KVError

    state = read_state_file(args.state) if args.state is not None else _running_state()
    print(f"{'node':<16} {'region':<14} {'address':<22} {'health':<8} stats")
    unhealthy = 0
    for name, info in state.nodes.items():
        address = str(info["address"])
        if info["kind"] == "api":
            health = await _api_health(address, state.tls_ca)
            unhealthy += health != "SERVING"
            scheme = "http" if state.tls_ca is None else "https"
            detail = f"{scheme}://{address}/client/v4" if health == "SERVING" else ""
            print(f"{name:<16} {info['region']!s:<14} {address:<22} {health:<8} {detail}")
            continue
        async with NodeControl(address, timeout_s=2.0, tls_ca=state.tls_ca) as control:
            health = "SERVING" if await control.healthy() else "DOWN"
            unhealthy += health != "SERVING"
            detail = ""
            if info["kind"] == "edge" and health == "SERVING":
                try:
                    stats = await control.stats()
                except KVError as exc:
                    detail = f"no stats: {exc.message}"
                else:
                    detail = (
                        f"hits={stats.hits} misses={stats.misses} expired={stats.expired} "
                        f"stale={stats.stale_serves} upstream={stats.upstream_calls} "
                        f"entries={stats.entries} bytes={stats.bytes_cached}"
                    )
        print(f"{name:<16} {info['region']!s:<14} {address:<22} {health:<8} {detail}")
    return 1 if unhealthy else 0


async def _api_health(address: str, tls_ca: str | None) -> str:
    from edgekv.launcher import api_healthy
    from edgekv.process import StartError

    try:
        await api_healthy(address, timeout_s=2.0, tls_ca=tls_ca)
    except StartError:
        return "DOWN"
    return "SERVING"
