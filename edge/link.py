"""The modelled network link between an edge and the central store.

Theory of operation: this machine's kernel has no ``tc netem``, so latency,
loss and partitions are modelled inside the edge, around every call it makes
to central. A call waits half a sampled round trip on the way out, runs, and
waits the other half on the way back. The round trip is ``rtt_ms`` plus a
right-skewed (exponential) jitter of mean ``jitter_ms``. With probability
``loss`` the call is lost — half the time on the way out (central never sees
it: a *definite* failure) and half the time on the way back (central did the
work but the edge never hears: not definite). While ``partitioned`` every
call fails at once. Randomness comes from the injected, seeded RNG and delays
from the injected clock, so a seed replays the same delays and losses, and a
scaled clock shrinks them with the rest of simulated time.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from edgekv.clock import Clock
from edgekv.control import LinkSettings
from edgekv.core.errors import ErrorKind, error

T = TypeVar("T")


class Link:
    def __init__(self, settings: LinkSettings, rng: random.Random, clock: Clock, node: str) -> None:
        self.settings = settings.validated()
        self._rng = rng
        self._clock = clock
        self._node = node

    def change(self, **fields: object) -> LinkSettings:
        """Change some settings at run time; the next call sees them."""
        self.settings = replace(self.settings, **fields).validated()  # type: ignore[arg-type]
        return self.settings

    def sample_round_trip_s(self) -> float:
        jitter_ms = (
            self._rng.expovariate(1.0 / self.settings.jitter_ms) if self.settings.jitter_ms else 0.0
        )
        return (self.settings.rtt_ms + jitter_ms) / 1000.0

    def check_up(self) -> None:
        if self.settings.partitioned:
            raise error(ErrorKind.LINK_DOWN, node=self._node)

    async def carry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` across the link: delayed, maybe lost, refused while partitioned."""
        self.check_up()
        round_trip_s = self.sample_round_trip_s()
        lost = self.settings.loss > 0 and self._rng.random() < self.settings.loss
        lost_on_the_way_out = lost and self._rng.random() < 0.5
        late_s = 0.0
        if round_trip_s:
            out_started = self._clock.now()
            await self._clock.sleep(round_trip_s / 2)
            # Timers wake late (asyncio rounds its wait up to the millisecond, the
            # kernel adds its wake-up latency): take the lateness off the way back,
            # so a call pays its modelled RTT plus one late wake-up, not two.
            late_s = max(0.0, self._clock.now() - out_started - round_trip_s / 2)
        if lost_on_the_way_out:
            raise error(ErrorKind.REQUEST_LOST, node=self._node)
        result = await call()
        if round_trip_s:
            await self._clock.sleep(max(0.0, round_trip_s / 2 - late_s))
        if lost:
            raise error(ErrorKind.RESPONSE_LOST, node=self._node)
        return result

    async def deliver_one_way(self) -> None:
        """Delay of a message central pushes to the edge (watch changes)."""
        round_trip_s = self.sample_round_trip_s()
        if round_trip_s:
            await self._clock.sleep(round_trip_s / 2)
