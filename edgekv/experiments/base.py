"""What every experiment shares: its options, its cluster, its progress bar, its folder.

Theory of operation: an :class:`Experiment` says which options it takes,
what topology a fresh cluster should have, how to run (returning the history
and the facts it gathered), and how to summarise and draw a run from its
files. :func:`run_experiment` does the rest the same way for all of them:
check the options, say how long the run will take in real time (simulated
seconds over the cluster's time scale, plus setup) and refuse one longer
than :data:`MAX_REAL_S` unless ``--yes``, check the output folder, run, write
the primary files, derive the summary and plots, and move the folder into
place only when all of it is there. A run that fails or is interrupted
(Ctrl-C, SIGTERM) leaves nothing: no results folder, and on a running
cluster none of the namespaces it created.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from edgekv.clock import valid_time_scale
from edgekv.core import validation
from edgekv.core.errors import KVError, UsageError
from edgekv.experiments import checkers
from edgekv.experiments.cluster import (
    ClusterView,
    fresh_cluster,
    remove_namespaces,
    running_cluster,
    running_cluster_view,
)
from edgekv.experiments.history import HISTORY_NAMES, History, HistoryWriter, Op, history_file
from edgekv.experiments.records import MalformedRecord
from edgekv.experiments.results import (
    RUN_FILE,
    ResultsFolder,
    RunRecord,
    Summary,
    git_commit,
    write_derived,
)
from edgekv.topology import (
    Topology,
    TopologyError,
    default_topology,
    generated_topology,
    load_topology,
    parse_size,
)

# What an experiment's run returns besides its history (which it hands on as it goes):
# the facts it gathered, the cluster's description and the driver's stats (run.json).
RunOutcome = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
# Where a run hands each operation of its history, in id order.
Record = Callable[[Op], None]


class Experiment(Protocol):
    name: str
    help: str
    default_duration_s: float
    default_time_scale: float

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def workloads(self, args: argparse.Namespace) -> int:
        """How many workloads of --duration run one after another, each on its own cluster."""
        ...

    def validate(self, args: argparse.Namespace) -> None:
        """Raise ValueError naming the option when the options cannot work."""
        ...

    async def run(self, args: argparse.Namespace, progress: Progress, record: Record) -> RunOutcome:
        """Run, handing each operation to ``record``; return the facts, the cluster's
        description and driver stats."""
        ...

    def summarise(self, record: RunRecord, ops: Iterable[Op]) -> Summary:
        """The summary of a history, which may be too large to hold: each pass over
        ``ops`` reads it afresh, and an experiment that needs it whole lists it."""
        ...

    def draw(self, record: RunRecord, ops: Iterable[Op], summary: Summary, out: Path) -> list[str]:
        """Write PNG plots into ``out``; return their file names."""
        ...


ENGINES = ("cluster", "sim")


def add_common_arguments(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the workload, and with --engine sim of the whole run (default 1)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="cluster",
        help="cluster: the nodes as processes on the host's clock; sim: the same nodes in "
        "this process on virtual time, replayed exactly by --seed (default %(default)s)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="S",
        help=f"simulated seconds per real second of a fresh cluster "
        f"(default {experiment.default_time_scale:g})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=experiment.default_duration_s,
        metavar="SECONDS",
        help=f"simulated seconds of workload (default {experiment.default_duration_s:g})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results go to DIR/<experiment>/<timestamp>/ (default ./results)",
    )
    parser.add_argument(
        "--gzip-history",
        action="store_true",
        help="write the history compressed, as history.jsonl.gz (byte-identical for a seed "
        "all the same: its gzip header has no name or time)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"run even if it would take more than {MAX_REAL_S / 60:g} minutes of real time",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--regions",
        type=int,
        default=None,
        metavar="N",
        help="a generated topology of N regions, pop-001 ... (RTTs to central spread "
        "log-uniformly from 2 to 300 ms; see docs/design.md) instead of the default five",
    )
    parser.add_argument(
        "--edge-cache",
        type=str,
        default=None,
        metavar="SIZE",
        help="each edge's cache, e.g. 4MiB: copies past it go, least recently used first "
        "(default: the topology's, 64MiB)",
    )
    parser.add_argument(
        "--edges-per-region",
        type=int,
        default=1,
        metavar="N",
        help="edges in each region of a generated topology (default 1)",
    )
    where.add_argument(
        "--topology",
        type=Path,
        metavar="FILE",
        help="start a fresh cluster from this topology (default: the five-region default)",
    )
    where.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="run on the running cluster this state file describes (e.g. ~/.edgekv/cluster.json)",
    )


def validate_common(args: argparse.Namespace) -> None:
    if args.duration <= 0:
        raise UsageError(f"--duration must be positive, got {args.duration:g}")
    if args.edge_cache is not None:
        if args.state is not None:
            raise UsageError(
                "--edge-cache sizes the edges of a fresh cluster; the running cluster --state "
                "names has its own (drop one of them)"
            )
        edge_cache_bytes(args.edge_cache)
    if args.engine == "sim":
        if args.state is not None:
            raise UsageError(
                "--engine sim builds its own nodes in this process; it cannot run on the "
                "running cluster --state names (drop --state, or use --engine cluster)"
            )
        if args.time_scale is not None:
            raise UsageError(
                "--time-scale means nothing to --engine sim: virtual time runs as fast as "
                "the machine can (drop --time-scale)"
            )
    if args.edges_per_region != 1 and args.regions is None:
        raise UsageError("--edges-per-region shapes a generated topology: give --regions too")
    if args.regions is not None:
        generated_topology(args.regions, args.edges_per_region)  # in range, or one line
    if args.time_scale is not None:
        valid_time_scale(args.time_scale, "--time-scale")
    if args.state is not None and args.time_scale is not None:
        raise UsageError("--time-scale cannot change a running cluster's clock; drop it or --state")


def add_cache_ttl_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-ttl", type=int, default=60, metavar="S", help="readers' cacheTtl (default 60)"
    )


def add_writer_region_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--writer-region",
        default=None,
        metavar="REGION",
        help="the region that writes (default: central's region, us-east in the default topology)",
    )


def add_rate_argument(
    parser: argparse.ArgumentParser,
    operation: Literal["read", "write"],
    default: float,
    where: str,
    shown_default: str = "%(default)s",
) -> None:
    """``--read-rate`` or ``--write-rate``: Poisson operations per simulated second ``where``."""
    parser.add_argument(
        f"--{operation}-rate",
        type=float,
        default=default,
        metavar="PER_S",
        help=f"{operation}s per simulated second {where} (default {shown_default})",
    )


def add_keys_argument(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--keys", type=int, default=default, metavar="N", help=f"number of keys (default {default})"
    )


def validate_keys(args: argparse.Namespace) -> None:
    if args.keys < 1:
        raise UsageError(f"--keys must be at least 1, got {args.keys}")


def validate_cache_ttl(cache_ttl_s: int, flag: str = "--cache-ttl") -> None:
    """The same rule, and the same words, as a read's cacheTtl (the core's validation)."""
    try:
        validation.validate_cache_ttl(cache_ttl_s)
    except KVError as exc:
        raise UsageError(f"{flag}: {exc.message}") from None


def validate_rate(value: float, flag: str) -> None:
    if not value > 0 or value == float("inf"):
        raise UsageError(
            f"{flag} must be a positive number of operations per second, got {value:g}"
        )


def base_topology(args: argparse.Namespace, experiment: Experiment) -> Topology:
    """The topology of a fresh cluster: the file or the default, without a write limit.

    One write per second per key is Workers KV's limit, but Poisson writes
    collide with it now and then, and the theory assumes none are refused.
    """
    if args.regions is not None:
        topology = generated_topology(args.regions, args.edges_per_region)
    elif args.topology:
        topology = load_topology(args.topology)
    else:
        topology = default_topology()
    scale = args.time_scale or experiment.default_time_scale
    topology = replace(
        topology.with_time_scale(scale),
        central=replace(topology.central, write_rate_limit=False),
    )
    if args.edge_cache is not None:
        max_bytes = edge_cache_bytes(args.edge_cache)
        topology = replace(
            topology,
            regions=tuple(
                replace(region, edge=replace(region.edge, cache_max_bytes=max_bytes))
                for region in topology.regions
            ),
        )
    return topology


def edge_cache_bytes(text: str) -> int:
    """``--edge-cache`` in bytes, or a UsageError naming the flag."""
    try:
        max_bytes = parse_size(text, "--edge-cache")
    except TopologyError as exc:
        raise UsageError(str(exc)) from None
    if max_bytes <= 0:
        raise UsageError(f"--edge-cache must be positive, got {text}")
    return max_bytes


@asynccontextmanager
async def cluster_for(args: argparse.Namespace, topology: Topology) -> AsyncIterator[ClusterView]:
    if args.engine == "sim":
        from edgekv.sim.cluster import simulated_cluster

        async with simulated_cluster(topology, args.seed) as view:
            yield view
        return
    if args.state is not None:
        async with running_cluster_view(args.state) as view:
            yield view
        return
    async with fresh_cluster(topology) as view:
        yield view


# A run expected to take longer than this (real seconds) needs --yes.
MAX_REAL_S = 600.0
# Real seconds besides the workload: starting, filling and stopping a fresh cluster, or
# checking and filling a running one; and summarising and drawing the results.
FRESH_CLUSTER_REAL_S = 5.0
RUNNING_CLUSTER_REAL_S = 1.0
RESULTS_REAL_S = 3.0


@dataclass(frozen=True, slots=True)
class RealTime:
    """How long a run will take in real time, and why."""

    workloads: int
    duration_s: float
    time_scale: float
    fresh: bool

    @property
    def workload_real_s(self) -> float:
        return self.workloads * self.duration_s / self.time_scale

    @property
    def setup_real_s(self) -> float:
        per_cluster = FRESH_CLUSTER_REAL_S if self.fresh else RUNNING_CLUSTER_REAL_S
        return self.workloads * per_cluster + RESULTS_REAL_S

    @property
    def total_s(self) -> float:
        return self.workload_real_s + self.setup_real_s

    def describe(self) -> str:
        runs = f"{self.workloads} x " if self.workloads > 1 else ""
        where = "a fresh cluster" if self.fresh else "the running cluster"
        return (
            f"{runs}{self.duration_s:g} simulated s at time scale {self.time_scale:g} "
            f"({where}): about {fmt_real(self.total_s)} of real time, "
            f"{fmt_real(self.setup_real_s)} of it setup"
        )

    def refusal(self, experiment: str) -> str:
        """One line: why the run is refused, and three ways to go ahead."""
        room_s = MAX_REAL_S - self.setup_real_s
        fits_scale = nice_ceiling(self.workloads * self.duration_s / max(room_s, 1.0))
        fits_duration = max(1, int(room_s * self.time_scale / self.workloads))
        shorter = f"--duration {fits_duration} or less"
        ways = (
            f"pass --time-scale {fits_scale:g} or {shorter}"
            if self.fresh
            else f"start the cluster with `edgekv up --time-scale {fits_scale:g} --detach`, "
            f"or pass {shorter}"
        )
        return (
            f"{experiment}: {self.describe()}, more than {fmt_real(MAX_REAL_S)}; "
            f"{ways}, or --yes to run it anyway"
        )


def fmt_real(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least ``value``."""
    step = 1.0
    while True:
        for nice in (1.0, 2.0, 5.0):
            if nice * step >= value:
                return nice * step
        step *= 10


async def real_time_of(experiment: Experiment, args: argparse.Namespace) -> RealTime:
    """The run's real duration; on a running cluster, once it answers (its clock decides)."""
    if args.state is not None:
        view = await running_cluster(args.state)
        scale, fresh = view.clock.scale, False
    else:
        scale, fresh = args.time_scale or experiment.default_time_scale, True
    return RealTime(experiment.workloads(args), float(args.duration), scale, fresh)


async def check_real_time(experiment: Experiment, args: argparse.Namespace) -> None:
    """Say how long the run will take; refuse one too long for a sitting unless --yes."""
    if args.engine == "sim":  # virtual time: as long as its events take to run
        runs = experiment.workloads(args)
        print(
            f"{experiment.name}: {f'{runs} x ' if runs > 1 else ''}{args.duration:g} simulated s "
            "on the simulation engine (virtual time)",
            file=sys.stderr,
            flush=True,
        )
        return
    real = await real_time_of(experiment, args)
    if real.total_s > MAX_REAL_S and not args.yes:
        raise UsageError(real.refusal(experiment.name))
    print(f"{experiment.name}: {real.describe()}", file=sys.stderr, flush=True)


@contextmanager
def sigterm_cancels() -> Iterator[Callable[[], bool]]:
    """While inside, SIGTERM cancels the current task as Ctrl-C would, so cleanup runs.

    Yields a function that says whether SIGTERM came.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[bool] = []

    def on_sigterm() -> None:
        received.append(True)
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):  # no signals here: the default stays
        yield lambda: False
        return
    try:
        yield lambda: bool(received)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


class Progress:
    """One line on stderr: simulated time against the duration, operations, errors."""

    def __init__(self, stream: Any = None, interval_real_s: float = 0.25) -> None:
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_real_s = interval_real_s if self.interactive else 5.0
        self.label = ""
        self.total_s = 1.0
        self._last_real = 0.0
        self._phase_began = time.monotonic()

    def phase(self, label: str, total_s: float) -> None:
        self.label, self.total_s, self._last_real = label, total_s, 0.0
        self._phase_began = time.monotonic()

    def __call__(self, sim_s: float, ops: int, errors: int) -> None:
        now = time.monotonic()
        if now - self._last_real < self.interval_real_s:
            return
        self._last_real = now
        done = min(1.0, max(0.0, sim_s / self.total_s))
        bar = "#" * int(done * 30)
        per_real_s = ops / max(now - self._phase_began, 1e-9)
        line = (
            f"{self.label:<14} [{bar:<30}] {sim_s:7.0f}/{self.total_s:.0f} s simulated "
            f"{ops:7d} ops {errors:5d} errors {per_real_s:8.0f} ops/s"
        )
        if self.interactive:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, sim_s: float | None = None, ops: int = 0, errors: int = 0) -> None:
        """Draw the last state (when given) and end the line."""
        if sim_s is not None:
            self._last_real = 0.0
            self(sim_s, ops, errors)
        if self.interactive and self._last_real:
            self.stream.write("\n")
        self.stream.flush()


# Exit code of a run stopped by SIGTERM (128 + 15), as if the signal had killed it.
SIGTERM_EXIT = 128 + signal.SIGTERM


async def run_experiment(experiment: Experiment, args: argparse.Namespace) -> int:
    validate_common(args)
    experiment.validate(args)
    await check_real_time(experiment, args)
    with sigterm_cancels() as terminated:
        try:
            return await run_into_folder(experiment, args)
        except asyncio.CancelledError:
            if terminated():
                return SIGTERM_EXIT
            raise


async def run_into_folder(experiment: Experiment, args: argparse.Namespace) -> int:
    final, summary = await run_to_folder(experiment, args)
    print(summary.as_text())
    print(f"\nresults: {final}")
    return 0 if summary.ok else 1


async def run_to_folder(experiment: Experiment, args: argparse.Namespace) -> tuple[Path, Summary]:
    """Run, write the results folder, and return it with the run's summary."""
    folder = ResultsFolder(args.out, experiment.name)
    progress = Progress()
    cluster: dict[str, Any] = {}
    try:
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        began = time.monotonic()
        # The history goes to its file as the run hands it on: a run never holds it.
        name = HISTORY_NAMES[1] if args.gzip_history else HISTORY_NAMES[0]
        with HistoryWriter(folder.partial / name) as history:
            if args.engine == "sim":
                from edgekv.sim.loop import in_virtual_time

                outcome = await in_virtual_time(
                    lambda: experiment.run(args, progress, history.append)
                )
            else:
                outcome = await experiment.run(args, progress, history.append)
        facts, cluster, driver = outcome
        driver = driver | speed(history.count, time.monotonic() - began)
        progress.finish()
        record = RunRecord(
            experiment=experiment.name,
            options=options_of(args),
            seed=args.seed,
            git_commit=git_commit(),
            started_at=started_at,
            cluster=cluster,
            facts=facts,
            driver=driver,
            engine=args.engine,
        )
        (folder.partial / RUN_FILE).write_text(record.to_json(), encoding="utf-8")
        summary = derive(experiment, folder.partial)
        final = folder.complete()
    except BaseException:
        progress.finish()
        folder.discard()
        # Failing after the workload ended: its namespaces on a running cluster go too.
        if cluster and not cluster.get("fresh", True):
            await remove_namespaces(str(cluster["central"]), list(cluster.get("namespaces", [])))
        raise
    return final, summary


def speed(ops: int, real_s: float) -> dict[str, float]:
    """How fast the run went: its operations per real second (run.json's driver)."""
    return {"real_s": round(real_s, 3), "ops_per_real_s": round(ops / max(real_s, 1e-9), 1)}


def derive(experiment: Experiment, run_dir: Path) -> Summary:
    """Summary, CSVs, plots and report from run.json and history.jsonl alone."""
    run_file = run_dir / RUN_FILE
    try:
        record = RunRecord.from_json(run_file.read_text(encoding="utf-8"))
    except MalformedRecord as exc:
        raise MalformedRecord(f"{run_file}: not a run.json edgekv can read ({exc})") from None
    path = history_file(run_dir)
    if path is None:
        raise MalformedRecord(f"{run_dir}: no {' or '.join(HISTORY_NAMES)}")
    history = History(path)  # read afresh on every pass, never held here
    summary = experiment.summarise(record, history)
    plots = experiment.draw(record, history, summary, run_dir)
    write_derived(run_dir, summary, plots)
    return summary


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    skipped = {"run", "command", "experiment"}
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in vars(args).items()
        if name not in skipped and not callable(value)
    }


# Real seconds a call may spend in processes and sockets on a loaded machine;
# a bound in simulated time allows this much, times the time scale.
PROCESSING_REAL_S = 0.05


def allowance_s(record: RunRecord) -> dict[str, float]:
    """Per region, what a visibility bound adds to the cacheTtl.

    The modelled RTT, a generous tail of its jitter (ten means of the
    exponential), and the real time a call spends in processes and sockets,
    which a time scale stretches into simulated time.
    """
    scale = float(record.cluster.get("time_scale", 1.0))
    # On virtual time a call spends no time in processes and sockets.
    processing_s = 0.0 if record.engine == "sim" else PROCESSING_REAL_S * scale
    return {
        region: (float(info["rtt_ms"]) + 10 * float(info["jitter_ms"])) / 1000 + processing_s
        for region, info in record.cluster.get("regions", {}).items()
    }


def own_writes_check(
    result: checkers.CheckResult,
    record: RunRecord,
    writers: Collection[str],
    readers: Collection[str],
) -> checkers.CheckResult:
    """Read-your-writes' ``result``, optional when this workload gives it nothing to examine."""
    optional = read_your_writes_optional(record, writers, readers)
    return result if optional is None else result.optional(optional)


def read_your_writes_optional(
    record: RunRecord, writers: Collection[str], readers: Collection[str]
) -> str | None:
    """Why read-your-writes may have nothing to examine in this run; None when it must.

    It examines reads that follow a write made through the same edge, so it
    needs a region that both writes and reads, through one edge.
    """
    both = [region for region in writers if region in readers]
    if not both:
        return f"writes are made only in {', '.join(writers)}, where nobody reads"
    regions = record.cluster.get("regions", {})
    if all(len(regions.get(region, {}).get("edges", [None])) > 1 for region in both):
        return (
            "each region's sessions are spread over its several edges, so no read need "
            "follow a write made through its own edge"
        )
    return None


def rtt_s(record: RunRecord) -> dict[str, float]:
    return {
        region: float(info["rtt_ms"]) / 1000
        for region, info in record.cluster.get("regions", {}).items()
    }


def parse_list(text: str, flag: str, kind: type[float] | type[int] = float) -> list[Any]:
    """``30,60,120`` → [30, 60, 120], or a clear error naming the flag."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag}: give at least one value")
    return values
