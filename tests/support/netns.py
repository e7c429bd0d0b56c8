"""Network namespaces joined by a bridge, and a client agent that runs inside one.

Theory of operation: :class:`NetnsLab` (a context manager, needs root and
``ip``) creates one namespace per node plus one that holds only a bridge, and
joins each node to the bridge with a veth pair created directly between the
two namespaces, so nothing at all is added to the caller's own namespace. Each
node's end is called ``eth0`` and gets ``SUBNET.N/24``; the bridge's end is
``v-NODE``. The subnet exists only inside these namespaces, so no packet of
the test can reach or come from anywhere else. ``exec_argv`` prefixes a
command with ``ip netns exec NS`` (which execs, so the child's PID is the
command's own). On exit, every process still inside a lab namespace is
SIGKILLed by PID and every namespace is deleted, which removes its veth ends
and the bridge with it.

:class:`ClientAgent` is one long-lived ``python -m tests.support.netns`` process
inside a namespace that reads one JSON command per line on stdin and answers
one JSON line on stdout, so a test drives ``edgekv.Client`` calls across the
namespaces' real interfaces without paying an interpreter start per call.
Client retries are off (one attempt), so a failure is reported as it happened.
Besides reads and writes through an edge it reads central directly: many keys
at once (``central_get``), and a namespace's change log replayed by ``Watch``
from its first revision (``change_log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.support.node_process import REPO_ROOT, child_env


def netns_unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


def require_netns() -> None:
    """Skip the test when namespaces cannot be made here; in CI, fail it instead."""
    import pytest

    reason = netns_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the multi-host tests, but {reason}")
        pytest.skip(reason)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


class NetnsLab:
    """Namespaces ``PREFIX-NODE`` for each node, joined by a bridge in ``PREFIX-br``."""

    def __init__(self, prefix: str, nodes: list[str], subnet: str) -> None:
        self.prefix = prefix
        self.nodes = list(nodes)
        self.subnet = subnet  # three octets, e.g. "10.77.3"
        self.created: list[str] = []
        self.bridge_ns = f"{prefix}-br"

    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def address(self, node: str) -> str:
        return f"{self.subnet}.{self.nodes.index(node) + 1}"

    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(node), *argv]

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def setup(self) -> None:
        self._add_ns(self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for node in self.nodes:
            ns = self.ns(node)
            self._add_ns(ns)
            # veth pair born in the bridge namespace, its node end moved at once.
            _ip(
                "-n", self.bridge_ns, "link", "add", f"v-{node}", "type", "veth",
                "peer", "name", "eth0", "netns", ns,
            )  # fmt: skip
            _ip("-n", self.bridge_ns, "link", "set", f"v-{node}", "master", "br0")
            _ip("-n", self.bridge_ns, "link", "set", f"v-{node}", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(node)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def set_link(self, node: str, up: bool) -> None:
        """Take the node's own interface down (its subnet route goes with it) or up."""
        _ip("-n", self.ns(node), "link", "set", "eth0", "up" if up else "down")

    def reset_connections(self, node: str, peer: str) -> None:
        """Abort ``node``'s TCP connections to ``peer`` (as a peer's RST would).

        A link that goes down leaves established connections hanging until a
        deadline; aborting them (``ss -K``, which needs a kernel with
        CONFIG_INET_DIAG_DESTROY) makes the node notice at once, as it would
        on a real host whose NIC lost its carrier and reset its flows.
        """
        argv = ["ss", "-K", "-t", "dst", self.address(peer)]
        subprocess.run(self.exec_argv(node, argv), capture_output=True, timeout=10, check=True)
        argv = ["ss", "-H", "-t", "state", "established", "dst", self.address(peer)]
        left = subprocess.run(
            self.exec_argv(node, argv), capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        if left:
            raise RuntimeError(
                f"ss -K left connections from {node} to {peer} (no CONFIG_INET_DIAG_DESTROY?):\n"
                f"{left}"
            )

    def _pids(self, name: str) -> list[int]:
        result = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10
        )
        return [int(pid) for pid in result.stdout.split()]

    def teardown(self) -> None:
        errors = []
        for name in reversed(self.created):
            for pid in self._pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                _ip("netns", "del", name)
            except Exception as exc:  # keep deleting the others
                errors.append(str(exc))
        self.created.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> Self:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.teardown()


class ClientAgent:
    """A client process inside a lab namespace; :meth:`call` sends one command."""

    def __init__(self, lab: NetnsLab, node: str, stderr_path: Path) -> None:
        argv = lab.exec_argv(node, [sys.executable, "-m", "tests.support.netns"])
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**child_env(), "PYTHONUNBUFFERED": "1"},
                cwd=REPO_ROOT,
                text=True,
                bufsize=1,
            )

    def call(self, timeout_s: float = 20.0, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(
                f"client agent gave no answer to {command} within {timeout_s:g} s\n"
                f"stderr:\n{self.stderr_path.read_text(errors='replace')}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


async def _central_get(kv: Any, keys: list[str]) -> dict[str, list[Any]]:
    """Key → [value, revision] of every key of ``keys`` that exists (100 per call)."""
    found: dict[str, list[Any]] = {}
    for start in range(0, len(keys), 100):
        got = await kv.get_with_metadata(keys[start : start + 100])
        for key, read in got.items():
            if read is not None:
                found[key] = [read.value, read.info.revision]
    return found


async def _change_log(kv: Any, until: int, timeout_s: float) -> dict[str, Any]:
    """The namespace's changes replayed from revision 1, as [revision, key, kind], up to
    the first at or past ``until``; ``complete`` is False when none came within the time."""
    changes: list[list[Any]] = []
    stream = await kv.watch(start_revision=1)

    async def collect() -> None:
        async for change in stream:
            changes.append([change.revision, change.key, change.kind.value])
            if change.revision >= until:
                return

    try:
        await asyncio.wait_for(collect(), timeout_s)
        complete = True
    except TimeoutError:
        complete = False
    finally:
        stream.close()
    return {"changes": changes, "complete": complete}


async def _agent_main() -> None:
    import edgekv
    from edgekv.client import RetryPolicy

    clients: dict[tuple[str, str], edgekv.Client] = {}

    def client(role: str, address: str) -> edgekv.Client:
        if (role, address) not in clients:
            central, edge = (address, None) if role == "central" else (None, address)
            clients[role, address] = edgekv.Client(
                central=central, edge=edge, timeout_s=15.0, retry=RetryPolicy.NONE
            )
        return clients[role, address]

    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        started = time.monotonic()
        try:
            answer: dict[str, Any]
            if command["op"] == "create_namespace":
                ns = await client("central", command["central"]).create_namespace(command["title"])
                answer = {"id": ns.id}
            elif command["op"] == "central_get":
                kv = client("central", command["central"]).namespace(command["namespace"])
                answer = {"found": await _central_get(kv, command["keys"])}
            elif command["op"] == "change_log":
                kv = client("central", command["central"]).namespace(command["namespace"])
                answer = await _change_log(kv, command["until"], command.get("timeout_s", 10.0))
            else:
                kv = client("edge", command["edge"]).namespace(command["namespace"])
                if command["op"] == "put":
                    await kv.put(command["key"], command["value"])
                    answer = {}
                else:
                    got = await kv.get_with_metadata(command["key"])
                    answer = {"value": got.value, "status": got.cache_status}
        except edgekv.KVError as exc:
            answer = {"error": type(exc).__name__, "message": str(exc)}
        answer["elapsed_s"] = time.monotonic() - started
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(_agent_main())
