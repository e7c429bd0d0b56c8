"""Will a run fit in memory? Estimates made before the work that would need it.

Theory of operation: a run never holds its history — each operation goes to
the history file as it is handed on, and the plan is drawn lazily — but it
holds its keys (the setup's writes until the run begins, central's copy),
and on the simulation engine the whole cluster: every edge's bookkeeping and
cached copies (at most one per read, and at most what ``cache_max_bytes``
holds). Deriving the summary then reads the file back: an experiment whose
summary lists the history holds one operation per line of it
(``histories_held``), and the staleness experiment, which passes over it,
holds at most a small state per read (monotonic reads' newest read per
session and key) and per write (every acknowledged write's revision and
commit time, which the run's in-order hand-on keeps too).
:func:`estimate_bytes` adds these up from the streams (the expected number
of Poisson arrivals is the rate times the window) with
per-item costs measured on CPython 3.11 (see benchmarks/README.md,
"Simulation"); :func:`refuse_unless_it_fits` compares the estimate with the
memory the host has available and refuses — before the workload is planned
or the cluster filled — with the estimate and what it is made of, in one
line. A cluster of processes is checked before any starts:
:func:`refuse_unless_processes_fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekv.core.cache import ENTRY_OVERHEAD_BYTES
from edgekv.core.errors import UsageError
from edgekv.experiments.workload import Stream

GiB = 1024**3
# Measured (resident bytes per item, rounded up): the interpreter with edgekv,
# grpc, protobuf and numpy loaded; one operation read back from a history; one
# read's share of a streamed summary's state; one key's setup write (planned and
# recorded); one simulated edge with empty caches; one key at central; one cached copy.
BASE_BYTES = 160 * 1024**2
HELD_OPERATION_BYTES = 500
STREAMED_READ_BYTES = 100
STREAMED_WRITE_BYTES = 300  # kept twice: by the run's in-order hand-on and by the summary
SETUP_KEY_BYTES = 700
EDGE_BYTES = 20 * 1024
# A node process of a cluster, idle (central and edges measured at 55-62 MiB RSS).
NODE_PROCESS_BYTES = 70 * 1024**2
CENTRAL_KEY_BYTES = 400
CACHED_COPY_BYTES = 600


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    operations: int
    # Operations held whole by the end (a summary that lists its history); 0 when streamed.
    held: int
    edges: int
    keys: int
    total_bytes: int

    def describe(self) -> str:
        parts = [
            f"{self.held:,} operations of history read back"
            if self.held
            else f"{self.operations:,} operations streamed through"
        ]
        parts.append(f"{self.keys:,} keys")
        if self.edges:
            parts.append(f"{self.edges:,} simulated edges and their cached copies")
        return f"about {self.total_bytes / GiB:.1f} GiB ({', '.join(parts)})"


def estimate_bytes(
    streams: Sequence[Stream],
    simulated_edges: int,
    histories_held: int = 1,
    edge_cache_bytes: int | None = None,
) -> MemoryEstimate:
    """What a run of ``streams`` holds at its peak; edges count only when simulated.

    ``histories_held``: how many such workloads' histories its summary holds
    whole (an experiment that runs several, one after another, lists them all);
    0 for a summary that streams. ``edge_cache_bytes``: each edge's cache size."""
    operations = round(sum(stream.expected_operations for stream in streams))
    reads = round(sum(s.expected_operations for s in streams if s.kind == "read"))
    writes = operations - reads
    keys = sum(count for _, count in dict.fromkeys((s.group, s.keys.count) for s in streams))
    held = operations * histories_held
    total = BASE_BYTES + keys * SETUP_KEY_BYTES
    if held:
        total += held * HELD_OPERATION_BYTES
    else:
        total += reads * STREAMED_READ_BYTES + writes * STREAMED_WRITE_BYTES
    if simulated_edges:
        # An edge caches at most every key it reads, at most one copy per read, and at
        # most what its cache holds (each copy counts its overhead beside its bytes).
        copies = min(min(keys, operations) * simulated_edges, operations)
        if edge_cache_bytes is not None:
            copies = min(copies, simulated_edges * (edge_cache_bytes // ENTRY_OVERHEAD_BYTES))
        total += simulated_edges * EDGE_BYTES + keys * CENTRAL_KEY_BYTES
        total += copies * CACHED_COPY_BYTES
    return MemoryEstimate(operations, held, simulated_edges, keys, total)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def refuse_unless_it_fits(
    streams: Sequence[Stream],
    simulated_edges: int,
    available: int | None = None,
    histories_held: int = 1,
    edge_cache_bytes: int | None = None,
) -> MemoryEstimate:
    """The estimate, or a UsageError when it exceeds the memory available."""
    estimate = estimate_bytes(streams, simulated_edges, histories_held, edge_cache_bytes)
    free = available_bytes() if available is None else available
    if free is not None and estimate.total_bytes > free:
        raise UsageError(
            f"this run would hold {estimate.describe()} in memory, more than the "
            f"{free / GiB:.1f} GiB available; shorten --duration, lower the rates, "
            "or use fewer keys or regions"
        )
    return estimate


def refuse_unless_processes_fit(nodes: int, available: int | None = None) -> None:
    """A UsageError, before any starts, when ``nodes`` node processes would not fit."""
    need = BASE_BYTES + nodes * NODE_PROCESS_BYTES
    free = available_bytes() if available is None else available
    if free is not None and need > free:
        raise UsageError(
            f"a cluster of {nodes:,} node processes would hold about {need / GiB:.1f} GiB, more "
            f"than the {free / GiB:.1f} GiB available; use fewer regions or edges, or "
            "--engine sim"
        )
