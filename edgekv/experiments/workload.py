"""Seeded, open-loop workloads: what to send, where and when, planned in advance.

Theory of operation: a workload is a sequence of :class:`Planned` operations,
each with the simulated time (seconds since the run began) at which it is
due. Arrivals are Poisson: the gaps are exponential, drawn from seeded
:class:`random.Random` generators, so a seed replays the same plan. A stream
of rate Λ whose every arrival picks a key with probability p_k is the same as
independent Poisson streams of rate Λ·p_k per key, which is what the theory
assumes. Each region's arrivals are spread over its sessions, and every
session keeps to one edge. Because the plan is fixed before the run, arrivals
cannot wait for answers: the driver sends each one when it is due (open loop).

The plan is made lazily (:func:`planned`): each stream yields its operations
in time order, drawing its arrival gaps from one generator and its sessions
and keys from another, and the streams are merged as the driver walks them,
so a simulated day of tens of millions of operations is never held at once.
Streams over the same keys share one table of cumulative popularity.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from edgekv.experiments.history import Kind
from edgekv.experiments.theory import key_weights


@dataclass(frozen=True, slots=True)
class Planned:
    at_s: float
    kind: Kind
    region: str
    session: str
    key: str
    group: str
    cache_ttl_s: float | None = None
    value_bytes: int = 0


@dataclass(frozen=True, slots=True)
class KeySpace:
    """``count`` keys named ``prefix0 … prefixN-1``, the first the most popular."""

    count: int
    zipf_exponent: float = 0.0
    prefix: str = "key-"

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}{index}" for index in range(self.count)]

    @property
    def weights(self) -> list[float]:
        return key_weights(self.count, self.zipf_exponent)


@functools.lru_cache(maxsize=16)
def _cumulative_weights(keys: KeySpace) -> list[float]:
    """The running sum of the keys' popularity, shared by every stream over ``keys``."""
    return list(itertools.accumulate(keys.weights))


class KeyPicker:
    """Picks keys by popularity with one uniform draw (inverse CDF)."""

    def __init__(self, keys: KeySpace, rng: random.Random) -> None:
        self._prefix = keys.prefix
        self._cumulative = _cumulative_weights(keys)
        self._rng = rng

    def pick(self) -> str:
        index = bisect.bisect_left(self._cumulative, self._rng.random() * self._cumulative[-1])
        return f"{self._prefix}{min(index, len(self._cumulative) - 1)}"


def poisson_arrivals(
    rng: random.Random, rate_per_s: float, start_s: float, end_s: float
) -> Iterator[float]:
    """Arrival times of a Poisson process of ``rate_per_s`` in [start_s, end_s), in order."""
    if rate_per_s < 0:
        raise ValueError(f"a rate cannot be negative, got {rate_per_s}")
    if rate_per_s == 0:
        return
    at_s = start_s + rng.expovariate(rate_per_s)
    while at_s < end_s:
        yield at_s
        at_s += rng.expovariate(rate_per_s)


@dataclass(frozen=True, slots=True)
class Stream:
    """Poisson operations of one kind in one region, over a window of the run."""

    kind: Kind
    region: str
    rate_per_s: float
    keys: KeySpace
    group: str
    start_s: float
    end_s: float
    sessions: int = 1
    cache_ttl_s: float | None = None
    value_bytes: int = 0

    @property
    def expected_operations(self) -> float:
        """The mean number of arrivals: rate times window."""
        return self.rate_per_s * max(0.0, self.end_s - self.start_s)

    def planned(self, arrivals: random.Random, picks: random.Random) -> Iterator[Planned]:
        """This stream's operations in time order: gaps from ``arrivals``, sessions and
        keys from ``picks``."""
        picker = KeyPicker(self.keys, picks)
        prefix = f"{self.group}/{self.region}/{self.kind[0]}"
        for at_s in poisson_arrivals(arrivals, self.rate_per_s, self.start_s, self.end_s):
            yield Planned(
                at_s,
                self.kind,
                self.region,
                f"{prefix}{picks.randrange(self.sessions)}",
                picker.pick(),
                self.group,
                self.cache_ttl_s,
                self.value_bytes,
            )


def planned(streams: Sequence[Stream], seed: int) -> Iterator[Planned]:
    """Every stream's operations, merged in time order as they are drawn.

    Each stream draws from its own generators, seeded from ``seed`` and its
    position, so adding a stream does not change the others' operations.
    """
    return heapq.merge(
        *(
            stream.planned(
                random.Random(f"{seed}/{index}/arrivals"), random.Random(f"{seed}/{index}/picks")
            )
            for index, stream in enumerate(streams)
        ),
        key=lambda op: op.at_s,
    )
