"""What a back-end's group commit did: how long each transaction took, how much it held.

Theory of operation: a back-end that commits writes in groups (SQLite's
writer thread, Redis's pipelines) records each storage transaction once,
after it ends: its real duration in seconds, the number of callers' groups it
held and the number of writes. :class:`Histogram` is Prometheus's cumulative
histogram reduced to what a hot path may afford — a bisect and three
increments, no allocation — read by the central's metrics when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# A group commit's fsync: from a page cache's microseconds to a slow disk's seconds.
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Writes (or callers' groups) in one transaction: 1 alone, more when many wait.
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10_000)


class Histogram:
    """Observations counted into buckets by upper bound (``le``), with their sum."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, observations <= le), ..., ("+Inf", all)]``, as Prometheus exposes them."""
        counts = list(self.counts)  # one copy: the event loop's thread goes on counting
        buckets, total = [], 0
        for bound, count in zip((*map(_le, self.bounds), "+Inf"), counts, strict=True):
            total += count
            buckets.append((bound, total))
        return buckets


def _le(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


class CommitStats:
    """One back-end's storage transactions: seconds, callers' groups and writes in each."""

    def __init__(self) -> None:
        self.seconds = Histogram(SECONDS_BUCKETS)
        self.groups = Histogram(COUNT_BUCKETS)
        self.writes = Histogram(COUNT_BUCKETS)

    def record(self, groups: int, writes: int, seconds: float) -> None:
        self.seconds.observe(seconds)
        self.groups.observe(groups)
        self.writes.observe(writes)
