"""``edgekv experiment partition``: cut one region off central, then heal it.

Theory of operation: every region reads and writes through its edge while,
between ``--cut-at`` and ``--heal-at``, the chosen region's link to central is
partitioned (EdgeControl.SetLink, the same switch an operator has). While cut,
its edge serves copies past their cacheTtl as STALE for up to the edges'
maximum staleness and fails reads with UNAVAILABLE after that; its writes fail
definitely (they never left the edge). After the heal the summary says how
long the region took to serve fresh reads and accept writes again, and the
last check reads every key at central: nothing acknowledged may be missing.

When the cut and the heal happened is bracketed, not guessed. A switch is
*requested* when the driver sends SetLink and *in force* once every edge of
the region has answered it; the edge changes its link in between, at a moment
the driver cannot see, and an operation in flight meanwhile may go either
way. So an operation counts as *during* the partition only if it was invoked
after the cut was in force and completed before the heal was requested — the
edge knew of the cut for all of it — *before* only if it completed before the
cut was requested, *after* only if it was invoked once the heal was in force,
and anything else is counted apart, as *crossing* a switch. (Stamping each
operation with the times the switch was scheduled or acknowledged, as this
once did, put writes that reached a healed link in "during" whenever the
driver was slow to hear SetLink's answer.)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekv.control import LinkSettings, NodeControl
from edgekv.core.errors import UsageError
from edgekv.experiments import checkers, plots
from edgekv.experiments.base import (
    Progress,
    Record,
    RunOutcome,
    add_cache_ttl_argument,
    add_keys_argument,
    add_rate_argument,
    base_topology,
    cluster_for,
    own_writes_check,
    validate_cache_ttl,
    validate_keys,
    validate_rate,
)
from edgekv.experiments.checkers import CheckResult, Violation
from edgekv.experiments.cluster import ClusterView
from edgekv.experiments.history import Op
from edgekv.experiments.results import RunRecord, Summary, Table
from edgekv.experiments.workload import KeySpace, Stream
from edgekv.topology import Topology

GROUP = "partition"
PHASES = ("before", "during", "after", "crossing")


@dataclass(frozen=True, slots=True)
class Switch:
    """When a link change was requested and when every edge had confirmed it (simulated s)."""

    requested_s: float
    in_force_s: float


@dataclass(frozen=True, slots=True)
class Window:
    """The partition: its cut and its heal."""

    cut: Switch
    heal: Switch

    @classmethod
    def of(cls, facts: dict[str, Any]) -> Window:
        """From run.json's facts; runs recorded before the bracket have one time per switch."""
        cut_s, heal_s = float(facts["cut_s"]), float(facts["heal_s"])
        return cls(
            Switch(float(facts.get("cut_requested_s", cut_s)), cut_s),
            Switch(float(facts.get("heal_requested_s", heal_s)), heal_s),
        )

    @property
    def length_s(self) -> float:
        return self.heal.requested_s - self.cut.in_force_s


class Partition:
    name = "partition"
    help = "cut one region off central mid-run: STALE serves, UNAVAILABLE errors, recovery"
    default_duration_s = 1800.0
    default_time_scale = 60.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--region",
            default="eu-west",
            metavar="REGION",
            help="the region to cut off (default %(default)s)",
        )
        parser.add_argument(
            "--cut-at",
            type=float,
            default=None,
            metavar="S",
            help="simulated second of the cut (default: a quarter of the duration)",
        )
        parser.add_argument(
            "--heal-at",
            type=float,
            default=None,
            metavar="S",
            help="simulated second of the heal (default: 60%% of the duration)",
        )
        add_cache_ttl_argument(parser)
        parser.add_argument(
            "--max-stale",
            type=float,
            default=300.0,
            metavar="S",
            help="a fresh cluster's edges serve copies up to S seconds past their cacheTtl "
            "(default %(default)s)",
        )
        add_rate_argument(parser, "read", 0.5, "in each region")
        add_rate_argument(parser, "write", 0.05, "in each region")
        add_keys_argument(parser, default=10)

    def workloads(self, args: argparse.Namespace) -> int:
        return 1

    def validate(self, args: argparse.Namespace) -> None:
        validate_cache_ttl(args.cache_ttl)
        validate_rate(args.read_rate, "--read-rate")
        validate_rate(args.write_rate, "--write-rate")
        validate_keys(args)
        if args.max_stale < 0:
            raise UsageError(f"--max-stale must be 0 or more, got {args.max_stale:g}")
        cut_s, heal_s = window_of(args)
        if not 0 < cut_s < heal_s < args.duration:
            raise UsageError(
                f"the partition must fit in the run: 0 < --cut-at ({cut_s:g}) < --heal-at "
                f"({heal_s:g}) < --duration ({args.duration:g})"
            )

    async def run(self, args: argparse.Namespace, progress: Progress, record: Record) -> RunOutcome:
        from edgekv.experiments.driver import Driver

        cut_s, heal_s = window_of(args)
        keys = KeySpace(args.keys)
        topology = with_max_stale(base_topology(args, self), args.max_stale)
        async with cluster_for(args, topology) as view, Driver(view) as driver:
            view.edges_in(args.region)
            streams = [
                stream
                for region in view.regions
                for stream in (
                    Stream(
                        "read",
                        region,
                        args.read_rate,
                        keys,
                        GROUP,
                        0,
                        args.duration,
                        sessions=2,
                        cache_ttl_s=args.cache_ttl,
                    ),
                    Stream(
                        "write",
                        region,
                        args.write_rate,
                        keys,
                        GROUP,
                        0,
                        args.duration,
                        value_bytes=64,
                    ),
                )
            ]
            planned = driver.plan(streams, args.seed)  # refused here if it cannot fit
            await driver.setup(f"experiment partition {driver.t0:.0f}", [GROUP], keys)
            progress.phase("partition", args.duration)
            async with LinkSwitch(view, args.region, driver.now_s) as switch:
                try:
                    await driver.run(
                        planned,
                        record,
                        progress,
                        at_time=[
                            (cut_s, lambda: switch.set("cut", partitioned=True)),
                            (heal_s, lambda: switch.set("heal", partitioned=False)),
                        ],
                    )
                finally:
                    await switch.set("heal", partitioned=False)
                events = switch.events
            facts = {
                "region": args.region,
                "regions": view.regions,
                **events,
                "central_revisions": (await driver.central_revisions())[GROUP],
                "edge_counters": await driver.edge_counters(),
            }
            return facts, view.describe(), driver.stats.as_dict()

    def summarise(self, record: RunRecord, history: Iterable[Op]) -> Summary:
        ops = list(history)  # held whole: this experiment's histories are small
        facts = record.facts
        region, window = facts["region"], Window.of(facts)
        rows = [phase_row(ops, region, phase, window) for phase in PHASES]
        heal_s = window.heal.in_force_s
        read_recovery = first_after(
            ops, heal_s, region, lambda op: op.is_read and op.cache_status != "STALE"
        )
        write_recovery = first_after(ops, heal_s, region, lambda op: op.is_write)
        lost = nothing_lost(ops, facts["central_revisions"])
        checks = [
            lost,
            checkers.monotonic_reads(ops),
            own_writes_check(
                checkers.read_your_writes(ops), record, facts["regions"], facts["regions"]
            ),
        ]
        reads_after = any(
            op.is_read and op.region == region and op.invoke_s >= heal_s for op in ops
        )
        return Summary(
            self.name,
            partition_headline(region, window, rows[1], read_recovery, reads_after),
            [
                Table(
                    f"{region} before, during and after the partition",
                    [
                        "phase",
                        "reads",
                        "fresh_ok",
                        "stale_served",
                        "reads_failed",
                        "writes_ok",
                        "writes_failed",
                        "writes_unknown",
                    ],
                    rows,
                ),
                Table(
                    "recovery after the heal (simulated s)",
                    ["region", "partition_s", "fresh_read_after_s", "write_after_s"],
                    [[region, window.length_s, read_recovery, write_recovery]],
                ),
            ],
            [check.as_dict() for check in checks],
            notes=[
                "During: invoked after every edge of the region had confirmed the cut and "
                "completed before the heal was requested. Crossing: operations in flight "
                "while the link was being switched, which may rightly go either way. "
                "Recovery is timed from when the heal was in force."
            ],
            measures={
                "phases": {row[0]: row[1:] for row in rows},
                "read_recovery_s": read_recovery,
                "write_recovery_s": write_recovery,
            },
        )

    def draw(
        self, record: RunRecord, history: Iterable[Op], summary: Summary, out: Path
    ) -> list[str]:
        ops = list(history)
        facts = record.facts
        regions = facts["regions"]
        window = Window.of(facts)
        reads = [op for op in ops if op.is_read]
        heatmap = plots.Heatmap(
            f"What each region's reads returned; {facts['region']} cut off from central",
            reads,
            regions,
            float(record.options["duration"]),
            events=[(window.cut.in_force_s, "cut"), (window.heal.in_force_s, "heal")],
        )
        figure = plots.category_figure(heatmap, read_category, READ_CATEGORIES)
        return [plots.save(figure, out, "partition-heatmap.png")]


# How a read ended, for the heatmap: an index into READ_CATEGORIES.
READ_CATEGORIES: tuple[plots.Category, ...] = (
    ("fresh", "#4c9f70"),
    ("STALE", "#f2a541"),
    ("failed", "#d1495b"),
)


def read_category(op: Op) -> int:
    if not op.ok:
        return 2
    return 1 if op.cache_status == "STALE" else 0


class LinkSwitch:
    """Partitions or heals every edge of one region, bracketing when it happened.

    The control channels are opened, and the links' other settings read,
    before the run, so that a switch is one SetLink per edge sent at once and
    its bracket is as narrow as the machine allows.
    """

    def __init__(self, view: ClusterView, region: str, now_s: Callable[[], float]) -> None:
        self._targets = [view.target(edge.address) for edge in view.edges_in(region)]
        self._now_s = now_s
        self._controls: list[NodeControl] = []
        self._links: list[LinkSettings] = []
        # "cut_requested_s", "cut_s" (in force), "heal_requested_s", "heal_s" (in force).
        self.events: dict[str, float] = {}

    async def __aenter__(self) -> LinkSwitch:
        try:
            for target in self._targets:
                control = NodeControl(target)
                self._controls.append(control)
                self._links.append(await control.link())
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for control in self._controls:
            await control.close()

    async def set(self, name: str, partitioned: bool) -> None:
        """Switch every edge's link; the first time ``name`` happens, record its bracket."""
        import asyncio

        requested_s = self._now_s()
        await asyncio.gather(
            *(
                control.set_link(replace(link, partitioned=partitioned))
                for control, link in zip(self._controls, self._links, strict=True)
            )
        )
        self.events.setdefault(f"{name}_requested_s", requested_s)
        self.events.setdefault(f"{name}_s", self._now_s())


def window_of(args: argparse.Namespace) -> tuple[float, float]:
    cut_s = args.duration * 0.25 if args.cut_at is None else args.cut_at
    heal_s = args.duration * 0.6 if args.heal_at is None else args.heal_at
    return cut_s, heal_s


def with_max_stale(topology: Topology, max_stale_s: float) -> Topology:
    regions = tuple(
        replace(region, edge=replace(region.edge, max_stale_s=max_stale_s))
        for region in topology.regions
    )
    return replace(topology, regions=regions)


def phase_of(op: Op, window: Window) -> str:
    """before, during, after, or crossing a switch (see the module's docstring)."""
    if op.complete_s <= window.cut.requested_s:
        return "before"
    if op.invoke_s >= window.cut.in_force_s and op.complete_s <= window.heal.requested_s:
        return "during"
    if op.invoke_s >= window.heal.in_force_s:
        return "after"
    return "crossing"


def phase_row(ops: list[Op], region: str, phase: str, window: Window) -> list[Any]:
    mine = [
        op
        for op in ops
        if op.region == region and op.invoke_s >= 0 and phase_of(op, window) == phase
    ]
    reads = [op for op in mine if op.is_read]
    writes = [op for op in mine if op.is_write]
    return [
        phase,
        len(reads),
        sum(op.ok and op.cache_status != "STALE" for op in reads),
        sum(op.ok and op.cache_status == "STALE" for op in reads),
        sum(not op.ok for op in reads),
        sum(op.outcome == "ok" for op in writes),
        sum(op.outcome == "failed" for op in writes),
        sum(op.outcome == "unknown" for op in writes),
    ]


def partition_headline(
    region: str, window: Window, during: list[Any], read_recovery: float | None, reads_after: bool
) -> str:
    """What the cut-off region did during the cut and after the heal — or that nobody asked."""
    cut = f"cut off for {window.length_s:.0f} s, {region} "
    if during[1]:
        cut += f"served {during[3]} STALE reads and failed {during[4]}"
    else:
        cut += "was not read while it was cut off"
    if not reads_after:
        return f"{cut}; it was not read after the heal"
    return f"{cut}; it served fresh reads again {fmt_s(read_recovery)} after the heal"


def first_after(ops: list[Op], heal_s: float, region: str, wanted: Any) -> float | None:
    """Seconds from the heal to the completion of the first ok operation ``wanted`` picks."""
    done = [
        op.complete_s
        for op in ops
        if op.region == region and op.ok and op.invoke_s >= heal_s and wanted(op)
    ]
    return min(done) - heal_s if done else None


def nothing_lost(ops: list[Op], held: dict[str, int]) -> CheckResult:
    """Every acknowledged write is at central, or was overwritten by a newer one."""
    violations = []
    writes = [op for op in ops if op.is_write and op.ok and op.revision is not None]
    for op in writes:
        if held.get(op.key, 0) < (op.revision or 0):
            violations.append(
                Violation(
                    "nothing-lost",
                    f"write of {op.key} acknowledged at revision {op.revision} in {op.region} is "
                    f"missing: central holds revision {held.get(op.key, 0)}",
                    (op.id,),
                )
            )
    return CheckResult("nothing-lost", len(writes), tuple(violations))


def fmt_s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"
