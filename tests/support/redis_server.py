"""A real ``redis-server`` for tests, on a free loopback port, in a temp dir.

Started with :func:`edgekv.process.spawn` (its log beside its data, gone with the tests).
By default it keeps every acknowledged write on disk (``appendonly yes``,
``appendfsync always``), as ``edgekv central --durability local`` requires;
:data:`REDIS_DEFAULT_PERSISTENCE` starts one as redis-server comes out of the box.
A server can be killed (SIGKILL) and restarted on the same port and files.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgekv.process import Child, spawn

# An acknowledged write is on disk before Redis answers: what central's default asks for.
DURABLE_PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
# redis-server's own defaults: RDB snapshots now and then, no append-only file.
REDIS_DEFAULT_PERSISTENCE: tuple[str, ...] = ()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    port: int
    process: Child
    data_dir: Path
    persistence: Sequence[str] = field(default=DURABLE_PERSISTENCE)
    # Further redis-server flags, e.g. --requirepass.
    extra_args: Sequence[str] = ()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: Redis keeps only what it had written to its files."""
        self.process.kill()

    def restart(self) -> None:
        """Start it again on the same port, directory and persistence (after stop or kill)."""
        self.process.stop()
        restarted = _spawn_and_wait(self.data_dir, self.port, [*self.persistence, *self.extra_args])
        if restarted is None:
            raise RuntimeError(f"could not restart redis-server on port {self.port}")
        self.process = restarted


def require_redis_binary() -> str:
    """The redis-server path; outside CI a missing binary skips, in CI it fails."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed (CI installs it; apt-get install redis-server)")
    return binary


def start_redis(
    data_dir: Path,
    extra_args: Sequence[str] = (),
    persistence: Sequence[str] = DURABLE_PERSISTENCE,
) -> RedisServer:
    """A redis-server in ``data_dir`` with ``persistence`` and ``extra_args``, on a free port."""
    require_redis_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        process = _spawn_and_wait(data_dir, port, [*persistence, *extra_args])
        if process is not None:
            return RedisServer(port, process, data_dir, tuple(persistence), tuple(extra_args))
    raise RuntimeError("could not start redis-server")


def _spawn_and_wait(data_dir: Path, port: int, flags: Sequence[str]) -> Child | None:
    """Start redis-server on ``port``; the process once it answers PING, None if it did not."""
    argv = [
        require_redis_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--protected-mode", "no",
        *flags,
    ]  # fmt: skip
    process = spawn(argv, data_dir / f"redis-{port}.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.running:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                # A server with --requirepass answers -NOAUTH: it is up all the same.
                if conn.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                    return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    return None
