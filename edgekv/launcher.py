"""Starting a whole cluster as local child processes, and stopping it cleanly.

Theory of operation: :meth:`LocalCluster.start` takes a
:class:`~edgekv.topology.Topology`, picks one time anchor for every node (so
their scaled clocks agree), starts ``edgekv central`` and then every
``edgekv edge`` as child processes on free loopback ports (port 0), each
writing to its own log file, and waits until each has printed its ready line
and answers gRPC health checking. Children run in their own session (a Ctrl-C
reaches the launcher, which stops them in order: edges, then central) and ask
the kernel to SIGTERM them should the launcher die without cleaning up.
:meth:`LocalCluster.stop` sends SIGTERM, waits, then SIGKILLs stragglers, so
no process is left behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgekv.locate import ClusterState
from edgekv.topology import RegionSpec, Topology

READY = re.compile(r"edgekv (central|edge) ready on (\S+)")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the launcher dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class LaunchError(OSError):
    """A node did not start; the message names it and quotes its log."""


@dataclass
class RunningNode:
    name: str
    kind: str  # "central" or "edge"
    region: str
    rtt_ms: float
    log_path: Path
    process: asyncio.subprocess.Process
    address: str = ""

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


@dataclass
class LocalCluster:
    topology: Topology
    data_dir: Path
    time_anchor: float
    nodes: list[RunningNode] = field(default_factory=list)

    @property
    def central(self) -> RunningNode:
        return self.nodes[0]

    @property
    def edges(self) -> list[RunningNode]:
        return [node for node in self.nodes if node.kind == "edge"]

    def edge_in(self, region: str) -> RunningNode:
        for node in self.edges:
            if node.region == region:
                return node
        raise LookupError(f"no edge in region {region!r}")

    @classmethod
    async def start(
        cls, topology: Topology, data_dir: Path, ready_timeout_s: float = 30.0
    ) -> LocalCluster:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "logs").mkdir(exist_ok=True)
        cluster = cls(topology, data_dir, time_anchor=time.time())
        try:
            central = await cluster._spawn(
                "central", "central", topology.central.region, 0.0, cluster._central_args()
            )
            await cluster._wait_ready([central], ready_timeout_s)
            edges = [
                await cluster._spawn(
                    "edge", name, region.name, region.rtt_ms, cluster._edge_args(region, name, seed)
                )
                for seed, (region, name) in enumerate(cluster._edge_names(), start=1)
            ]
            await cluster._wait_ready(edges, ready_timeout_s)
        except BaseException:
            await cluster.stop()
            raise
        return cluster

    def _edge_names(self) -> list[tuple[RegionSpec, str]]:
        return [(region, name) for region in self.topology.regions for name in region.node_names()]

    def _time_args(self) -> list[str]:
        return [
            "--time-scale",
            repr(self.topology.time_scale),
            "--time-anchor",
            repr(self.time_anchor),
        ]

    def _central_args(self) -> list[str]:
        storage = self.topology.central.storage
        scheme, _, rest = storage.partition(":")
        if scheme == "sqlite" and not Path(rest).is_absolute():
            storage = f"sqlite:{self.data_dir / rest}"
        args = ["central", "--listen", "127.0.0.1:0", "--storage", storage, *self._time_args()]
        if not self.topology.central.write_rate_limit:
            args.append("--no-write-rate-limit")
        return args

    def _edge_args(self, region: RegionSpec, name: str, seed: int) -> list[str]:
        spec = region.edge
        return [
            "edge",
            "--listen", "127.0.0.1:0",
            "--central", self.central.address,
            "--region", region.name,
            "--node", name,
            "--cache", spec.cache,
            "--cache-max-bytes", str(spec.cache_max_bytes),
            "--mode", spec.mode,
            "--max-stale-s", repr(spec.max_stale_s),
            "--refresh-ahead", repr(spec.refresh_ahead),
            "--rtt-ms", repr(region.rtt_ms),
            "--jitter-ms", repr(region.jitter_ms),
            "--loss", repr(region.loss),
            "--seed", str(seed),
            *self._time_args(),
        ]  # fmt: skip

    async def _spawn(
        self, kind: str, name: str, region: str, rtt_ms: float, args: list[str]
    ) -> RunningNode:
        log_path = self.data_dir / "logs" / f"{name}.log"
        # Every flag of a node can come from an EDGEKV_* variable; the launcher passes
        # what the topology says as flags, and nothing from its own shell may leak in.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "edgekv",
                *args,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        node = RunningNode(name, kind, region, rtt_ms, log_path, process)
        self.nodes.append(node)
        return node

    async def _wait_ready(self, nodes: list[RunningNode], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                if node.process.returncode is not None:
                    raise LaunchError(
                        f"{node.name} exited with code {node.process.returncode} while starting: "
                        f"{node.log_tail() or 'no output'} (log: {node.log_path})"
                    )
                match = READY.search(node.log_path.read_text(encoding="utf-8", errors="replace"))
                if match:
                    node.address = match.group(2)
                    waiting.remove(node)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(node.name for node in waiting)
                raise LaunchError(f"not ready after {timeout_s:g} s: {names}")
            if waiting:
                await asyncio.sleep(0.02)
        await asyncio.gather(*(healthy(node.address, timeout_s) for node in nodes))

    def state(self) -> ClusterState:
        edges: dict[str, list[str]] = {}
        for node in self.edges:
            edges.setdefault(node.region, []).append(node.address)
        return ClusterState(
            central=self.central.address,
            edges=edges,
            nodes={
                node.name: {
                    "kind": node.kind,
                    "region": node.region,
                    "address": node.address,
                    "pid": node.pid,
                    "rtt_ms": node.rtt_ms,
                    "log": str(node.log_path),
                }
                for node in self.nodes
            },
            launcher_pid=os.getpid(),
            time_scale=self.topology.time_scale,
            time_anchor=self.time_anchor,
        )

    def exited(self) -> list[RunningNode]:
        return [node for node in self.nodes if node.process.returncode is not None]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Edges first, then central: SIGTERM, wait, SIGKILL what is left."""
        for group in (self.edges, [n for n in self.nodes if n.kind == "central"]):
            running = [node for node in group if node.process.returncode is None]
            for node in running:
                node.process.terminate()
            waits = [asyncio.wait_for(node.process.wait(), grace_s) for node in running]
            for node, outcome in zip(
                running, await asyncio.gather(*waits, return_exceptions=True), strict=True
            ):
                if isinstance(outcome, BaseException):
                    node.process.kill()
                    await node.process.wait()


async def healthy(address: str, timeout_s: float) -> None:
    """Wait until ``address`` answers gRPC health checking with SERVING."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(
            health_pb2.HealthCheckRequest(), timeout=timeout_s, wait_for_ready=True
        )
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise LaunchError(f"{address} is not serving")
