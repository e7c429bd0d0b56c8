"""What edgekv costs in memory and CPU: an edge's cache bound, and a whole local cluster.

Theory of operation: two measurements that are not latencies, run by
``edgekv bench resources``. (1) *Edge memory*: 200 MiB of distinct 1 MiB
values are read once each (every read a MISS) through an edge whose cache is
bounded to 64 MiB, by one and then four concurrent readers, while the edge's
resident memory is sampled; the kernel's peak (``VmHWM``) must stay within
idle + 1.5 x the bound. (2) *Cluster*: the default five-region topology is
started with ``edgekv up``'s machinery; the time until every node answers its
health check, the CPU all nodes use together while idle (``/proc/PID/stat``),
and the resident memory of a topology with four edges per region.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import edgekv
from edgekv.bench.servers import ServerGroup, process_cpu_s, process_memory
from edgekv.launcher import LocalCluster
from edgekv.node_args import central_args, edge_args, edgekv_command
from edgekv.topology import CentralSpec, EdgeSpec, RegionSpec, Topology, default_topology

MiB = 1024 * 1024
GiB = 1024 * MiB
CACHE_BOUND_BYTES = 64 * MiB
READ_BYTES = 200 * MiB
VALUE_BYTES = 1 * MiB
BULK_BATCH = 64  # values per bulk write: 64 MiB, inside the 100 MiB bulk limit
RSS_GROWTH_OVER_BOUND = 1.5
RSS_SAMPLE_S = 0.01


async def edge_memory(work_dir: Path, callers: tuple[int, ...] = (1, 4)) -> list[dict[str, Any]]:
    """For each number of readers, a fresh edge bounded to 64 MiB reads 200 MiB of MISSes."""
    results = []
    # One region with no modelled link: the reads measure the edge, not a wait.
    region = RegionSpec("eu-west", 0.0, edge=EdgeSpec(cache_max_bytes=CACHE_BOUND_BYTES))
    central_spec = CentralSpec(storage=f"sqlite:{work_dir / 'memory.db'}", write_rate_limit=False)
    topology = Topology(central_spec, (region,))
    with ServerGroup(work_dir) as group:
        (central,) = group.start([("central", edgekv_command(central_args(topology)))])
        async with edgekv.Client(central=central.address) as client:
            namespace = (await client.create_namespace("memory")).id
            keys = await _write_values(client.namespace(namespace))
        for readers in callers:
            flags = edge_args(
                topology, region, central=central.address, seed=topology.first_seed(region)
            )
            (edge,) = group.start([(f"edge-{readers}", edgekv_command(flags))])
            async with edgekv.Client(edge=edge.address) as client:
                results.append(
                    await _read_through(edge.pid, client.namespace(namespace), keys, readers)
                )
            edge.stop()
    return results


async def _write_values(kv: edgekv.KVNamespace) -> list[str]:
    keys = [f"big{i:05d}" for i in range(READ_BYTES // VALUE_BYTES)]
    for start in range(0, len(keys), BULK_BATCH):
        entries = [
            {"key": key, "value": (start + n).to_bytes(8, "big") * (VALUE_BYTES // 8)}
            for n, key in enumerate(keys[start : start + BULK_BATCH])
        ]
        await kv.bulk_put(entries)
    return keys


async def _read_through(
    pid: int, kv: edgekv.KVNamespace, keys: list[str], readers: int
) -> dict[str, Any]:
    await asyncio.sleep(0.5)
    idle_rss = process_memory(pid)["VmRSS"]
    pending = iter(keys)
    sampled: list[int] = []
    statuses: dict[str, int] = {}
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            sampled.append(process_memory(pid)["VmRSS"])
            await asyncio.sleep(RSS_SAMPLE_S)

    async def reader() -> None:
        for key in pending:
            read = await kv.get_with_metadata(key, type="bytes", cache_ttl=86_400)
            status = read.cache_status or "?"
            statuses[status] = statuses.get(status, 0) + 1

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    try:
        await asyncio.gather(*(reader() for _ in range(readers)))
    finally:
        done.set()
        await sampler
    read_s = time.monotonic() - started
    peak = process_memory(pid)["VmHWM"]
    bound = idle_rss + RSS_GROWTH_OVER_BOUND * CACHE_BOUND_BYTES
    return {
        "readers": readers,
        "read_mib": READ_BYTES / MiB,
        "read_s": round(read_s, 2),
        "statuses": statuses,
        "idle_rss_mib": round(idle_rss / MiB, 1),
        "peak_rss_mib": round(peak / MiB, 1),
        "max_sampled_rss_mib": round(max(sampled, default=0) / MiB, 1),
        "growth_over_bound": round((peak - idle_rss) / CACHE_BOUND_BYTES, 2),
        # The target is for one reader; with four, more values are in flight at once.
        "target": f"<= {RSS_GROWTH_OVER_BOUND}" if readers == 1 else "info",
        "within_target": peak <= bound or readers > 1,
    }


async def cluster_costs(work_dir: Path, idle_s: float = 10.0) -> dict[str, Any]:
    """Time to healthy and idle CPU of the default cluster; RSS of 20 edges."""
    results: dict[str, Any] = {}
    started = time.monotonic()
    cluster = await LocalCluster.start(default_topology(), work_dir / "five")
    results["healthy_s"] = round(time.monotonic() - started, 2)
    try:
        await asyncio.sleep(1.0)  # let start-up work settle
        pids = [node.pid for node in cluster.nodes]
        before = sum(process_cpu_s(pid) for pid in pids)
        await asyncio.sleep(idle_s)
        used = sum(process_cpu_s(pid) for pid in pids) - before
        results["idle_cpu_percent_of_a_core"] = round(100 * used / idle_s, 2)
    finally:
        await cluster.stop()
    topology = default_topology()
    four_each = replace(topology, regions=tuple(replace(r, edges=4) for r in topology.regions))
    cluster = await LocalCluster.start(four_each, work_dir / "twenty")
    try:
        await asyncio.sleep(1.0)
        rss = {node.name: process_memory(node.pid)["VmRSS"] for node in cluster.nodes}
        results["edges"] = len(cluster.edges)
        results["rss_total_gib"] = round(sum(rss.values()) / GiB, 2)
        results["rss_per_edge_mib"] = round(
            sum(v for name, v in rss.items() if name != "central") / len(cluster.edges) / MiB, 1
        )
    finally:
        await cluster.stop()
    results["targets"] = {
        "healthy_s": "<= 5",
        "idle_cpu_percent_of_a_core": "< 1",
        "rss_total_gib": "< 2",
    }
    return results


async def measure(idle_s: float = 10.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgekv-resources-") as tmp:
        work_dir = Path(tmp)
        memory = await edge_memory(work_dir)
        for result in memory:
            print(
                f"edge memory, {result['readers']} reader(s): read {result['read_mib']:.0f} MiB of "
                f"MISSes in {result['read_s']} s; RSS idle {result['idle_rss_mib']} MiB, peak "
                f"{result['peak_rss_mib']} MiB: growth / 64 MiB bound = "
                f"{result['growth_over_bound']} (target {result['target']})",
                flush=True,
            )
        cluster = await cluster_costs(work_dir, idle_s)
        print(
            f"cluster: healthy in {cluster['healthy_s']} s (target <= 5 s); idle "
            f"{cluster['idle_cpu_percent_of_a_core']} % of one core (target < 1 %); "
            f"{cluster['edges']} edges + central {cluster['rss_total_gib']} GiB RSS, "
            f"{cluster['rss_per_edge_mib']} MiB per edge (target < 2 GiB)",
            flush=True,
        )
    return {"edge_memory": memory, "cluster": cluster}
