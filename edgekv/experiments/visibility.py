"""``edgekv experiment visibility``: how long until a write is seen in each region.

Theory of operation: one region writes a few keys (Poisson writes); every
region, the writer's included, reads them (Poisson polls, cacheTtl T). A
write's time to visibility in a region is when the first read invoked after
its commit returned it (or something newer) completed. Elsewhere the write
shows up at the next miss, which ends the current cache cycle, so its time to
visibility is the residual life of a cycle of T plus the wait for a read
(theory.visibility_quantile); at the writer it is just the wait for the next
read, since the writing edge caches its own write. Writes stop a cacheTtl
before the end, so convergence can be checked as well as Workers KV's
promise, read-your-writes at the writer and monotonic reads.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

from edgekv.core.errors import UsageError
from edgekv.experiments import checkers, plots, theory
from edgekv.experiments.base import (
    Progress,
    Record,
    RunOutcome,
    add_cache_ttl_argument,
    add_keys_argument,
    add_rate_argument,
    add_writer_region_argument,
    allowance_s,
    base_topology,
    cluster_for,
    own_writes_check,
    rtt_s,
    validate_cache_ttl,
    validate_keys,
    validate_rate,
)
from edgekv.experiments.driver import Driver
from edgekv.experiments.history import Op
from edgekv.experiments.results import RunRecord, Summary, Table
from edgekv.experiments.workload import KeySpace, Stream

GROUP = "visibility"
SETTLE_EXTRA_S = 10.0


class Visibility:
    name = "visibility"
    help = "writes in one region, polls in every region: time to visibility against the bound"
    default_duration_s = 1200.0
    default_time_scale = 60.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_cache_ttl_argument(parser)
        add_writer_region_argument(parser)
        add_keys_argument(parser, default=2)
        add_rate_argument(parser, "write", 1 / 30, "over all keys", shown_default="1/30")
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=2.0,
            metavar="S",
            help="mean simulated seconds between polls of a key in a region (default 2)",
        )

    def workloads(self, args: argparse.Namespace) -> int:
        return 1

    def validate(self, args: argparse.Namespace) -> None:
        validate_cache_ttl(args.cache_ttl)
        validate_rate(args.write_rate, "--write-rate")
        validate_rate(1 / args.poll_interval if args.poll_interval > 0 else 0, "1/--poll-interval")
        validate_keys(args)
        if args.duration <= settle_s(args.cache_ttl) * 2:
            raise UsageError(
                f"--duration {args.duration:g} is too short: writes stop "
                f"{settle_s(args.cache_ttl):g} s before the end, so give at least "
                f"{2 * settle_s(args.cache_ttl):g} s"
            )

    async def run(self, args: argparse.Namespace, progress: Progress, record: Record) -> RunOutcome:
        keys = KeySpace(args.keys)
        async with cluster_for(args, base_topology(args, self)) as view, Driver(view) as driver:
            args.writer_region = view.writer_region(args.writer_region)
            writes_end_s = args.duration - settle_s(args.cache_ttl)
            streams = [
                Stream("write", args.writer_region, args.write_rate, keys, GROUP, 0, writes_end_s),
                *(
                    Stream(
                        "read",
                        region,
                        args.keys / args.poll_interval,
                        keys,
                        GROUP,
                        0,
                        args.duration,
                        cache_ttl_s=args.cache_ttl,
                    )
                    for region in view.regions
                ),
            ]
            planned = driver.plan(streams, args.seed)  # refused here if it cannot fit
            await driver.setup(f"experiment visibility {driver.t0:.0f}", [GROUP], keys)
            progress.phase("visibility", args.duration)
            await driver.run(planned, record, progress)
            facts = {"writes_end_s": writes_end_s, "regions": view.regions}
            return facts, view.describe(), driver.stats.as_dict()

    def summarise(self, record: RunRecord, history: Iterable[Op]) -> Summary:
        ops = list(history)  # held whole: this experiment's histories are small
        options = record.options
        regions: list[str] = record.facts["regions"]
        ttl_s = float(options["cache_ttl"])
        poll_rate = 1 / float(options["poll_interval"])
        allowance = allowance_s(record)
        rtts = rtt_s(record)
        per_region = checkers.summary_of_visibility(checkers.visibility(ops, regions))
        rows = []
        for region in regions:
            seen = per_region.get(region, {})
            writer = region == options["writer_region"]
            rows.append(
                [
                    region,
                    "writer" if writer else "reader",
                    rtts.get(region, 0) * 1000,
                    seen.get("writes"),
                    seen.get("seen"),
                    seen.get("p50_s"),
                    seen.get("p99_s"),
                    seen.get("max_s"),
                    predicted_quantile(writer, poll_rate, ttl_s, 0.5, rtts.get(region, 0)),
                    predicted_quantile(writer, poll_rate, ttl_s, 0.99, rtts.get(region, 0)),
                    ttl_s + rtts.get(region, 0),
                ]
            )
        writer_region = str(options["writer_region"])
        checks = [
            checkers.promise(ops, extra_s=allowance),
            checkers.convergence(ops, writes_end_s=record.facts["writes_end_s"], extra_s=allowance),
            own_writes_check(checkers.read_your_writes(ops), record, [writer_region], regions),
            checkers.monotonic_reads(ops),
        ]
        slowest = max(
            ((float(row[7]), str(row[0])) for row in rows if row[1] == "reader" and row[7]),
            default=None,
        )
        headline = visibility_headline(
            checks[0],
            slowest,
            acknowledged=sum(op.is_write and op.ok for op in ops),
            writer_region=writer_region,
            poll_interval_s=float(options["poll_interval"]),
        )
        return Summary(
            self.name,
            headline,
            [
                Table(
                    "time to visibility per region (simulated s)",
                    [
                        "region",
                        "role",
                        "rtt_ms",
                        "writes",
                        "seen",
                        "p50_s",
                        "p99_s",
                        "max_s",
                        "theory_p50_s",
                        "theory_p99_s",
                        "cacheTtl+rtt_s",
                    ],
                    rows,
                )
            ],
            [check.as_dict() for check in checks],
            measures={"visibility": per_region},
            notes=[
                "Theory: elsewhere, the residual life of a cache cycle (cacheTtl plus the wait "
                "for a poll) plus the RTT; at the writer, the wait for the next poll. A write "
                "can take longer than cacheTtl + RTT to be *seen* only because nobody polled."
            ],
        )

    def draw(
        self, record: RunRecord, history: Iterable[Op], summary: Summary, out: Path
    ) -> list[str]:
        ops = list(history)
        options = record.options
        regions: list[str] = record.facts["regions"]
        ttl_s = float(options["cache_ttl"])
        poll_rate = 1 / float(options["poll_interval"])
        rtts = rtt_s(record)
        items = checkers.visibility(ops, regions)
        measured = {
            region: [
                i.visible_after_s
                for i in items
                if i.region == region and i.visible_after_s is not None
            ]
            for region in regions
        }
        horizon_s = ttl_s * 1.6
        xs = [horizon_s * step / 200 for step in range(201)]
        predicted = {
            region: (
                "theory",
                xs,
                [
                    predicted_cdf(
                        region == options["writer_region"],
                        poll_rate,
                        ttl_s,
                        x - rtts.get(region, 0),
                    )
                    for x in xs
                ],
            )
            for region in regions
        }
        bounds = {region: ttl_s + rtts.get(region, 0) for region in regions}
        names = [
            plots.cdf_figure(
                out,
                "visibility-cdf.png",
                f"Time to visibility of a write made in {options['writer_region']} "
                f"(cacheTtl {ttl_s:g} s)",
                measured,
                predicted,
                bounds,
            )
        ]
        key = "key-0"
        reads = [op for op in ops if op.is_read and op.ok and op.key == key and op.revision]
        heatmap = plots.Heatmap(
            f"Revision of {key} each region served (writes in {options['writer_region']})",
            reads,
            regions,
            float(options["duration"]),
        )
        figure = plots.count_figure(heatmap, lambda op: op.revision or 0, "revision served")
        names.append(plots.save(figure, out, "visibility-heatmap.png"))
        return names


def visibility_headline(
    promise: checkers.CheckResult,
    slowest: tuple[float, str] | None,
    acknowledged: int,
    writer_region: str,
    poll_interval_s: float,
) -> str:
    """What the run found about the promise and the slowest sighting — or that it could not."""
    if not acknowledged:
        return f"no write was acknowledged in {writer_region}: there was nothing to see"
    if promise.verdict == "not examined":
        kept = "no read came cacheTtl + RTT after a write, so the promise was not examined"
    else:
        # A write is *seen* only when someone polls, so the slowest sighting can pass
        # cacheTtl + RTT by a poll gap; the promise check asks the sharper question.
        kept = (
            f"{'no' if promise.ok else 'SOME'} read later than cacheTtl + RTT after a write "
            "returned an older value"
        )
    if slowest is None:
        return f"{kept}; no write was seen outside the writer's region"
    return (
        f"{kept}; the last region to see a write ({slowest[1]}) saw it {slowest[0]:.1f} s "
        f"after its commit, polling every {poll_interval_s:g} s"
    )


def settle_s(cache_ttl_s: float) -> float:
    """How long before the end writes stop, so every region can converge."""
    return cache_ttl_s + SETTLE_EXTRA_S


def predicted_cdf(writer: bool, poll_rate: float, ttl_s: float, after_s: float) -> float:
    if after_s <= 0:
        return 0.0
    if writer:
        return -math.expm1(-poll_rate * after_s)
    return theory.visibility_cdf(poll_rate, ttl_s, after_s)


def predicted_quantile(writer: bool, poll_rate: float, ttl_s: float, q: float, rtt: float) -> float:
    if writer:
        return -math.log1p(-q) / poll_rate
    return theory.visibility_quantile(poll_rate, ttl_s, q) + rtt
