"""How fast the simulation runs, against the floor of the node code it runs.

Theory of operation: the simulation exists to run far more operations than a
cluster of processes can, so its figure of merit is simulated operations per
real second — and, since this machine is noisy, that figure as a ratio to a
floor measured in the same run. :func:`measure` takes three numbers on the
virtual-time loop:

* **floor** — microseconds per call of the node code alone: an edge's
  ``EdgeNode.get`` answering a HIT, and central's ``Get`` service, called
  directly (no transport, no client, no driver); and a HIT as the simulation
  must pay for it at least: through ``edgekv.Client``, the in-process
  transport (protobuf both ways) and the edge's service, one call after
  another (no driver, no history, no timers) — the ceiling of any workload;
* **engine** — a five-region staleness workload (the experiment itself, with
  ``--engine sim``): operations per real second, and microseconds per
  operation, including the driver, the client, the in-process transport with
  its protobuf round trips and the event loop;
* **ratio** — engine microseconds per operation over the edge HIT floor: how
  many times the cost of the read logic each simulated operation pays.

With ``profile``, the engine's run is profiled and its time split by layer
(event loop, transport, client, edge, central, driver and workload), which is
where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Where a function's own time is counted, by the path of its file (first match wins).
LAYERS = (
    ("event loop", ("/asyncio/",)),
    ("transport", ("edgekv/inprocess.py", "edgekv/rpc.py", "_pb2", "google/protobuf")),
    ("client", ("edgekv/client.py", "edgekv/inflight.py", "edgekv/retry.py", "edgekv/wire.py")),
    ("edge", ("/edge/", "edgekv/core/")),
    ("central", ("/central/",)),
    ("driver and workload", ("edgekv/experiments/", "edgekv/sim/", "edgekv/clock.py")),
)
FLOOR_CALLS = 20_000


@dataclass
class SimSpeed:
    floor_edge_hit_us: float
    floor_central_get_us: float
    floor_client_hit_us: float
    ops: int
    real_s: float
    # Layer → share of the profiled run's time (only with profile).
    profile: dict[str, float] = field(default_factory=dict)

    @property
    def ops_per_real_s(self) -> float:
        return self.ops / self.real_s

    @property
    def us_per_op(self) -> float:
        return self.real_s / self.ops * 1e6

    @property
    def ratio_to_floor(self) -> float:
        return self.us_per_op / self.floor_edge_hit_us

    def as_dict(self) -> dict[str, Any]:
        return {
            "floor_edge_hit_us": round(self.floor_edge_hit_us, 2),
            "floor_central_get_us": round(self.floor_central_get_us, 2),
            "floor_client_hit_us": round(self.floor_client_hit_us, 2),
            "ops": self.ops,
            "real_s": round(self.real_s, 3),
            "ops_per_real_s": round(self.ops_per_real_s),
            "us_per_op": round(self.us_per_op, 2),
            "ratio_to_floor": round(self.ratio_to_floor, 1),
            "profile": {layer: round(share, 3) for layer, share in self.profile.items()},
        }

    def as_text(self) -> str:
        lines = [
            f"floor: edge HIT {self.floor_edge_hit_us:.2f} us, central Get "
            f"{self.floor_central_get_us:.2f} us (the node code, called directly); a HIT "
            f"through the client and the in-process transport {self.floor_client_hit_us:.2f} us "
            f"(at most {1e6 / self.floor_client_hit_us:,.0f} reads per real second)",
            f"engine: {self.ops:,} operations in {self.real_s:.1f} s = "
            f"{self.ops_per_real_s:,.0f} simulated ops per real second "
            f"({self.us_per_op:.1f} us each, {self.ratio_to_floor:.1f} x the HIT floor)",
        ]
        if self.profile:
            lines.append("where the time goes:")
            lines += [f"  {layer:<20} {share:6.1%}" for layer, share in self.profile.items()]
        return "\n".join(lines)


async def floors(calls: int = FLOOR_CALLS) -> tuple[float, float, float]:
    """Microseconds per direct edge HIT, per direct central Get and per HIT through the
    client and the in-process transport, on the running loop."""
    import tempfile

    import edgekv
    from edgekv.client import RetryPolicy
    from edgekv.inprocess import InProcessContext
    from edgekv.sim.cluster import CENTRAL_ADDRESS, start_simulated
    from edgekv.topology import CentralSpec, Topology, generated_topology
    from edgekv.v1 import central_pb2

    regions = generated_topology(1).regions
    topology = Topology(CentralSpec(regions[0].name, "memory:"), regions)
    with tempfile.TemporaryDirectory() as data_dir:
        cluster = await start_simulated(topology, seed=1, data_dir=Path(data_dir))
        try:
            client = edgekv.Client(central=cluster.channels()[CENTRAL_ADDRESS])
            namespace = await client.create_namespace("floor")
            await client.namespace(namespace.id).put("k", "v" * 64)
            node = cluster.edges[0].edge.node
            await node.get(namespace.id, b"k", 3600)  # the copy: every call below is a HIT
            began = time.perf_counter()
            for _ in range(calls):
                await node.get(namespace.id, b"k", 3600)
            edge_us = (time.perf_counter() - began) / calls * 1e6
            request = central_pb2.GetRequest(namespace_id=namespace.id, key=b"k")
            context = InProcessContext(())
            began = time.perf_counter()
            for _ in range(calls):
                await cluster.service.Get(request, context)
            central_us = (time.perf_counter() - began) / calls * 1e6
            edge_address = cluster.edges[0].address
            reader = edgekv.Client(edge=cluster.channels()[edge_address], retry=RetryPolicy.NONE)
            kv = reader.namespace(namespace.id)
            began = time.perf_counter()
            for _ in range(calls):
                await kv.get_with_metadata("k", type="bytes", cache_ttl=3600)
            client_us = (time.perf_counter() - began) / calls * 1e6
        finally:
            await cluster.close()
    return edge_us, central_us, client_us


async def measure(
    duration_s: float, read_rate: float, out: Path, profile: bool = False
) -> SimSpeed:
    """The floors, then the staleness workload in the simulation; see the module."""
    from edgekv.experiments.base import Progress
    from edgekv.experiments.history import Op
    from edgekv.experiments.staleness import Staleness

    edge_us, central_us, client_us = await floors()
    args = staleness_args(duration_s, read_rate, out)
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        ops: list[Op] = []
        await Staleness().run(args, Progress(), ops.append)
    finally:
        if profiler is not None:
            profiler.disable()
    real_s = time.perf_counter() - began
    return SimSpeed(
        edge_us,
        central_us,
        client_us,
        len(ops),
        real_s,
        shares(profiler) if profiler is not None else {},
    )


def layer_of(filename: str) -> str:
    if filename == "~":
        return "built-ins (C)"  # profiled C functions: isinstance, dict.get, serialisers
    for layer, markers in LAYERS:
        if any(marker in filename for marker in markers):
            return layer
    return "other"


def shares(profile: cProfile.Profile) -> dict[str, float]:
    """Each layer's share of the profile's own (not cumulative) time."""
    stats = pstats.Stats(profile)
    own: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        own[layer_of(filename)] += tottime
    total = sum(own.values()) or 1.0
    return dict(sorted(((k, v / total) for k, v in own.items()), key=lambda kv: -kv[1]))


def staleness_args(duration_s: float, read_rate: float, out: Path) -> argparse.Namespace:
    from edgekv.cli.main import build_parser

    return build_parser().parse_args(
        [
            "experiment", "staleness", "--engine", "sim", "--duration", f"{duration_s:g}",
            "--cache-ttls", "60", "--keys", "1000", "--zipf", "1.0",
            "--read-rate", f"{read_rate:g}", "--write-rate", "5", "--out", str(out),
        ]
    )  # fmt: skip
