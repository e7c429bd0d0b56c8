"""Bounded retries with exponential backoff and seeded jitter — the one way edgekv retries.

Theory of operation: tenacity does the looping; this module fixes how it is
configured, so that no retry in edgekv uses tenacity's defaults: the number
of attempts is bounded, the wait before attempt n is drawn uniformly from
[0, min(max, initial * 2^(n-1))] ("full jitter") with the caller's seeded
RNG, and the sleep is the caller's (an edge sleeps on its simulated clock).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import tenacity


def retrying(
    *,
    attempts: int,
    initial_backoff_s: float,
    max_backoff_s: float,
    rng: random.Random,
    should_retry: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tenacity.AsyncRetrying:
    def full_jitter_s(state: tenacity.RetryCallState) -> float:
        ceiling_s = initial_backoff_s * 2 ** (state.attempt_number - 1)
        return rng.uniform(0.0, min(max_backoff_s, ceiling_s))

    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=full_jitter_s,
        retry=tenacity.retry_if_exception(should_retry),
        sleep=sleep,
        reraise=True,
    )
