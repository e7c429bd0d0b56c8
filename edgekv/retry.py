"""Bounded retries of a call, with exponential backoff and seeded jitter.

Theory of operation: the client's reads and the edge's calls to central are
retried here (an edge's watcher re-subscribing to a broken stream is not a
retried call: it follows the stream for as long as the edge runs, with a
capped backoff of its own). tenacity does the looping; this module fixes how
it is configured, so that no retry in edgekv uses tenacity's defaults: the number
of attempts is bounded, the wait before attempt n + 1 is a floor plus a draw
from [0, min(max, initial * 2^(n-1))] ("full jitter") with the caller's seeded
RNG, and the sleep is the caller's (an edge sleeps on its simulated clock).
The floor is 0 but for waits that must outlast a rule — a write refused by
the one-write-per-second limit is retried no sooner than a second later.
A :class:`RetrySchedule` says how many attempts and how long the waits; the
client's :class:`~edgekv.client.RetryPolicy` and the edge's
:class:`~edge.upstream.RetrySettings` are schedules with what else each needs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """How many attempts a call gets, and the ceiling of the wait before each."""

    attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    # Every wait is at least this long; the jitter comes on top.
    min_backoff_s: float = 0.0


def backoff_s(schedule: RetrySchedule, failed_attempts: int, rng: random.Random) -> float:
    """The wait after ``failed_attempts`` attempts failed: the floor plus full jitter."""
    ceiling_s = schedule.initial_backoff_s * 2 ** (failed_attempts - 1)
    return schedule.min_backoff_s + rng.uniform(0.0, min(schedule.max_backoff_s, ceiling_s))


def retrying(
    schedule: RetrySchedule,
    *,
    rng: random.Random,
    should_retry: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    attempts_made: int = 0,
) -> tenacity.AsyncRetrying:
    def full_jitter_s(state: tenacity.RetryCallState) -> float:
        return backoff_s(schedule, attempts_made + state.attempt_number, rng)

    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(schedule.attempts - attempts_made),
        wait=full_jitter_s,
        retry=tenacity.retry_if_exception(should_retry),
        sleep=sleep,
        reraise=True,
    )


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    schedule: RetrySchedule,
    *,
    rng: random.Random,
    should_retry: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``await call()``, retried as :func:`retrying` says — tenacity only once a call failed.

    Nearly every call succeeds at once, and building and driving an
    ``AsyncRetrying`` costs tens of microseconds, so the first attempt runs
    bare; the same waits (and RNG draws) follow a failure as with tenacity alone.
    """
    try:
        return await call()
    except Exception as exc:
        if schedule.attempts <= 1 or not should_retry(exc):
            raise
    await sleep(backoff_s(schedule, 1, rng))
    retry = retrying(schedule, rng=rng, should_retry=should_retry, sleep=sleep, attempts_made=1)
    async for attempt in retry:
        with attempt:
            return await call()
    raise AssertionError("tenacity returns or raises")
