"""The cluster an experiment runs on: a fresh one it starts, or a running one.

Theory of operation: a :class:`ClusterView` is all an experiment needs to
know — central's address, each region's edges, each region's modelled RTT,
and the clock the whole cluster shares (its time scale and anchor). A fresh
cluster comes from the local launcher (``edgekv up``'s machinery) and is
stopped when the experiment ends; a running one comes from its state file
and must answer health checks first, so that a dead cluster is one clear
error before anything is written. A run leaves a running cluster as it found
it when it fails or is interrupted: :func:`running_cluster_view` removes the
namespaces the run created there (a fresh cluster goes away whole).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.clock import LoopClock, ScaledClock
from edgekv.control import NodeControl
from edgekv.core.errors import UsageError
from edgekv.launcher import LocalCluster
from edgekv.locate import ClusterNotFoundError, ClusterState, read_state_file
from edgekv.topology import Topology

# The region that writes on a running cluster, unless told: the default topology's central.
DEFAULT_WRITER_REGION = "us-east"


@dataclass(frozen=True, slots=True)
class EdgeAddress:
    node: str
    region: str
    address: str


@dataclass
class ClusterView:
    central: str
    edges: list[EdgeAddress]
    rtt_ms: dict[str, float]
    jitter_ms: dict[str, float]
    # The clock the whole cluster shares: the host's, scaled; or the simulation's loop.
    clock: ScaledClock | LoopClock
    # True when the experiment started the cluster (and so chose its settings).
    fresh: bool
    topology: Topology | None = None
    # What the edges were run with (mode, max staleness, refresh-ahead), when known.
    edge_settings: dict[str, Any] = field(default_factory=dict)
    # Ids of the namespaces this run created, in order.
    namespaces: list[str] = field(default_factory=list)
    # What runs the nodes: "cluster" (processes, sockets, the host's clock) or "sim".
    engine: str = "cluster"
    # Address → an open channel to that node, where nodes are not reached over sockets.
    channels: dict[str, Any] = field(default_factory=dict)
    # Take central down for the given simulated seconds and back up (the simulation only).
    restart_central: Callable[[float], Awaitable[None]] | None = None

    @classmethod
    def fresh_from(
        cls,
        topology: Topology,
        central: str,
        edges: list[EdgeAddress],
        clock: ScaledClock | LoopClock,
        **more: Any,
    ) -> ClusterView:
        """The view of a cluster just started from ``topology`` (whichever engine runs it)."""
        spec = topology.regions[0].edge
        return cls(
            central=central,
            edges=edges,
            rtt_ms={region.name: region.rtt_ms for region in topology.regions},
            jitter_ms={region.name: region.jitter_ms for region in topology.regions},
            clock=clock,
            fresh=True,
            topology=topology,
            edge_settings={
                "mode": spec.mode,
                "max_stale_s": spec.max_stale_s,
                "refresh_ahead": spec.refresh_ahead,
            },
            **more,
        )

    def target(self, address: str) -> Any:
        """What a client is given to reach the node at ``address``: a channel, or the address."""
        return self.channels.get(address, address)

    @property
    def regions(self) -> list[str]:
        return list(dict.fromkeys(edge.region for edge in self.edges))

    def writer_region(self, chosen: str | None) -> str:
        """The region that writes: ``chosen`` (checked), else central's own region when
        the cluster has edges there, else the first region."""
        if chosen is not None:
            self.edges_in(chosen)
            return chosen
        central = self.topology.central.region if self.topology else DEFAULT_WRITER_REGION
        return central if central in self.regions else self.regions[0]

    def edges_in(self, region: str) -> list[EdgeAddress]:
        found = [edge for edge in self.edges if edge.region == region]
        if not found:
            known = ", ".join(self.regions)
            raise UsageError(f"the cluster has no edge in region {region!r} (regions: {known})")
        return found

    def describe(self) -> dict[str, Any]:
        """What run.json records about the cluster."""
        return {
            "engine": self.engine,
            "fresh": self.fresh,
            "central": self.central,
            "time_scale": self.clock.scale,
            "time_anchor": self.clock.anchor,
            "regions": {
                region: {
                    "rtt_ms": self.rtt_ms.get(region, 0.0),
                    "jitter_ms": self.jitter_ms.get(region, 0.0),
                    "edges": [edge.node for edge in self.edges_in(region)],
                }
                for region in self.regions
            },
            "edge_settings": self.edge_settings,
            # On a running cluster the run's data stays there, in these namespaces.
            **({} if self.fresh else {"namespaces": self.namespaces}),
        }


@asynccontextmanager
async def fresh_cluster(topology: Topology) -> AsyncIterator[ClusterView]:
    """Start ``topology`` as local processes; stop them, whatever happens."""
    from edgekv.experiments.capacity import refuse_unless_processes_fit

    refuse_unless_processes_fit(1 + len(topology.edge_nodes()))
    with tempfile.TemporaryDirectory(prefix="edgekv-experiment-") as data_dir:
        cluster = await LocalCluster.start(topology, Path(data_dir))
        try:
            edges = [EdgeAddress(node.name, node.region, node.address) for node in cluster.edges]
            clock = ScaledClock(topology.time_scale, cluster.time_anchor)
            yield ClusterView.fresh_from(topology, cluster.central_address, edges, clock)
        finally:
            await cluster.stop()


@asynccontextmanager
async def running_cluster_view(state_path: Path) -> AsyncIterator[ClusterView]:
    """A running cluster for one run; if the run fails, the namespaces it made are removed."""
    view = await running_cluster(state_path)
    try:
        yield view
    except BaseException:
        await remove_namespaces(view.central, view.namespaces)
        raise


# Real seconds to spend removing a failed run's namespaces before giving up on them.
CLEANUP_TIMEOUT_S = 10.0


async def remove_namespaces(central: str, namespace_ids: list[str]) -> None:
    """Delete a failed run's namespaces; if central cannot, say which are left behind."""
    if not namespace_ids:
        return
    import asyncio

    import edgekv

    async def remove() -> None:
        async with edgekv.Client(central=central, timeout_s=CLEANUP_TIMEOUT_S) as client:
            for namespace_id in namespace_ids:
                await client.delete_namespace(namespace_id)

    try:
        await asyncio.wait_for(remove(), CLEANUP_TIMEOUT_S)
    except (Exception, asyncio.CancelledError) as exc:
        left = ", ".join(namespace_ids)
        print(
            f"edgekv: warning: could not remove this run's namespaces from {central} "
            f"({type(exc).__name__}: {exc}); left behind: {left}",
            file=sys.stderr,
        )


async def running_cluster(state_path: Path, timeout_s: float = 3.0) -> ClusterView:
    """The cluster a state file describes, once every node answers health checks."""
    state = read_state_file(state_path)
    edges, rtt_ms = _edges_of(state)
    if not edges:
        raise ClusterNotFoundError(f"the cluster in {state_path} has no edges")
    for address in [state.central, *(edge.address for edge in edges)]:
        async with NodeControl(address, timeout_s) as control:
            answers = await control.healthy(wait=True)
        if not answers:
            raise ClusterNotFoundError(
                f"the cluster in {state_path} is not running: {address} does not answer "
                "(start one with `edgekv up --detach`)"
            ) from None
    return ClusterView(
        central=state.central,
        edges=edges,
        rtt_ms=rtt_ms,
        jitter_ms={},
        clock=ScaledClock(state.time_scale, state.time_anchor),
        fresh=False,
    )


def _edges_of(state: ClusterState) -> tuple[list[EdgeAddress], dict[str, float]]:
    edges: list[EdgeAddress] = []
    rtt_ms: dict[str, float] = {}
    by_address = {str(info.get("address")): (name, info) for name, info in state.nodes.items()}
    for region, addresses in state.edges.items():
        for index, address in enumerate(addresses, start=1):
            name, info = by_address.get(address, (f"{region}-{index}", {}))
            edges.append(EdgeAddress(name, region, address))
            rtt_ms[region] = float(str(info.get("rtt_ms", rtt_ms.get(region, 0.0))))
    return edges, rtt_ms
