"""``edgekv experiment modes``: one workload under ttl, invalidate, push and refresh-ahead.

Theory of operation: the same seeded workload (one region writes, the others
read with one cacheTtl) runs on a fresh cluster per mode, since a mode is how
an edge is started. ``ttl`` is Workers KV: copies live out their cacheTtl.
``invalidate`` has central's Watch stream drop changed keys, ``push`` has it
deliver their new values, and ``refresh-ahead`` is ``ttl`` with hot keys
refreshed in the background near the end of their cacheTtl. Side by side:
stale-read fraction, hit ratio, central reads and the value bytes that
crossed the links (fetched or pushed), from the history and the edges' counters.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekv.core.errors import UsageError
from edgekv.experiments import checkers, plots
from edgekv.experiments.base import (
    Progress,
    Record,
    RunOutcome,
    add_cache_ttl_argument,
    base_topology,
    cluster_for,
    own_writes_check,
    validate_cache_ttl,
)
from edgekv.experiments.history import Op
from edgekv.experiments.results import RunRecord, Summary, Table
from edgekv.experiments.staleness import (
    add_workload_arguments,
    reader_regions,
    validate_workload,
    workload_streams,
)
from edgekv.experiments.workload import KeySpace
from edgekv.topology import Topology

MODES = ("ttl", "invalidate", "push", "refresh-ahead")


class Modes:
    name = "modes"
    help = "the same workload under ttl, invalidate, push and refresh-ahead, side by side"
    default_duration_s = 1000.0
    default_time_scale = 100.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_cache_ttl_argument(parser)
        parser.add_argument(
            "--modes",
            default=",".join(MODES),
            metavar="M1,M2",
            help="which modes to run (default %(default)s)",
        )
        parser.add_argument(
            "--refresh-ahead",
            type=float,
            default=0.25,
            metavar="FRACTION",
            help="refresh-ahead: refresh a copy read in the last FRACTION of its cacheTtl "
            "(default %(default)s)",
        )
        add_workload_arguments(parser, read_rate=0.4, write_rate=0.05)

    def workloads(self, args: argparse.Namespace) -> int:
        return len(modes_of(args))

    def validate(self, args: argparse.Namespace) -> None:
        validate_cache_ttl(args.cache_ttl)
        validate_workload(args)
        unknown = [mode for mode in modes_of(args) if mode not in MODES]
        if unknown:
            raise UsageError(f"--modes: unknown mode {unknown[0]!r} (modes: {', '.join(MODES)})")
        if not 0 < args.refresh_ahead < 1:
            raise UsageError(f"--refresh-ahead must be between 0 and 1, got {args.refresh_ahead:g}")
        if args.state is not None:
            raise UsageError(
                "the modes experiment starts one fresh cluster per mode; it cannot use --state"
            )

    async def run(self, args: argparse.Namespace, progress: Progress, record: Record) -> RunOutcome:
        from edgekv.experiments.driver import Driver

        # Operations handed on so far: a mode's ids follow those of the modes before it.
        recorded = first_id = 0

        def record_after_the_modes_before(op: Op) -> None:
            nonlocal recorded
            op.id += first_id
            recorded += 1
            record(op)

        counters: dict[str, dict[str, dict[str, int]]] = {}
        drivers: dict[str, Any] = {}
        cluster: dict[str, Any] = {}
        readers: list[str] = []
        for mode in modes_of(args):
            topology = with_mode(base_topology(args, self), mode, args.refresh_ahead)
            async with cluster_for(args, topology) as view, Driver(view) as driver:
                args.writer_region = view.writer_region(args.writer_region)
                readers = reader_regions(args, view.regions)
                streams = workload_streams(args, mode, args.cache_ttl, readers)
                # Refused here if it cannot fit, with every mode's history kept.
                planned = driver.plan(streams, args.seed, histories_held=len(modes_of(args)))
                await driver.setup(
                    f"experiment modes {mode} {driver.t0:.0f}", [mode], KeySpace(args.keys)
                )
                progress.phase(mode, args.duration)
                first_id = recorded
                await driver.run(planned, record_after_the_modes_before, progress)
                counters[mode] = await driver.edge_counters()
                drivers[mode] = driver.stats.as_dict()
                cluster = view.describe()
        facts = {"modes": modes_of(args), "readers": readers, "edge_counters": counters}
        return facts, cluster, merge_driver_stats(drivers)

    def summarise(self, record: RunRecord, history: Iterable[Op]) -> Summary:
        ops = list(history)  # held whole: this experiment's histories are small
        options, facts = record.options, record.facts
        readers: list[str] = facts["readers"]
        duration_s = float(options["duration"])
        rows, measures = [], {}
        for mode in facts["modes"]:
            got = checkers.staleness(ops, group=mode, region=readers)
            reader_counters = [
                counts
                for node, counts in facts["edge_counters"][mode].items()
                if any(node.startswith(f"{region}-") for region in readers)
            ]
            refreshes = sum(counts["refreshes"] for counts in reader_counters)
            central_per_s = (
                (got.upstream + refreshes) / (duration_s * len(readers)) if got.reads else None
            )
            upstream_bytes = sum(counts["upstream_bytes"] for counts in reader_counters)
            # Of the stale reads: none, no figure.
            behind = checkers.percentile(got.time_behind_s, 99) if got.time_behind_s else None
            measures[mode] = {
                "stale_fraction": got.stale_fraction,
                "hit_ratio": got.hit_ratio,
                "central_per_s": central_per_s,
                "upstream_bytes": upstream_bytes,
            }
            rows.append(
                [
                    mode,
                    got.reads,
                    got.stale_fraction,
                    behind,
                    got.hit_ratio,
                    central_per_s,
                    upstream_bytes,
                    sum(counts["watch_changes"] for counts in reader_counters),
                ]
            )
        checks = [
            checkers.monotonic_reads(ops),
            own_writes_check(
                checkers.read_your_writes(ops), record, [options["writer_region"]], readers
            ),
        ]
        return Summary(
            self.name,
            modes_headline(rows),
            [
                Table(
                    f"consistency modes at cacheTtl {options['cache_ttl']} s",
                    [
                        "mode",
                        "reads",
                        "stale_fraction",
                        "stale_p99_behind_s",
                        "hit_ratio",
                        "central_reads_per_s_per_edge",
                        "upstream_value_bytes",
                        "watch_changes",
                    ],
                    rows,
                )
            ],
            [check.as_dict() for check in checks],
            measures=measures,
            notes=[
                "Central reads include refresh-ahead's background refreshes; upstream bytes "
                "count values fetched by reads and values pushed by watches."
            ],
        )

    def draw(
        self, record: RunRecord, history: Iterable[Op], summary: Summary, out: Path
    ) -> list[str]:
        rows = summary.tables[0].rows  # drawn from the summary alone
        labels = [str(row[0]) for row in rows]
        return [
            plots.bars(
                out,
                "modes.png",
                f"Consistency modes at cacheTtl {record.options['cache_ttl']} s",
                labels,
                [
                    ("stale-read fraction", [row[2] for row in rows]),
                    ("hit ratio", [row[4] for row in rows]),
                    ("central reads / s / edge", [row[5] for row in rows]),
                    ("upstream value bytes", [row[6] for row in rows]),
                ],
            )
        ]


def modes_headline(rows: list[list[Any]]) -> str:
    """The mode with the fewest stale reads, among those that measured any reads."""
    measured = [row for row in rows if row[1]]
    if not measured:
        return "no read was measured in any mode: nothing to compare"
    best = min(measured, key=lambda row: row[2])
    headline = f"{best[0]} served the fewest stale reads ({best[2]:.2%}) on the same workload"
    unmeasured = ", ".join(str(row[0]) for row in rows if not row[1])
    return headline + (f"; no read was measured in {unmeasured}" if unmeasured else "")


def modes_of(args: argparse.Namespace) -> list[str]:
    return [mode.strip() for mode in args.modes.split(",") if mode.strip()]


def with_mode(topology: Topology, mode: str, refresh_ahead: float) -> Topology:
    """Every edge in ``mode``; refresh-ahead is ttl with background refreshes."""
    edge_mode, fraction = ("ttl", refresh_ahead) if mode == "refresh-ahead" else (mode, 0.0)
    regions = tuple(
        replace(region, edge=replace(region.edge, mode=edge_mode, refresh_ahead=fraction))
        for region in topology.regions
    )
    return replace(topology, regions=regions)


def merge_driver_stats(per_mode: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"per_mode": per_mode}
    for name in ("planned", "started", "dropped", "errors"):
        merged[name] = sum(stats[name] for stats in per_mode.values())
    merged["lag_p99_s"] = max((stats["lag_p99_s"] for stats in per_mode.values()), default=0.0)
    return merged
