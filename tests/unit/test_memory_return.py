"""Giving freed memory back: trims happen past the threshold, in a thread that exists from start."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edgekv.memory import FreedMemoryReturn, malloc_free_bytes

pytestmark = pytest.mark.skipif(malloc_free_bytes() is None, reason="needs glibc's malloc_trim")


async def test_trimming_starts_no_thread_after_the_node_has_started() -> None:
    # A soak watches each node's threads for leaks: a thread started lazily at the
    # first trim (as asyncio.to_thread's default executor does) looks like one.
    returner = FreedMemoryReturn(threshold_bytes=0, interval_s=0.01)
    returner.start()
    try:
        at_start = {thread.ident for thread in threading.enumerate()}
        await asyncio.sleep(0.2)  # about twenty rounds, each past the threshold
        assert returner.trims >= 3
        assert {thread.ident for thread in threading.enumerate()} == at_start
    finally:
        await returner.stop()


async def test_a_node_that_holds_little_free_never_trims() -> None:
    returner = FreedMemoryReturn(threshold_bytes=1 << 60, interval_s=0.01)
    returner.start()
    try:
        await asyncio.sleep(0.1)
        assert returner.trims == 0
    finally:
        await returner.stop()
