"""``edgekv experiment staleness``: stale reads, hit ratio and central load against cacheTtl.

Theory of operation: one setting per cacheTtl T, each in its own namespace,
all run at once on one cluster (cacheTtl is a property of the read, so the
settings cannot disturb each other). In each, one region writes (Poisson, μ
per key) and the other regions read (Poisson, λ per key, uniform or Zipf
keys). For every setting the summary puts what was measured beside docs/design.md's
predictions, summed over keys by popularity: hit ratio λT/(1+λT), stale-read
fraction H·(1 - (1 - e^(-μT))/(μT)) and central reads λ/(1+λT) per edge —
with the relative error. The trade-off curve is staleness against central load.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgekv.core.errors import UsageError
from edgekv.experiments import checkers, plots, theory
from edgekv.experiments.base import (
    Progress,
    Record,
    RunOutcome,
    add_keys_argument,
    add_rate_argument,
    add_writer_region_argument,
    base_topology,
    cluster_for,
    own_writes_check,
    parse_list,
    validate_cache_ttl,
    validate_keys,
    validate_rate,
)
from edgekv.experiments.history import KeyLogs, Op
from edgekv.experiments.results import RunRecord, Summary, Table
from edgekv.experiments.workload import KeySpace, Stream

UPSTREAM_STATUSES = ("MISS", "EXPIRED", "REVALIDATED")
# A region x time heatmap has a row per reading region: past this many it is not drawn.
HEATMAP_MAX_REGIONS = 40


def group_of(ttl_s: int) -> str:
    return f"ttl={ttl_s}"


def add_workload_arguments(
    parser: argparse.ArgumentParser, read_rate: float, write_rate: float
) -> None:
    """The read/write workload staleness and modes share."""
    add_rate_argument(parser, "read", read_rate, "in each reading region, over all keys")
    add_rate_argument(parser, "write", write_rate, "over all keys")
    add_keys_argument(parser, default=10)
    parser.add_argument(
        "--zipf",
        type=float,
        default=0.0,
        metavar="S",
        help="Zipf exponent of key popularity (0 = uniform) (default %(default)s)",
    )
    add_writer_region_argument(parser)
    parser.add_argument(
        "--reader-regions",
        default=None,
        metavar="R1,R2",
        help="regions that read (default: every other region)",
    )


def validate_workload(args: argparse.Namespace) -> None:
    validate_rate(args.read_rate, "--read-rate")
    validate_rate(args.write_rate, "--write-rate")
    validate_keys(args)
    if args.zipf < 0:
        raise UsageError(f"--zipf must be 0 (uniform) or more, got {args.zipf:g}")


def reader_regions(args: argparse.Namespace, regions: list[str]) -> list[str]:
    if args.reader_regions:
        chosen = [name.strip() for name in args.reader_regions.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in regions]
        if unknown:
            raise UsageError(
                f"--reader-regions: no region {unknown[0]!r} (regions: {', '.join(regions)})"
            )
        return chosen
    return [region for region in regions if region != args.writer_region]


def workload_streams(
    args: argparse.Namespace, group: str, ttl_s: int, readers: list[str]
) -> list[Stream]:
    keys = KeySpace(args.keys, args.zipf)
    return [
        Stream(
            "write",
            args.writer_region,
            args.write_rate,
            keys,
            group,
            0,
            args.duration,
            value_bytes=64,
        ),
        *(
            Stream(
                "read",
                region,
                args.read_rate,
                keys,
                group,
                0,
                args.duration,
                sessions=4,
                cache_ttl_s=ttl_s,
            )
            for region in readers
        ),
    ]


def prediction(options: dict[str, Any], ttl_s: float) -> theory.Prediction:
    weights = theory.key_weights(int(options["keys"]), float(options["zipf"]))
    return theory.predict_keys(
        [float(options["read_rate"]) * weight for weight in weights],
        [float(options["write_rate"]) * weight for weight in weights],
        ttl_s,
    )


def measured(stale: checkers.Staleness, readers: list[str], duration_s: float) -> dict[str, Any]:
    """A setting's measured hit ratio, stale fraction and central reads per edge per second."""
    return {
        "reads": stale.reads,
        # None, not 0, when no read was measured: a rate of nothing is unknown.
        "hit_ratio": stale.hit_ratio,
        "stale_fraction": stale.stale_fraction,
        "upstream_per_s": stale.upstream / (duration_s * len(readers)) if stale.reads else None,
        # Every stale read's, or past checkers.SAMPLE_LIMIT of them a uniform sample.
        "time_behind_s": list(stale.time_behind_s),
        "revisions_behind": list(stale.revisions_behind),
    }


def named(regions: list[str]) -> str:
    """The regions by name, or past a dozen how many and the first and last."""
    if len(regions) <= 12:
        return ", ".join(regions)
    return f"{len(regions)} regions ({regions[0]} ... {regions[-1]})"


def relative_error(measured: float | None, predicted: float) -> float | None:
    return None if measured is None else theory.relative_error(measured, predicted)


def staleness_headline(rows: list[list[Any]]) -> str:
    """The worst gap to the theory over the settings that measured something."""
    measured = [row for row in rows if row[1]]
    unmeasured = ", ".join(f"{row[0]:g} s" for row in rows if not row[1])
    if not measured:
        return "no read was measured at any cacheTtl: nothing to compare with the theory"
    worst_hit = max(row[4] for row in measured)
    worst_stale = max(row[7] for row in measured)
    headline = (
        f"measured within {worst_hit:.1%} of the predicted hit ratio and {worst_stale:.1%} "
        f"of the predicted stale-read fraction across {len(measured)} cacheTtl settings"
    )
    return headline + (f"; no read was measured at cacheTtl {unmeasured}" if unmeasured else "")


class Staleness:
    name = "staleness"
    help = "a sweep over cacheTtl: stale reads, hit ratio and central load beside the theory"
    default_duration_s = 3000.0
    default_time_scale = 100.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--cache-ttls",
            default="30,60,120,300",
            metavar="T1,T2",
            help="the cacheTtl settings, in seconds (default %(default)s)",
        )
        add_workload_arguments(parser, read_rate=0.4, write_rate=0.05)

    def workloads(self, args: argparse.Namespace) -> int:
        return 1

    def validate(self, args: argparse.Namespace) -> None:
        for ttl_s in parse_list(args.cache_ttls, "--cache-ttls", int):
            validate_cache_ttl(ttl_s, "--cache-ttls")
        validate_workload(args)

    async def run(self, args: argparse.Namespace, progress: Progress, record: Record) -> RunOutcome:
        from edgekv.experiments.driver import Driver

        ttls: list[int] = parse_list(args.cache_ttls, "--cache-ttls", int)
        async with cluster_for(args, base_topology(args, self)) as view, Driver(view) as driver:
            args.writer_region = view.writer_region(args.writer_region)
            readers = reader_regions(args, view.regions)
            streams = [
                stream
                for ttl_s in ttls
                for stream in workload_streams(args, group_of(ttl_s), ttl_s, readers)
            ]
            groups = [group_of(ttl_s) for ttl_s in ttls]
            # Refused here if it cannot fit; its summary streams the history.
            planned = driver.plan(streams, args.seed, histories_held=0)
            await driver.setup(f"experiment staleness {driver.t0:.0f}", groups, KeySpace(args.keys))
            progress.phase("staleness", args.duration)
            await driver.run(planned, record, progress)
            facts = {
                "readers": readers,
                "cache_ttls": ttls,
                "edge_counters": await driver.edge_counters(),
            }
            return facts, view.describe(), driver.stats.as_dict()

    def summarise(self, record: RunRecord, history: Iterable[Op]) -> Summary:
        """One pass over the history, which is never held: a simulated day is millions of
        operations. Per setting a staleness tally; monotonic reads; read-your-writes."""
        options, facts = record.options, record.facts
        duration_s = float(options["duration"])
        readers = facts["readers"]
        logs = KeyLogs()
        tallies = {
            group_of(ttl_s): checkers.StalenessTally(logs, group=group_of(ttl_s), region=readers)
            for ttl_s in facts["cache_ttls"]
        }
        monotonic, own_writes = checkers.MonotonicReads(), checkers.ReadYourWrites()
        for op in history:
            logs.add(op)
            tally = tallies.get(op.group)
            if tally is not None:
                tally.add(op)
            monotonic.add(op)
            own_writes.add(op)
        rows, measures = [], {}
        for ttl_s in facts["cache_ttls"]:
            got = measured(tallies[group_of(ttl_s)].result(), readers, duration_s)
            want = prediction(options, ttl_s)
            measures[group_of(ttl_s)] = {**got, "predicted": asdict(want)}
            rows.append(
                [
                    ttl_s,
                    got["reads"],
                    got["hit_ratio"],
                    want.hit_ratio,
                    relative_error(got["hit_ratio"], want.hit_ratio),
                    got["stale_fraction"],
                    want.stale_fraction,
                    relative_error(got["stale_fraction"], want.stale_fraction),
                    got["upstream_per_s"],
                    want.upstream_per_s,
                ]
            )
        checks = [
            monotonic.result(),
            own_writes_check(
                own_writes.result(), record, [options["writer_region"]], facts["readers"]
            ),
        ]
        return Summary(
            self.name,
            staleness_headline(rows),
            [
                Table(
                    "stale reads, hit ratio and central load per cacheTtl",
                    [
                        "cacheTtl_s",
                        "reads",
                        "hit_ratio",
                        "theory_hit",
                        "hit_rel_err",
                        "stale_fraction",
                        "theory_stale",
                        "stale_rel_err",
                        "central_reads_per_s_per_edge",
                        "theory_central",
                    ],
                    rows,
                )
            ],
            [check.as_dict() for check in checks],
            measures=measures,
            notes=[
                f"Readers: {named(facts['readers'])}; writer: {options['writer_region']}. "
                "A read is stale when it returned an older revision than central had committed "
                "for its key when the read was invoked.",
                *(
                    [f"No region x time heatmap: it draws at most {HEATMAP_MAX_REGIONS} regions."]
                    if len(facts["readers"]) > HEATMAP_MAX_REGIONS
                    else []
                ),
            ],
        )

    def draw(
        self, record: RunRecord, history: Iterable[Op], summary: Summary, out: Path
    ) -> list[str]:
        options, facts = record.options, record.facts
        rows = summary.tables[0].rows
        ttls = [float(row[0]) for row in rows]
        low, high = min(ttls), max(ttls)
        grid = [low + (high - low) * step / 100 for step in range(101)] if high > low else ttls
        curve = [prediction(options, ttl_s) for ttl_s in grid]
        names = [
            plots.measured_vs_predicted(
                out,
                "staleness-vs-ttl.png",
                "Measured (points) against theory (dashed) per cacheTtl",
                "cacheTtl (s)",
                [
                    (
                        "hit ratio",
                        ttls,
                        [row[2] for row in rows],
                        ("theory", grid, [p.hit_ratio for p in curve]),
                    ),
                    (
                        "stale-read fraction",
                        ttls,
                        [row[5] for row in rows],
                        ("theory", grid, [p.stale_fraction for p in curve]),
                    ),
                    (
                        "central reads / s / edge",
                        ttls,
                        [row[8] for row in rows],
                        ("theory", grid, [p.upstream_per_s for p in curve]),
                    ),
                ],
            ),
            plots.tradeoff(
                out,
                "staleness-tradeoff.png",
                "What a longer cacheTtl buys and costs",
                [(f"T={row[0]:g}", row[8], row[5]) for row in rows],
                ([p.upstream_per_s for p in curve], [p.stale_fraction for p in curve]),
            ),
            plots.cdf_figure(
                out,
                "staleness-time-behind-cdf.png",
                "How far behind a stale read was",
                {
                    f"cacheTtl {ttl:g}": summary.measures[group_of(int(ttl))]["time_behind_s"]
                    for ttl in ttls
                },
                xlabel="seconds since the returned version was superseded",
            ),
        ]
        if len(facts["readers"]) <= HEATMAP_MAX_REGIONS:
            names.append(heatmap_of_revisions_behind(history, record, int(ttls[-1]), out))
        return names


def heatmap_of_revisions_behind(
    history: Iterable[Op], record: RunRecord, ttl_s: int, out: Path
) -> str:
    """Region x time: how many writes the stalest read of each bin missed, at cacheTtl
    ``ttl_s``. One pass: each read is measured against the writes handed on before it."""
    options, facts = record.options, record.facts
    group = group_of(ttl_s)
    logs = KeyLogs()

    def reads() -> Iterator[Op]:
        for op in history:
            logs.add(op)
            if op.is_read and op.ok and op.group == group and op.central_revision is not None:
                yield op

    def behind(op: Op) -> int:  # called as each read is drawn, with the logs as of then
        assert op.revision is not None and op.central_revision is not None
        return logs.get(op.group, op.key).between(op.revision, op.central_revision)

    bin_s = float(options["duration"]) / plots.HEATMAP_BINS
    heatmap = plots.Heatmap(
        f"Revisions behind central of the stalest read in each {bin_s:.3g} s "
        f"(cacheTtl {ttl_s:g} s)",
        reads(),
        facts["readers"],
        float(options["duration"]),
    )
    figure = plots.count_figure(heatmap, behind, "revisions behind central", per_bin="max")
    return plots.save(figure, out, "staleness-heatmap.png")
