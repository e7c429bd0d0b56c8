"""A real ``redis-server`` for tests, on a free loopback port, in a temp dir.

Started with :func:`edgekv.process.spawn` (its log beside its data, gone with the tests).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgekv.process import Child, spawn


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

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.process.stop()


def require_redis_binary() -> str:
    """The redis-server path; outside CI a missing binary skips, in CI it fails."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed (CI installs it; apt-get install redis-server)")
    return binary


def start_redis(data_dir: Path, extra_args: Sequence[str] = ()) -> RedisServer:
    binary = require_redis_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        process = spawn(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                *extra_args,
            ],
            data_dir / f"redis-{port}.log",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.running:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    # A server with --requirepass answers -NOAUTH: it is up all the same.
                    if conn.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return RedisServer(port, process, data_dir)
            except OSError:
                time.sleep(0.02)
        process.kill()
    raise RuntimeError("could not start redis-server")
