"""A cluster in one process: the real central and edges, wired without sockets.

Theory of operation: :func:`simulated_cluster` builds from a
:class:`~edgekv.topology.Topology` what the launcher would start as processes
— the :class:`~central.service.CentralStoreService` over the topology's
storage (``memory:``, or SQLite with its writer run inline; Redis is real I/O
and is not simulated) and one edge per :class:`~edgekv.topology.EdgeNodeSpec`
with its region's link, mode and cache — using the same assembly functions
the servers use (:func:`central.server.central_service`,
:func:`edge.server.assemble_edge`). Every call between them goes through
:mod:`edgekv.inprocess`: serialised and parsed as on the wire, through the
same error boundary. The clock is :class:`~edgekv.clock.LoopClock`, so on the
virtual-time loop (:mod:`edgekv.sim.loop`) a link's RTT is a jump, not a wait.

Every node's randomness comes from the run's one seed, split by the node's
name (:func:`component_seed`), and central's namespace ids are drawn from it
too, so that a seed replays a run: the same ids, delays and losses.

It yields the same :class:`~edgekv.experiments.cluster.ClusterView` as a
cluster of processes, whose addresses (``sim:eu-west-1``) name in-process
channels (:meth:`ClusterView.target`), so an experiment's driver runs
unchanged on either engine.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from central.server import central_service
from central.service import CentralSettings, CentralStoreService
from central.storage.base import Durability, Storage
from central.storage.memory import MemoryStorage
from central.storage.sqlite import SqliteStorage
from edge.node import EdgePolicy
from edge.server import Edge, EdgeConfig, add_edge_services, assemble_edge
from edgekv.clock import LoopClock
from edgekv.control import LinkSettings
from edgekv.core import limits
from edgekv.core.errors import UsageError
from edgekv.experiments.cluster import ClusterView, EdgeAddress
from edgekv.inprocess import InProcessChannel, InProcessServer
from edgekv.topology import EdgeNodeSpec, Mode, Topology
from edgekv.v1 import central_pb2_grpc

CENTRAL_ADDRESS = "sim:central"


def component_seed(seed: int, component: str) -> int:
    """The seed of one component of a run: the run's seed split by the component's name.

    A hash, not Python's ``hash()`` (salted per process) and not ``seed + i``
    (neighbouring runs would share streams): sha256 of ``"{seed}/{component}"``.
    """
    digest = hashlib.sha256(f"{seed}/{component}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def seeded_namespace_ids(seed: int) -> Callable[[], str]:
    """Central's namespace ids, drawn from the run's seed (32 hex digits, as Workers')."""
    rng = random.Random(component_seed(seed, "central/namespace-ids"))
    return lambda: f"{rng.getrandbits(128):032x}"


@dataclass
class SimulatedEdge:
    spec: EdgeNodeSpec
    edge: Edge
    server: InProcessServer

    @property
    def address(self) -> str:
        return f"sim:{self.spec.name}"


@dataclass
class SimulatedCluster:
    clock: LoopClock
    storage: Storage
    service: CentralStoreService
    central: InProcessServer
    edges: list[SimulatedEdge]
    # What central was opened with, to open it again after a restart.
    storage_url: str
    data_dir: Path
    settings: CentralSettings
    restarts: int = 0

    async def restart_central(self, down_s: float) -> None:
        """Take central down for ``down_s`` simulated seconds and start it again.

        As a graceful stop and start of the process: new calls and open Watch
        streams fail UNAVAILABLE at once, calls already running finish, the
        storage is closed and opened again (a SQLite store keeps its data; a
        ``memory:`` one starts empty, as a real one would), and a new service
        loads it.
        """
        if not self.central.serving:
            raise RuntimeError("central is already down: restarts cannot overlap")
        self.central.stop()
        await self.central.wait_idle()
        await self.storage.close()
        await self.clock.sleep(down_s)
        self.storage = await open_simulated_storage(self.storage_url, self.data_dir)
        self.service = await central_service(self.storage, self.clock, self.settings)
        self.central.restart(
            lambda server: central_pb2_grpc.add_CentralStoreServicer_to_server(self.service, server)
        )
        self.restarts += 1

    def channels(self) -> dict[str, InProcessChannel]:
        """Address → a channel to that node, for whoever connects to it."""
        found = {CENTRAL_ADDRESS: self.central.channel()}
        for edge in self.edges:
            found[edge.address] = edge.server.channel()
        return found

    async def close(self) -> None:
        for edge in self.edges:
            await edge.edge.close()
        await self.storage.close()


async def open_simulated_storage(url: str, data_dir: Path) -> Storage:
    """The topology's storage, as a simulation runs it; Redis is refused (real I/O)."""
    scheme, _, rest = url.partition(":")
    if scheme == "memory":
        return MemoryStorage()
    if scheme == "sqlite" and rest:
        path = Path(rest.removeprefix("//"))
        # Nothing outlives a simulation, and nothing in it crashes the host: no fsync.
        return await SqliteStorage.open(
            data_dir / path.name, durability=Durability.NONE, inline_writer=True
        )
    raise UsageError(
        f"the simulation runs central on memory: or sqlite:, not {url!r} "
        "(Redis is real I/O: run it with --engine cluster)"
    )


async def start_simulated(topology: Topology, seed: int, data_dir: Path) -> SimulatedCluster:
    """Build the topology's nodes on the running (virtual-time) loop; see the module."""
    clock = LoopClock()
    storage = await open_simulated_storage(topology.central.storage, data_dir)
    settings = CentralSettings(
        write_rate_limit=topology.central.write_rate_limit,
        new_namespace_id=seeded_namespace_ids(seed),
    )
    service = await central_service(storage, clock, settings)
    central = InProcessServer()
    central_pb2_grpc.add_CentralStoreServicer_to_server(service, central)
    cluster = SimulatedCluster(
        clock, storage, service, central, [], topology.central.storage, data_dir, settings
    )
    try:
        for spec in topology.edge_nodes():
            cluster.edges.append(await _start_edge(spec, seed, clock, central))
    except BaseException:
        await cluster.close()
        raise
    return cluster


async def _start_edge(
    spec: EdgeNodeSpec, seed: int, clock: LoopClock, central: InProcessServer
) -> SimulatedEdge:
    region = spec.region
    config = EdgeConfig(
        central=CENTRAL_ADDRESS,
        region=region.name,
        node=spec.name,
        cache_url=region.edge.cache,
        cache_max_bytes=region.edge.cache_max_bytes,
        policy=EdgePolicy(
            Mode(region.edge.mode), region.edge.max_stale_s, region.edge.refresh_ahead
        ),
        link=LinkSettings(region.rtt_ms, region.jitter_ms, region.loss).validated(),
        seed=component_seed(seed, f"edge/{spec.name}"),
    )
    if config.cache_url != "memory":
        raise UsageError(
            f"the simulation runs edges with a memory cache, not {config.cache_url!r} "
            "(Redis is real I/O: run it with --engine cluster)"
        )
    edge = await assemble_edge(config, clock, central.channel())
    server = InProcessServer(max_receive_bytes=limits.MAX_EDGE_REQUEST_BYTES)
    add_edge_services(edge, server)
    return SimulatedEdge(spec, edge, server)


@asynccontextmanager
async def simulated_cluster(topology: Topology, seed: int) -> AsyncIterator[ClusterView]:
    """The topology in this process on virtual time, as a ClusterView; closed after."""
    with tempfile.TemporaryDirectory(prefix="edgekv-sim-") as data_dir:
        cluster = await start_simulated(topology, seed, Path(data_dir))
        try:
            edges = [
                EdgeAddress(edge.spec.name, edge.spec.region.name, edge.address)
                for edge in cluster.edges
            ]
            yield ClusterView.fresh_from(
                topology,
                CENTRAL_ADDRESS,
                edges,
                cluster.clock,
                engine="sim",
                channels=cluster.channels(),
                restart_central=cluster.restart_central,
            )
        finally:
            await cluster.close()
