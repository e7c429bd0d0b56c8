"""The soak: a steady mixed workload through a five-region cluster for a long time, watching growth.

Theory of operation: :func:`soak` starts the default five-region topology as
local processes (central on SQLite, the write-rate limit off: Zipf-popular
keys are written more than once a second, and that 429 would be the
workload's doing, not the store's), writes the keys, and — unless a rate is
given — finds the knee of the workload with a short sweep and runs at a
fraction of it (80 % by default). The run is a sequence of open-loop slices,
each ``sample_every_s`` long; after each slice every process (central, each
edge, and this generator) is sampled from ``/proc``: resident memory, open
file descriptors and tasks (its threads, counted by name too, so that a step
can be traced to the thread that made it), beside the slice's latency
percentiles, errors and achieved rate.

:func:`verdict` judges the samples: a call that failed fails the soak, and so
does any node of the store whose RSS, file descriptors or tasks, averaged over
the last quarter of the run, exceed their average over the second quarter by
more than 10 % (the first quarter is warm-up: caches fill, connections open).
The generator is judged too, but not on its threads: it is the harness, the
busiest process on the machine, and gRPC's event-engine pool in it grows a
worker while its queue backs up (one a second at most, reclaimed after 20 s
idle) — a step that follows the harness's own load, not the store's.
Everything goes to a results folder: ``slices.csv``, ``samples.csv``,
``summary.json`` and ``soak.png``.

The workload: each call goes to the next region's edge in turn; 95 % are
reads with Workers' default cacheTtl, 5 % writes, of Zipf-popular keys.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import edgekv
from edgekv import figures
from edgekv.bench.loadgen import MIN_RATE_FRACTION, CallFn, LoadResult, LoadSettings, open_loop
from edgekv.bench.runner import DEFAULT_OUT, results_folder
from edgekv.bench.servers import machine, process_memory
from edgekv.client import RetryPolicy
from edgekv.experiments.theory import key_weights
from edgekv.launcher import LocalCluster
from edgekv.provenance import provenance
from edgekv.topology import default_topology

KEY_COUNT = 10_000
ZIPF = 1.0
WRITE_FRACTION = 0.05
VALUE = b"v" * 200
# Growth allowed between the second and the last quarter of the run.
MAX_GROWTH = 0.10
SWEEP_RATES_PER_S = (200, 400, 800, 1200, 1600, 2000, 2500, 3000, 4000)
SWEEP_STEP_S = 4.0
WARM_UP_S = 10.0
# A sweep step keeps up when its p50 stays within this factor of the slowest rate's.
KNEE_P50_FACTOR = 2.0
GAUGES = ("rss_bytes", "open_fds", "tasks")
HARNESS = "generator"


@dataclass(frozen=True)
class SoakOptions:
    duration_s: float
    rate_per_s: float | None = None
    load_fraction: float = 0.8
    sample_every_s: float = 5.0
    seed: int = 1
    out: Path = DEFAULT_OUT


@dataclass
class Slice:
    """One open-loop slice of the run."""

    t_s: float
    rate_per_s: float
    achieved_per_s: float
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    valid: bool
    first_error: str = ""


@dataclass
class Sample:
    """One process, sampled after a slice."""

    t_s: float
    process: str
    pid: int
    rss_bytes: int
    open_fds: int
    tasks: int
    # How many of the tasks bear each name, as JSON ({"event_engine": 4, "python": 2}):
    # who made a step.
    thread_names: str = ""


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    # Per process and gauge: (second-quarter mean, last-quarter mean, growth).
    growth: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)


def sample_process(name: str, pid: int, t_s: float) -> Sample:
    status = process_memory(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    names = Counter(_thread_name(pid, task) for task in os.listdir(f"/proc/{pid}/task"))
    counted = json.dumps(dict(sorted(names.items())))
    return Sample(t_s, name, pid, status.get("VmRSS", 0), fds, names.total(), counted)


def _thread_name(pid: int, task: str) -> str:
    """The thread's name (Linux's comm; a thread inherits its creator's unless it sets one)."""
    try:
        return Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
    except OSError:  # the thread ended between the listing and the read
        return "?"


def verdict(slices: Sequence[Slice], samples: Sequence[Sample]) -> Verdict:
    """Did any call fail, and did any node grow from the second quarter to the last?"""
    found = Verdict(passed=True)
    errors = sum(piece.errors for piece in slices)
    if errors:
        first = next(piece.first_error for piece in slices if piece.errors)
        found.reasons.append(f"{errors} calls failed, the first with {first}")
    if not slices:
        found.reasons.append("no slice ran")
    end_s = max((sample.t_s for sample in samples), default=0.0)
    for process in sorted({sample.process for sample in samples}):
        mine = [sample for sample in samples if sample.process == process]
        second = [s for s in mine if end_s / 4 < s.t_s <= end_s / 2]
        last = [s for s in mine if s.t_s > 3 * end_s / 4]
        if not second or not last:
            found.reasons.append(f"{process}: too few samples to compare quarters")
            continue
        found.growth[process] = {}
        for gauge in GAUGES:
            before = statistics.fmean(getattr(s, gauge) for s in second)
            after = statistics.fmean(getattr(s, gauge) for s in last)
            growth = after / before - 1 if before else 0.0
            found.growth[process][gauge] = (before, after, growth)
            if growth > MAX_GROWTH and not (process == HARNESS and gauge == "tasks"):
                found.reasons.append(
                    f"{process}: {gauge} grew {growth:.0%} from the second quarter "
                    f"({before:.0f}) to the last ({after:.0f})"
                )
    found.passed = not found.reasons
    return found


@asynccontextmanager
async def workload(edges: Sequence[str], namespace_id: str, seed: int) -> AsyncIterator[CallFn]:
    """``call(i)``: the i-th call, through the next region's edge in turn."""
    weights = key_weights(KEY_COUNT, ZIPF)
    rng = random.Random(seed)
    async with AsyncExitStack() as stack:
        namespaces = [
            (
                await stack.enter_async_context(edgekv.Client(edge=address, retry=RetryPolicy.NONE))
            ).namespace(namespace_id)
            for address in edges
        ]

        async def call(index: int) -> object:
            kv = namespaces[index % len(namespaces)]
            name = f"key-{rng.choices(range(KEY_COUNT), weights)[0]}"
            if rng.random() < WRITE_FRACTION:
                return await kv.put(name, VALUE)
            return await kv.get(name)

        yield call


def _slice_of(result: LoadResult, t_s: float) -> Slice:
    def ms(percentile: float) -> float:
        return float(result.latency.get_value_at_percentile(percentile)) / 1000

    return Slice(
        t_s=t_s,
        rate_per_s=result.settings.rate_per_s,
        achieved_per_s=result.achieved_rate_per_s,
        completed=result.completed,
        errors=result.errors,
        p50_ms=ms(50),
        p99_ms=ms(99),
        max_ms=float(result.latency.get_max_value()) / 1000,
        valid=result.valid,
        first_error=result.first_error,
    )


async def knee(call: CallFn, seed: int, report: Callable[[str], None]) -> float:
    """The highest swept rate the cluster kept up with (no errors, the rate sent, p50 held).

    A warm-up at the lowest rate fills the edges' caches first, so that the
    first step's p50 (the yardstick of the others) is the steady state's.
    """
    await open_loop(call, LoadSettings(SWEEP_RATES_PER_S[0], WARM_UP_S, seed=seed - 1))
    kept_up = 0.0
    first_p50_ms: float | None = None
    for step, rate in enumerate(SWEEP_RATES_PER_S):
        settings = LoadSettings(rate, SWEEP_STEP_S, seed=seed + step)
        piece = _slice_of(await open_loop(call, settings), 0.0)
        first_p50_ms = first_p50_ms or piece.p50_ms
        held = not _problems(piece, first_p50_ms)
        why = "kept up" if held else "did not keep up: " + _problems(piece, first_p50_ms)
        report(f"sweep {rate:>5}/s: p50 {piece.p50_ms:7.2f} ms  p99 {piece.p99_ms:7.2f} ms  {why}")
        if not held:
            break
        kept_up = rate
    if not kept_up:
        raise RuntimeError("the cluster did not keep up with the lowest swept rate")
    return kept_up


def _problems(piece: Slice, first_p50_ms: float) -> str:
    problems = []
    if piece.errors:
        problems.append(f"{piece.errors} errors, the first {piece.first_error}")
    # A step counts the calls answered, not how punctually the generator sent them.
    if piece.achieved_per_s < MIN_RATE_FRACTION * piece.rate_per_s:
        problems.append(f"only {piece.achieved_per_s:.0f}/s sent")
    if piece.p50_ms > KNEE_P50_FACTOR * first_p50_ms:
        problems.append(f"p50 over {KNEE_P50_FACTOR:g} x {first_p50_ms:.2f} ms")
    return "; ".join(problems)


async def soak(options: SoakOptions, report: Callable[[str], None] = print) -> Path:
    """Run the soak; return its results folder (with the verdict in summary.json)."""
    topology = default_topology()
    topology = replace(topology, central=replace(topology.central, write_rate_limit=False))
    with tempfile.TemporaryDirectory(prefix="edgekv-soak-") as data_dir:
        cluster = await LocalCluster.start(topology, Path(data_dir))
        try:
            namespace_id = await _seed_keys(cluster.central_address)
            edges = [node.address for node in cluster.edges]
            pids = {node.name: node.pid for node in cluster.nodes} | {"generator": os.getpid()}
            async with workload(edges, namespace_id, options.seed) as call:
                knee_per_s = options.rate_per_s
                if knee_per_s is None:
                    knee_per_s = await knee(call, options.seed, report)
                rate = knee_per_s * (options.load_fraction if options.rate_per_s is None else 1)
                report(f"soak at {rate:.0f} calls/s for {options.duration_s:g} s")
                slices, samples = await _run(call, rate, pids, options, report)
        finally:
            await cluster.stop()
    judged = verdict(slices, samples)
    folder = results_folder(options.out, prefix="soak-")
    _write(folder, options, knee_per_s, rate, slices, samples, judged)
    return folder


async def _seed_keys(central: str) -> str:
    async with edgekv.Client(central=central) as client:
        namespace = await client.create_namespace(f"soak-{time.time_ns()}")
        kv = client.namespace(namespace.id)
        await kv.bulk_put([{"key": f"key-{k}", "value": VALUE.decode()} for k in range(KEY_COUNT)])
        return namespace.id


async def _run(
    call: CallFn,
    rate: float,
    pids: dict[str, int],
    options: SoakOptions,
    report: Callable[[str], None],
) -> tuple[list[Slice], list[Sample]]:
    slices: list[Slice] = []
    samples: list[Sample] = []
    began = time.monotonic()
    index = 0
    while (elapsed_s := time.monotonic() - began) < options.duration_s:
        length_s = min(options.sample_every_s, options.duration_s - elapsed_s)
        settings = LoadSettings(rate, length_s, seed=options.seed * 1_000_003 + index)
        result = await open_loop(call, settings)
        t_s = time.monotonic() - began
        piece = _slice_of(result, t_s)
        slices.append(piece)
        samples += [sample_process(name, pid, t_s) for name, pid in pids.items()]
        index += 1
        if index % max(1, round(60 / options.sample_every_s)) == 0 or piece.errors:
            report(
                f"{t_s:7.0f} s  p50 {piece.p50_ms:6.2f} ms  p99 {piece.p99_ms:7.2f} ms  "
                f"{piece.achieved_per_s:6.0f}/s  errors {piece.errors}"
            )
    return slices, samples


def _write(
    folder: Path,
    options: SoakOptions,
    knee_per_s: float,
    rate: float,
    slices: list[Slice],
    samples: list[Sample],
    judged: Verdict,
) -> None:
    for name, rows in (("slices.csv", slices), ("samples.csv", samples)):
        with (folder / name).open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(asdict(rows[0])) if rows else [])
            writer.writeheader()
            writer.writerows(asdict(row) for row in rows)
    summary: dict[str, Any] = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "knee_per_s": knee_per_s,
        "rate_per_s": rate,
        "slices": len(slices),
        "calls": sum(piece.completed for piece in slices),
        "errors": sum(piece.errors for piece in slices),
        "invalid_slices": sum(not piece.valid for piece in slices),
        "passed": judged.passed,
        "reasons": judged.reasons,
        "growth": judged.growth,
        "machine": machine(),
        **provenance(),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    draw(folder, slices, samples)


def draw(folder: Path, slices: Sequence[Slice], samples: Sequence[Sample]) -> None:
    figure, axes = figures.pyplot().subplots(4, 1, figsize=(10, 12), sharex=True)
    processes = sorted({sample.process for sample in samples})
    for process in processes:
        mine = [sample for sample in samples if sample.process == process]
        times = [sample.t_s / 60 for sample in mine]
        axes[0].plot(times, [s.rss_bytes / 2**20 for s in mine], label=process)
        axes[1].plot(times, [s.open_fds for s in mine], label=process)
        axes[2].plot(times, [s.tasks for s in mine], label=process)
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].set_ylabel("open file descriptors")
    axes[2].set_ylabel("tasks (threads)")
    minutes = [piece.t_s / 60 for piece in slices]
    axes[3].plot(minutes, [piece.p50_ms for piece in slices], label="p50")
    axes[3].plot(minutes, [piece.p99_ms for piece in slices], label="p99")
    axes[3].set_yscale("log")
    axes[3].set_ylabel("latency (ms)")
    axes[3].set_xlabel("minutes into the soak")
    for quarter in (0.25, 0.5, 0.75):
        for panel in axes:
            panel.axvline(quarter * (minutes[-1] if minutes else 0), color="grey", lw=0.5)
    for panel in axes:
        panel.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=4)
    axes[3].legend(fontsize=8)
    figure.suptitle("Soak: resources per process and latency per slice")
    figures.save(figure, folder / "soak.png", dpi=90)


def run_soak(options: SoakOptions) -> Path:
    """For the command: the soak on its own event loop."""
    return asyncio.run(soak(options))
