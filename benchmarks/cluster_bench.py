"""What a local cluster costs: time to healthy, idle CPU, and memory with 20 edges.

Run::

    .venv/bin/python -m benchmarks.cluster_bench [--idle-s 10] [--out FILE.json]

Theory of operation: the cluster is started with the same machinery as
``edgekv up`` (:class:`edgekv.launcher.LocalCluster`). It measures (1) the
real time from start until every node of the default five-region topology
answers its health check, (2) the CPU all nodes use together while idle,
from ``/proc/PID/stat`` before and after ``--idle-s`` seconds, as a
percentage of one core, and (3) the resident memory (``VmRSS``) of a
topology with four edges in each region — 20 edges and central — summed.
Targets (issue "A cluster in one command"): healthy within 5 s, idle under
1 % of a core, 20 edges under 2 GiB in total.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.harness import process_cpu_s, process_memory
from edgekv.launcher import LocalCluster
from edgekv.topology import default_topology

GiB = 1024**3


async def measure(idle_s: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgekv-cluster-bench-") as tmp:
        started = time.monotonic()
        cluster = await LocalCluster.start(default_topology(), Path(tmp) / "five")
        results["healthy_s"] = time.monotonic() - started
        try:
            await asyncio.sleep(1.0)  # let start-up work settle
            pids = [node.pid for node in cluster.nodes]
            before = sum(process_cpu_s(pid) for pid in pids)
            await asyncio.sleep(idle_s)
            used = sum(process_cpu_s(pid) for pid in pids) - before
            results["idle_cpu_percent_of_a_core"] = 100 * used / idle_s
        finally:
            await cluster.stop()

        four_each = default_topology()
        four_each = replace(
            four_each, regions=tuple(replace(r, edges=4) for r in four_each.regions)
        )
        cluster = await LocalCluster.start(four_each, Path(tmp) / "twenty")
        try:
            await asyncio.sleep(1.0)
            rss = {node.name: process_memory(node.pid)["VmRSS"] for node in cluster.nodes}
            results["edges"] = len(cluster.edges)
            results["rss_total_bytes"] = sum(rss.values())
            results["rss_per_edge_bytes"] = sum(
                v for name, v in rss.items() if name != "central"
            ) / len(cluster.edges)
        finally:
            await cluster.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = asyncio.run(measure(args.idle_s))
    print(f"healthy in {results['healthy_s']:.2f} s (target <= 5 s)")
    print(
        f"idle: {results['idle_cpu_percent_of_a_core']:.2f} % of one core for the whole cluster "
        "(target < 1 %)"
    )
    print(
        f"{results['edges']} edges + central: {results['rss_total_bytes'] / GiB:.2f} GiB RSS in "
        f"total, {results['rss_per_edge_bytes'] / 2**20:.0f} MiB per edge (target < 2 GiB)"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
