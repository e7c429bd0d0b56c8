"""Running the benchmarks: scenarios, sweeps, baselines in the same run, results as files.

Theory of operation: :func:`run` starts a :class:`~edgekv.bench.scenarios.BenchCluster`,
then for each chosen scenario (floors first) runs the open-loop generator at
the scenario's rate and keeps its full latency histogram; with sweeps on, it
steps the rate up until the generator cannot keep up or p99 passes the bound,
and the knee is the highest rate that stayed under it; scenarios that name a
number of callers also get a closed-loop throughput run. Every result is
printed in absolute units and as a ratio to its floor measured in the same
run, each ratio is judged against its target, and everything is written to
``results/bench/<timestamp>/`` under the current directory (or ``--out``),
as the experiments write ``results/<experiment>/<timestamp>/``: options with
the edgekv version and commit, machine, HDR histogram logs, summary (JSON,
CSV), plots.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hdrh.log import HistogramLogWriter

from edgekv.bench.loadgen import LoadResult, LoadSettings, closed_loop, run_workers
from edgekv.bench.scenarios import BenchCluster, Scenario, all_scenarios, scenario_named
from edgekv.bench.servers import finish_machine, machine, print_machine
from edgekv.experiments.results import utc_stamp
from edgekv.provenance import provenance

# The parent of every results folder: relative, so results land where the user runs it.
DEFAULT_OUT = Path("results")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# One generator process keeps up to about this many calls per second here.
RATE_PER_WORKER = 2000.0


@dataclass
class BenchOptions:
    scenarios: list[str]
    duration_s: float = 5.0
    rate_per_s: float | None = None
    arrival: str = "poisson"
    sweep: bool = False
    sweep_duration_s: float = 3.0
    p99_bound_ms: float = 20.0
    workers: int = 0  # 0: as many as the rate needs
    closed_duration_s: float = 4.5
    seed: int = 1
    out: Path = DEFAULT_OUT


@dataclass
class Measured:
    scenario: str
    mode: str  # "open" (at a rate), "sweep" (one step of a sweep), "closed" (N callers)
    rate_per_s: float
    callers: int
    result: LoadResult
    hlog: str = ""

    def row(self) -> dict[str, Any]:
        latency = self.result.latency
        row: dict[str, Any] = {
            "scenario": self.scenario,
            "mode": self.mode,
            "target_rate_per_s": None if math.isinf(self.rate_per_s) else self.rate_per_s,
            "achieved_rate_per_s": None
            if self.mode == "closed"
            else round(self.result.achieved_rate_per_s, 1),
            "throughput_per_s": round(self.result.throughput_per_s, 1),
            "callers": self.callers,
            "calls": self.result.completed,
            "errors": self.result.errors,
            "dropped": self.result.dropped,
            "late": self.result.late,
            "valid": self.mode == "closed" or self.result.valid,
        }
        for p in PERCENTILES:
            row[f"p{p:g}_ms"] = latency.get_value_at_percentile(p) / 1000
        row["max_ms"] = latency.get_max_value() / 1000
        row["send_lag_p99_ms"] = self.result.send_lag.get_value_at_percentile(99) / 1000
        row["problems"] = "; ".join(self.result.problems()) if self.mode != "closed" else ""
        row["first_error"] = self.result.first_error
        row["histogram_log"] = self.hlog
        return row


@dataclass
class Run:
    options: BenchOptions
    folder: Path
    measured: list[Measured] = field(default_factory=list)

    def p50_ms(self, scenario: str, mode: str = "open") -> float | None:
        for m in self.measured:
            if m.scenario == scenario and m.mode == mode:
                return float(m.result.latency.get_value_at_percentile(50)) / 1000
        return None


def chosen(options: BenchOptions) -> list[Scenario]:
    """The scenarios asked for, floors first, so every ratio has its floor."""
    wanted = [scenario_named(name) for name in options.scenarios]
    floors = {s.floor for s in wanted if s.floor} - {s.name for s in wanted}
    extra = [scenario_named(name) for name in sorted(floors)]
    ordered = extra + wanted
    return sorted(ordered, key=lambda s: s.floor is not None)


def workers_for(rate_per_s: float, options: BenchOptions) -> int:
    return options.workers or max(1, math.ceil(rate_per_s / RATE_PER_WORKER))


def measure_open(
    cluster: BenchCluster,
    scenario: Scenario,
    rate_per_s: float,
    duration_s: float,
    run: Run,
    mode: str,
) -> Measured:
    settings = LoadSettings(rate_per_s, duration_s, run.options.arrival, run.options.seed)  # type: ignore[arg-type]
    result = run_workers(
        scenario.connect, cluster.targets, settings, workers_for(rate_per_s, run.options)
    )
    measured = Measured(scenario.name, mode, rate_per_s, 0, result)
    measured.hlog = write_hlog(run.folder, f"{scenario.name}-{mode}-{rate_per_s:g}", result)
    run.measured.append(measured)
    print_line(measured)
    return measured


CLOSED_ROUNDS = 3


def measure_closed(cluster: BenchCluster, scenarios: list[Scenario], run: Run) -> None:
    """Closed-loop throughput, in interleaved rounds so that drift hits every scenario alike.

    Each scenario runs ``closed_duration_s / CLOSED_ROUNDS`` seconds per round (Get, Put,
    Get, Put, ...); its rounds' histograms and counts are summed.
    """
    slice_s = run.options.closed_duration_s / CLOSED_ROUNDS
    totals = {s.name: LoadResult(LoadSettings(math.inf, slice_s)) for s in scenarios}

    async def one_slice(scenario: Scenario) -> LoadResult:
        async with scenario.connect(cluster.targets) as call:
            await call(-1)
            return await closed_loop(call, scenario.closed_callers, slice_s)

    for _ in range(CLOSED_ROUNDS):
        for scenario in scenarios:
            part = asyncio.run(one_slice(scenario))
            total = totals[scenario.name]
            span_s = total.finish_span_s + part.finish_span_s
            total.merge(part)
            total.finish_span_s = total.send_span_s = span_s
    for scenario in scenarios:
        result = totals[scenario.name]
        measured = Measured(scenario.name, "closed", math.inf, scenario.closed_callers, result)
        name = f"{scenario.name}-closed-{scenario.closed_callers}"
        measured.hlog = write_hlog(run.folder, name, result)
        run.measured.append(measured)
        print_line(measured)


def sweep(cluster: BenchCluster, scenario: Scenario, run: Run) -> None:
    for rate in scenario.sweep_rates:
        step = measure_open(cluster, scenario, rate, run.options.sweep_duration_s, run, "sweep")
        p99_ms = step.result.latency.get_value_at_percentile(99) / 1000
        if not step.result.valid or p99_ms > run.options.p99_bound_ms:
            break


def write_hlog(folder: Path, name: str, result: LoadResult) -> str:
    path = folder / "histograms" / f"{name}.hlog"
    path.parent.mkdir(exist_ok=True)
    with path.open("w") as out:
        writer = HistogramLogWriter(out)
        writer.output_comment(
            f"edgekv bench {name}: latency in microseconds from the intended start"
        )
        writer.output_legend()
        writer.output_interval_histogram(result.latency, 0, result.finish_span_s or 1.0)
    return str(path.relative_to(folder))


def print_line(m: Measured) -> None:
    row = m.row()
    how = (
        f"{m.callers} callers"
        if m.mode == "closed"
        else f"{m.rate_per_s:g}/s -> {row['achieved_rate_per_s']:g}/s"
    )
    flag = "" if row["valid"] else f"  INVALID: {row['problems']}"
    errors = f"  {row['errors']} errors ({row['first_error']})" if row["errors"] else ""
    latencies = "  ".join(
        f"{name} {row[f'{name}_ms']:8.3f}" for name in ("p50", "p99", "p99.9", "max")
    )
    rate = f"{row['throughput_per_s']:8.0f}/s"
    print(
        f"  {m.scenario:<22} {m.mode:<6} {how:<22} {latencies} ms {rate}{flag}{errors}", flush=True
    )


def knee(run: Run, scenario: str) -> dict[str, Any] | None:
    """The highest swept rate whose run was valid with p99 under the bound."""
    best = None
    for m in run.measured:
        if m.scenario != scenario or m.mode != "sweep":
            continue
        p99_ms = m.result.latency.get_value_at_percentile(99) / 1000
        under = m.result.valid and p99_ms <= run.options.p99_bound_ms
        if under and (best is None or m.rate_per_s > best["rate_per_s"]):
            best = {
                "rate_per_s": m.rate_per_s,
                "throughput_per_s": m.result.throughput_per_s,
                "p99_ms": p99_ms,
                # The sweep ran out of rates before the bound: the knee is at least this.
                "at_sweep_end": m.rate_per_s == max(scenario_named(scenario).sweep_rates),
            }
    return best


@dataclass(frozen=True)
class Ratio:
    """A measured ratio and what it should be: ``<= 1.2``, ``>= 0.7`` or ``info``."""

    name: str
    value: float
    target: str = "info"

    @property
    def verdict(self) -> str:
        if self.target == "info":
            return "info"
        op, _, bound = self.target.partition(" ")
        ok = self.value <= float(bound) if op == "<=" else self.value >= float(bound)
        return "PASS" if ok else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def ratios(run: Run) -> list[Ratio]:
    """Each scenario's p50 against its floor's, and the other ratios, each with its target."""
    found = []
    by_name = {s.name: s for s in all_scenarios()}
    for m in run.measured:
        scenario = by_name[m.scenario]
        floor = run.p50_ms(scenario.floor) if scenario.floor else None
        if m.mode != "open" or not floor:
            continue
        p50 = run.p50_ms(m.scenario) or 0.0
        if scenario.rtt_ms:
            name = f"{m.scenario} (p50 - RTT) / floor p50"
        else:
            name = f"{m.scenario} p50 / floor p50"
        found.append(Ratio(name, (p50 - scenario.rtt_ms) / floor, target_of(m.scenario)))
    found += miss_over_relay(run)
    floor_knee = knee(run, "floor")
    for hit_path, target in (("edge-hit", ">= 0.8"), ("edge-hit-stub", "info")):
        hit = knee(run, hit_path)
        if hit and floor_knee:
            value = hit["throughput_per_s"] / floor_knee["throughput_per_s"]
            found.append(Ratio(f"{hit_path} throughput at knee / floor's", value, target))
    closed = {m.scenario: m.result.throughput_per_s for m in run.measured if m.mode == "closed"}
    for put in ("central-put-sqlite", "central-put-redis"):
        if put in closed and closed.get("central-get"):
            value = closed[put] / closed["central-get"]
            found.append(Ratio(f"{put} / central-get throughput at 16 callers", value, ">= 0.7"))
    overhead, floor_p50 = run.p50_ms("generator-overhead"), run.p50_ms("floor")
    if overhead is not None and floor_p50:
        found.append(Ratio("generator overhead p50 / floor p50", overhead / floor_p50))
    return found


def target_of(scenario: str) -> str:
    if scenario == "edge-hit":
        return "<= 1.2"
    if scenario.startswith("edge-miss-"):
        return "<= 1.5"
    return "info"


def miss_over_relay(run: Run) -> list[Ratio]:
    """What edgekv itself adds to a MISS: MISS p50 minus the do-nothing relay's, over the floor."""
    floor = run.p50_ms("floor")
    found = []
    for m in run.measured:
        if not m.scenario.startswith("edge-miss-") or m.mode != "open":
            continue
        region = m.scenario.removeprefix("edge-miss-")
        miss, relay = run.p50_ms(m.scenario), run.p50_ms(f"relay-{region}")
        if floor and miss is not None and relay is not None:
            name = f"{m.scenario} (p50 - relay p50) / floor p50"
            found.append(Ratio(name, (miss - relay) / floor))
    return found


def results_folder(out: Path, prefix: str = "") -> Path:
    """``OUT/bench/PREFIX<timestamp>``, created (a second run that second is an error)."""
    folder = out / "bench" / f"{prefix}{utc_stamp()}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def run(options: BenchOptions) -> Run:
    folder = results_folder(options.out)
    info = machine()
    print_machine(info)
    run_state = Run(options, folder)
    scenarios = chosen(options)
    longest = max((s.rate_per_s for s in scenarios if s.name.startswith("edge-miss")), default=0)
    cluster = BenchCluster()
    try:
        cluster.start(
            miss_keys=math.ceil((options.rate_per_s or longest) * options.duration_s) + 10
        )
        asyncio.run(cluster.prepare())
        print(f"results in {folder}", flush=True)
        for scenario in scenarios:
            measure_open(
                cluster,
                scenario,
                options.rate_per_s or scenario.rate_per_s,
                options.duration_s,
                run_state,
                "open",
            )
            if options.sweep and scenario.sweep_rates:
                sweep(cluster, scenario, run_state)
        closed = [scenario for scenario in scenarios if scenario.closed_callers]
        if closed:
            measure_closed(cluster, closed, run_state)
    finally:
        cluster.stop()
        finish_machine(info)
    write_results(run_state, info)
    return run_state


def write_results(run: Run, info: dict[str, Any]) -> None:
    folder = run.folder
    options = {**asdict(run.options), "out": str(run.options.out)}
    (folder / "options.json").write_text(json.dumps({**options, **provenance()}, indent=2))
    (folder / "machine.json").write_text(json.dumps(info, indent=2))
    rows = [m.row() for m in run.measured]
    found = ratios(run)
    knees = {
        name: knee(run, name) for name in {m.scenario for m in run.measured if m.mode == "sweep"}
    }
    summary = {
        "rows": rows,
        "ratios": [ratio.as_dict() for ratio in found],
        "knees": knees,
        "valid": all(r["valid"] for r in rows),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    with (folder / "summary.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from edgekv.bench.plots import draw

    draw(folder, summary)
    print_ratios(found, knees)


def print_ratios(found: list[Ratio], knees: dict[str, Any]) -> None:
    print("\nratios (floor measured in the same run):")
    for ratio in found:
        target = f"target {ratio.target:<7}"
        print(f"  {ratio.name:<58} {ratio.value:7.2f}  {target} {ratio.verdict}")
    for name, point in sorted(knees.items()):
        shown = (
            "none under the bound"
            if point is None
            else f"{'>= ' if point['at_sweep_end'] else ''}{point['rate_per_s']:g}/s "
            f"(throughput {point['throughput_per_s']:.0f}/s, p99 {point['p99_ms']:.2f} ms)"
        )
        print(f"  knee of {name:<49} {shown}")
