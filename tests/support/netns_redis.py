"""A real ``redis-server`` inside a lab namespace, listening on that namespace's address.

Theory of operation: :func:`start_redis_in` runs ``redis-server`` through
:meth:`~tests.support.netns.NetnsLab.exec_argv` (``ip netns exec`` execs, so the
child's PID is redis-server's own), bound to the node's address only, with the
persistence ``edgekv central --durability local`` requires by default
(:data:`~tests.support.redis_server.DURABLE_PERSISTENCE`) and its log and files
in a directory of the test's choosing. The caller's own namespace cannot reach
that address, so readiness is asked from inside: one short Python process in
the namespace sends ``PING`` until it hears ``+PONG`` (no ``redis-cli`` needed).
The lab kills whatever is left in its namespaces when it ends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekv.process import Child, spawn
from tests.support.netns import NetnsLab
from tests.support.redis_server import DURABLE_PERSISTENCE, require_redis_binary

# Run inside the namespace: PING HOST PORT until +PONG or the deadline; exit 0 once it answers.
_PING_UNTIL_READY = """
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        with socket.create_connection((host, port), timeout=0.2) as conn:
            conn.sendall(b"PING\\r\\n")
            if conn.recv(16).startswith(b"+PONG"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.02)
sys.exit(1)
"""


@dataclass
class NamespacedRedis:
    """A redis-server in ``node``'s namespace, at ``host:port``."""

    host: str
    port: int
    process: Child
    data_dir: Path

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def stop(self) -> None:
        self.process.stop()


def start_redis_in(
    lab: NetnsLab,
    node: str,
    data_dir: Path,
    port: int = 6379,
    persistence: Sequence[str] = DURABLE_PERSISTENCE,
    timeout_s: float = 10.0,
) -> NamespacedRedis:
    """redis-server in ``node``'s namespace on its address and ``port``, once it answers PING."""
    binary = require_redis_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    host = lab.address(node)
    argv = [
        binary,
        "--port", str(port),
        "--bind", host,
        "--dir", str(data_dir),
        "--protected-mode", "no",
        *persistence,
    ]  # fmt: skip
    process = spawn(lab.exec_argv(node, argv), data_dir / "redis.log", name=f"redis-{node}")
    probe = [sys.executable, "-c", _PING_UNTIL_READY, host, str(port), str(timeout_s)]
    answered = subprocess.run(lab.exec_argv(node, probe), timeout=timeout_s + 5).returncode == 0
    if not answered or not process.running:
        process.kill()
        log = (data_dir / "redis.log").read_text(errors="replace")
        raise RuntimeError(f"redis-server in {lab.ns(node)} did not answer PING:\n{log}")
    return NamespacedRedis(host, port, process, data_dir)
