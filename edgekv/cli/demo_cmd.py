"""``edgekv demo``: eventual consistency, watched happening — the README's main job.

Theory of operation: start the default topology (central in us-east, one edge
in each of five regions) with a time scale, so a 60 s cacheTtl passes in a
few real seconds. Create a namespace, write a key at the us-east edge, read it
in every region (filling their caches), overwrite it at us-east, then read
every region again and again, showing a live table, until every region serves
the new value. Each region's time to visibility (simulated seconds after the
write was acknowledged) is printed against the bound Workers KV promises —
the reader's cacheTtl plus the link's RTT — and the exit code says whether
every region kept it. The cluster is stopped at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import edgekv
from edgekv.cli.cluster_cmd import print_table
from edgekv.cli.common import Subcommands
from edgekv.clock import ScaledClock
from edgekv.launcher import LocalCluster
from edgekv.topology import default_topology

CACHE_TTL_S = 60
WRITER_REGION = "us-east"
POLL_REAL_S = 0.05


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="start a five-region cluster and watch a write become visible everywhere",
        description="Start the default cluster with a time scale, write a key in one region "
        "and watch every other region see it once its cached copy expires.",
        epilog="example: edgekv demo --time-scale 10",
    )
    parser.add_argument(
        "--time-scale", type=float, default=12.0, metavar="S", help="default 12: 60 s in 5 s"
    )
    parser.set_defaults(run=run)


@dataclass
class RegionView:
    region: str
    rtt_ms: float
    client: edgekv.Client
    value: str | None = None
    status: str | None = None
    age_s: float = 0.0
    visible_after_s: float | None = None


async def run(args: argparse.Namespace) -> int:
    topology = default_topology().with_time_scale(args.time_scale)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgekv-demo-") as data_dir:
        cluster = await LocalCluster.start(topology, Path(data_dir))
        try:
            print(
                f"started {len(cluster.nodes)} nodes in {time.monotonic() - started:.1f} s "
                f"(time runs {topology.time_scale:g}x faster than real time)"
            )
            print_table(cluster.state())
            clock = ScaledClock(topology.time_scale, cluster.time_anchor)
            ok = await _show(cluster, clock)
        finally:
            await cluster.stop()
    print(f"cluster stopped; the demo took {time.monotonic() - started:.1f} s of real time")
    return 0 if ok else 1


async def _show(cluster: LocalCluster, clock: ScaledClock) -> bool:
    async with edgekv.Client(central=cluster.central_address) as admin:
        namespace = await admin.create_namespace(f"demo-{int(time.time())}")
    views = [
        RegionView(node.region, node.rtt_ms, edgekv.Client(edge=node.address))
        for node in cluster.edges
    ]
    writer = next(view for view in views if view.region == WRITER_REGION)
    try:
        kv_of = {view.region: view.client.namespace(namespace.id) for view in views}
        await kv_of[WRITER_REGION].put("greeting", "hello v1")
        print(f'\nwrote greeting = "hello v1" at {WRITER_REGION}; reading it in every region:')
        await _read_all(views, kv_of, clock, None)
        _print_table(views, clock, None)
        await clock.sleep(2)  # one write per second per key
        written = await kv_of[WRITER_REGION].put("greeting", "hello v2")
        print(
            f'\noverwrote greeting = "hello v2" at {writer.region} (revision {written.revision}); '
            "other regions serve their cached copy until it is older than 60 s:"
        )
        deadline_s = written.commit_time + CACHE_TTL_S + 10
        interactive = sys.stdout.isatty()
        last_print = 0.0
        while any(view.visible_after_s is None for view in views):
            await _read_all(views, kv_of, clock, written.commit_time)
            now = clock.now()
            converged = all(view.visible_after_s is not None for view in views)
            if interactive or converged or now - last_print >= 10:
                redraw = interactive and last_print > 0
                _print_table(views, clock, written.commit_time, redraw=redraw)
                last_print = now
            if now > deadline_s:
                break
            await clock.sleep(POLL_REAL_S * clock.scale)
    finally:
        for view in views:
            await view.client.close()
    return _verdict(views)


async def _read_all(
    views: list[RegionView],
    kv_of: dict[str, edgekv.KVNamespace],
    clock: ScaledClock,
    written_at: float | None,
) -> None:
    """Read the key in every region that has not seen the overwrite yet."""
    for view in views:
        if view.visible_after_s is not None:
            continue
        read = await kv_of[view.region].get_with_metadata("greeting")
        view.value, view.status, view.age_s = read.value, read.cache_status, read.info.age_s
        if written_at is not None and view.value == "hello v2":
            view.visible_after_s = max(0.0, clock.now() - written_at)


def _print_table(
    views: list[RegionView], clock: ScaledClock, written_at: float | None, redraw: bool = False
) -> None:
    if redraw:
        sys.stdout.write(f"\x1b[{len(views) + 1}F")
    since = (
        "" if written_at is None else f"   t = {clock.now() - written_at:5.1f} s after the write"
    )
    print(f"  {'region':<14} {'value':<10} {'status':<12} {'age s':>6} {'RTT ms':>7}{since}")
    for view in views:
        print(
            f"  {view.region:<14} {view.value or '-':<10} {view.status or '-':<12} "
            f"{view.age_s:>6.1f} {view.rtt_ms:>7g}"
        )
    sys.stdout.flush()


def _verdict(views: list[RegionView]) -> bool:
    print("\ntime to visibility of the overwrite (simulated seconds) against the bound")
    print("(Workers KV: visible elsewhere within the reader's cacheTtl of 60 s, plus the RTT):")
    ok = True
    for view in views:
        bound_s = CACHE_TTL_S + view.rtt_ms / 1000
        seen = view.visible_after_s
        kept = seen is not None and seen <= bound_s
        ok = ok and kept
        shown = "never" if seen is None else f"{seen:5.1f} s"
        print(f"  {view.region:<14} {shown:>8}  bound {bound_s:6.2f} s  {'ok' if kept else 'LATE'}")
    print("every region converged within the bound" if ok else "some region missed the bound")
    return ok
