"""Clocks: how a node reads simulated time and waits on it.

Theory of operation: every part of a node — central's service, an edge's
cache policy, its link, its retries, its watchers — takes a :class:`Clock`
and asks it for ``now()`` (simulated Unix seconds) and to ``sleep()``
(simulated seconds); none reads the host's clock. Tools that measure the
host itself (the launcher's start-up time-outs, the load generator, the
benchmarks' latencies) read ``time.monotonic`` directly, on purpose.

* :class:`ScaledClock` runs ``scale`` times faster than real time around an
  ``anchor``: ``now = anchor + (real_now - anchor) * scale``. All nodes of a
  cluster get the same anchor, so their clocks agree. Scale 1 is real time.
* :class:`ManualClock` moves only when a test calls :meth:`ManualClock.advance`;
  sleepers wake when the clock passes their deadline. Tests use it so that no
  test ever waits for a TTL in real time.
* :class:`LoopClock` is the event loop's own clock around an ``anchor``:
  ``now = anchor + loop.time()``. On the simulation's virtual-time loop
  (:mod:`edgekv.sim.loop`) that is virtual time, and a sleep is a jump.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import Protocol

from edgekv.core.errors import UsageError


class Clock(Protocol):
    def now(self) -> float:
        """Simulated Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time."""
        ...

    def real_seconds(self, seconds: float) -> float:
        """How many real seconds ``seconds`` of simulated time take."""
        ...


# Simulated time runs as fast as real time unless a node, a topology or a state file says.
DEFAULT_TIME_SCALE = 1.0


def valid_time_scale(scale: float, name: str = "time scale") -> float:
    """``scale`` if it is a positive, finite number; else a UsageError naming ``name``."""
    if not 0 < scale < math.inf:
        raise UsageError(f"{name} must be a positive number, got {scale:g}")
    return scale


class ScaledClock:
    def __init__(self, scale: float = DEFAULT_TIME_SCALE, anchor: float | None = None) -> None:
        valid_time_scale(scale)
        if anchor is not None and not math.isfinite(anchor):
            raise UsageError(f"time anchor must be a Unix time, got {anchor}")
        self.scale = scale
        self.anchor = time.time() if anchor is None else anchor

    def now(self) -> float:
        return self.anchor + (time.time() - self.anchor) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def real_seconds(self, seconds: float) -> float:
        return seconds / self.scale


class ManualClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()

    def now(self) -> float:
        return self._now

    def set(self, now: float) -> None:
        self.advance(now - self._now)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._tiebreak), waiter))
        await waiter

    def real_seconds(self, seconds: float) -> float:
        return 0.0


# Where a simulation's virtual time begins: 2024-01-01T00:00:00Z, fixed so that a
# seed replays every timestamp (expirations, commit times) to the byte.
SIMULATION_EPOCH = 1_704_067_200.0


class LoopClock:
    """The running event loop's clock, as Unix seconds from ``anchor`` (see the module).

    Its scale is 1: one simulated second is one second of the loop's clock,
    so deadlines taken from the loop and times taken from this clock agree.
    """

    scale = 1.0

    def __init__(self, anchor: float = SIMULATION_EPOCH) -> None:
        self.anchor = anchor
        # The loop it reads, found at the first reading: every node asks often.
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self.anchor + self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def real_seconds(self, seconds: float) -> float:
        return seconds
