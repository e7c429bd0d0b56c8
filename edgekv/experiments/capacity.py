"""Will a run fit in memory? Estimates made before the work that would need it.

Theory of operation: a run holds its history in memory — one
:class:`~edgekv.experiments.history.Op` per operation while it runs, and
another while the summary is derived from the file (the plan itself is drawn
lazily) — and, on the simulation engine, the whole cluster too: every edge's
bookkeeping and cached copies, and central's keys. :func:`estimate_bytes`
adds these up from the streams (the expected number of Poisson arrivals is
the rate times the window) with per-item costs measured on CPython 3.11 (see
benchmarks/README.md, "Simulation"); :func:`refuse_unless_it_fits` compares
the estimate with the memory the host has available and refuses — before the
workload is planned or the cluster filled — with the estimate and what it is
made of, in one line. A cluster of processes is checked before any starts:
:func:`refuse_unless_processes_fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekv.core.errors import UsageError
from edgekv.experiments.workload import Stream

GiB = 1024**3
# Measured (resident bytes per item, rounded up): the interpreter with edgekv,
# grpc, protobuf and numpy loaded; one planned operation and its history record;
# one simulated edge with empty caches; one key at central; one cached copy.
BASE_BYTES = 160 * 1024**2
OPERATION_BYTES = 1000  # two Ops of about 460 B each: the run's, and the summary's read-back
EDGE_BYTES = 20 * 1024
# A node process of a cluster, idle (central and edges measured at 55-62 MiB RSS).
NODE_PROCESS_BYTES = 70 * 1024**2
CENTRAL_KEY_BYTES = 400
CACHED_COPY_BYTES = 600


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    operations: int
    edges: int
    keys: int
    total_bytes: int

    def describe(self) -> str:
        parts = [f"{self.operations:,} operations of plan and history"]
        if self.edges:
            parts.append(f"{self.edges:,} simulated edges caching up to {self.keys:,} keys each")
        return f"about {self.total_bytes / GiB:.1f} GiB ({', '.join(parts)})"


def estimate_bytes(
    streams: Sequence[Stream], simulated_edges: int, histories_held: int = 1
) -> MemoryEstimate:
    """What a run of ``streams`` holds at its peak; edges count only when simulated.

    ``histories_held``: how many such workloads' histories are in memory by the
    end (an experiment that runs several, one after another, keeps them all)."""
    operations = round(sum(stream.expected_operations for stream in streams)) * histories_held
    keys = sum(count for _, count in dict.fromkeys((s.group, s.keys.count) for s in streams))
    total = BASE_BYTES + operations * OPERATION_BYTES
    if simulated_edges:
        # An edge caches at most every key it reads, and at most one copy per read.
        copies = min(keys, operations) * simulated_edges
        total += simulated_edges * EDGE_BYTES + keys * CENTRAL_KEY_BYTES
        total += min(copies, operations) * CACHED_COPY_BYTES
    return MemoryEstimate(operations, simulated_edges, keys, total)


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
) -> MemoryEstimate:
    """The estimate, or a UsageError when it exceeds the memory available."""
    estimate = estimate_bytes(streams, simulated_edges, histories_held)
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
