"""The servers a benchmark measures, as child processes, and the no-op floor.

Theory of operation: every server is a child process started by
:func:`edgekv.process.spawn` (its own session, stdout and stderr in files,
SIGTERM from the kernel should the benchmark die without cleaning up).
:class:`ServerGroup` starts several at once, waits for each one's ready line
(:func:`edgekv.process.wait_ready`), and stops them all (SIGTERM, then SIGKILL
after 10 s).

The floor: ``python -m edgekv.bench.servers --serve-noop HOST:PORT`` serves
``/bench.Noop/Call`` through a generic handler with identity (de)serializers
and returns its (empty) request: what a gRPC call costs on this machine,
measured in the same run as the scenarios it judges. With ``--forward-to
NOOP`` it is a *relay*: it crosses a modelled link (the RTT named in the
request, waited as the edge waits it) to the no-op server, so it is a
do-nothing edge: what two hops and a link cost here. Both say they serve with
the nodes' ready line, of kind ``noop`` or ``relay``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from edgekv.channels import SERVER_KEEPALIVE_OPTIONS, open_channel
from edgekv.node_args import ANY_LOOPBACK_PORT
from edgekv.process import Child, format_ready, spawn, wait_ready
from edgekv.rpc import CHANNEL_OPTIONS

NOOP_METHOD = "/bench.Noop/Call"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0


# -- the no-op server and the relay (child processes) ---------------------------------


async def _noop_call(request: bytes, context: Any) -> bytes:
    return request


def _relay_call(forward_to: str) -> Callable[[bytes, Any], Awaitable[bytes]]:
    """A two-hop no-op: wait half an RTT, call the no-op server, wait the other half.

    The request is the modelled RTT in ms as ASCII (empty: none); the waits are
    ``asyncio.sleep``, as in the edge's link model, so a relay is an edge that
    does nothing but cross its link.
    """
    channel = open_channel(forward_to)
    forward = channel.unary_unary(NOOP_METHOD, request_serializer=None, response_deserializer=None)

    async def relay(request: bytes, context: Any) -> bytes:
        half_s = float(request or b"0") / 2000
        if half_s:
            await asyncio.sleep(half_s)
        await forward(b"", timeout=CALL_TIMEOUT_S)
        if half_s:
            await asyncio.sleep(half_s)
        return b""

    return relay


async def serve_noop(listen: str, forward_to: str | None = None) -> None:
    """Serve ``/bench.Noop/Call`` until SIGTERM or SIGINT: bytes in, same bytes out.

    With ``forward_to``, relay each call to the no-op server there instead.
    """
    # Our clients' keepalive pings (edgekv.channels) are allowed, as by every edgekv server.
    server = grpc.aio.server(options=[*CHANNEL_OPTIONS, *SERVER_KEEPALIVE_OPTIONS])
    call = _noop_call if forward_to is None else _relay_call(forward_to)
    handler = grpc.method_handlers_generic_handler(
        "bench.Noop",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=None, response_serializer=None
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    kind = "noop" if forward_to is None else "relay"
    print(format_ready(kind, f"{listen.rpartition(':')[0]}:{port}"), flush=True)
    await stop.wait()
    await server.stop(1.0)


NOOP_ARGV = (sys.executable, "-m", "edgekv.bench.servers", "--serve-noop", ANY_LOOPBACK_PORT)


def relay_argv(noop_address: str) -> tuple[str, ...]:
    return (*NOOP_ARGV, "--forward-to", noop_address)


# -- server processes -------------------------------------------------------------------


class ServerGroup:
    """Servers started together and stopped together: ``with ServerGroup(dir) as group``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[Child] = []

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def spawn(self, name: str, argv: Sequence[str]) -> Child:
        """Start one (no wait); stopped with the group."""
        server = spawn(
            argv,
            self.log_dir / f"{name}.stdout",
            self.log_dir / f"{name}.stderr",
            name=name,
            cwd=self.log_dir,
        )
        self.servers.append(server)
        return server

    def start(self, specs: Sequence[tuple[str, Sequence[str]]]) -> list[Child]:
        """Start (name, argv) servers at once; return when each printed its ready line."""
        started = [self.spawn(name, argv) for name, argv in specs]
        wait_ready(started, START_TIMEOUT_S)
        for server in started:
            print(f"{server.name}: pid {server.pid} on {server.address}", flush=True)
        return started

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            code = server.stop(STOP_TIMEOUT_S)
            if code not in (0, None):
                print(f"{server.name} exited with {code}; its stderr ends:\n{server.tail()}")
        self.servers.clear()


# -- /proc ------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all threads (0.0 if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_memory(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of ``pid``, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0]) * 1024  # reported in kB
    return out


def reset_peak_memory(pid: int) -> None:
    """Start ``pid``'s ``VmHWM`` again from its resident memory now (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- the machine ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": f"{protobuf_version} ({api_implementation.Type()})",
        "kernel": platform.release(),
        "redis_py": _version("redis"),
        "hdrhistogram": _version("hdrhistogram"),
        "edgekv": _version("edgekv"),
        "redis_server": _redis_server_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _redis_server_version() -> str:
    try:
        done = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    except OSError:
        return "not installed"
    match = re.search(r"v=(\S+)", done.stdout)
    return match.group(1) if match else done.stdout.strip()


def start_redis(group: ServerGroup) -> tuple[Child, str]:
    """A throw-away ``redis-server`` on a free loopback port in ``group``; it and its address.

    Append-only with ``appendfsync always``: a write is on disk before Redis answers,
    so central's Put on Redis is as durable as on SQLite (and SET pays the same).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--dir", str(group.log_dir),
    ]  # fmt: skip
    # redis-server prints no ready line: it serves once it accepts connections.
    server = group.spawn("redis", argv)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError(f"redis-server did not start: {server.tail()}")
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"127.0.0.1:{port}"
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not listen on {port} within {START_TIMEOUT_S:g} s")


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}, "
        f"Linux {info['kernel']}, load average {info['load_average_at_start']}",
        flush=True,
    )


def finish_machine(info: dict[str, Any]) -> None:
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at end {info['load_average_at_end']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekv.bench.servers")
    parser.add_argument("--serve-noop", metavar="HOST:PORT", required=True)
    parser.add_argument("--forward-to", metavar="HOST:PORT", help="relay to this no-op server")
    args = parser.parse_args(argv)
    asyncio.run(serve_noop(args.serve_noop, args.forward_to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
