"""Seeded, open-loop workloads: what to send, where and when, planned in advance.

Theory of operation: a workload is a list of :class:`Planned` operations,
each with the simulated time (seconds since the run began) at which it is
due. Arrivals are Poisson: the gaps are exponential, drawn from the injected,
seeded :class:`random.Random`, so a seed replays the same plan. A stream of
rate Λ whose every arrival picks a key with probability p_k is the same as
independent Poisson streams of rate Λ·p_k per key, which is what the theory
assumes. Each region's arrivals are spread over its sessions, and every
session keeps to one edge. Because the plan exists before the run, arrivals
cannot wait for answers: the driver sends each one when it is due (open loop).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
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


class KeyPicker:
    """Picks keys by popularity with one uniform draw (inverse CDF)."""

    def __init__(self, keys: KeySpace, rng: random.Random) -> None:
        self._names = keys.names
        self._cumulative = list(itertools.accumulate(keys.weights))
        self._rng = rng

    def pick(self) -> str:
        index = bisect.bisect_left(self._cumulative, self._rng.random() * self._cumulative[-1])
        return self._names[min(index, len(self._names) - 1)]


def poisson_arrivals(
    rng: random.Random, rate_per_s: float, start_s: float, end_s: float
) -> list[float]:
    """Arrival times of a Poisson process of ``rate_per_s`` in [start_s, end_s)."""
    if rate_per_s < 0:
        raise ValueError(f"a rate cannot be negative, got {rate_per_s}")
    times: list[float] = []
    if rate_per_s == 0:
        return times
    at_s = start_s + rng.expovariate(rate_per_s)
    while at_s < end_s:
        times.append(at_s)
        at_s += rng.expovariate(rate_per_s)
    return times


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

    def plan(self, rng: random.Random) -> list[Planned]:
        picker = KeyPicker(self.keys, rng)
        prefix = f"{self.group}/{self.region}/{self.kind[0]}"
        return [
            Planned(
                at_s,
                self.kind,
                self.region,
                f"{prefix}{rng.randrange(self.sessions)}",
                picker.pick(),
                self.group,
                self.cache_ttl_s,
                self.value_bytes,
            )
            for at_s in poisson_arrivals(rng, self.rate_per_s, self.start_s, self.end_s)
        ]


def plan(streams: Sequence[Stream], seed: int) -> list[Planned]:
    """Every stream's operations, merged in time order.

    Each stream draws from its own generator seeded from ``seed`` and its
    position, so adding a stream does not change the others' arrivals.
    """
    planned: list[Planned] = []
    for index, stream in enumerate(streams):
        planned.extend(stream.plan(random.Random(f"{seed}/{index}")))
    planned.sort(key=lambda op: op.at_s)
    return planned
