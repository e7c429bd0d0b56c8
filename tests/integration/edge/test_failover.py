"""Failover within the caller's deadline: central stopped (SIGSTOP), a read still answers in time.

A stopped process keeps its sockets open: calls to it neither fail nor finish,
they hang. An edge that gave each attempt a fixed deadline (three attempts of
5 s) served its STALE copy only after 15 s, long after a caller with a 3 s
deadline had given up. The edge now budgets its attempts by what is left of
the caller's deadline, so the caller gets STALE (a copy it may serve) or
UNAVAILABLE (none) before its own deadline passes.

Central and the edge are real processes sharing one time line, 100 times
faster than real time: a copy read with cacheTtl 30 s is stale after 0.3 real
seconds, and stays servable for --max-stale-s 3600 (36 real seconds).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekv
from edgekv.client import RetryPolicy
from edgekv.core.errors import ErrorKind
from tests.support.central_process import CentralLauncher, CentralProcess
from tests.support.edge_process import EdgeLauncher, EdgeProcess

pytestmark = pytest.mark.slow

TIME_SCALE = 100.0
CACHE_TTL_S = 30
CALLER_DEADLINE_S = 3.0


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[CentralProcess, EdgeProcess]]:
    time_flags = ["--time-scale", str(TIME_SCALE), "--time-anchor", repr(time.time())]
    with CentralLauncher(tmp_path) as centrals, EdgeLauncher(tmp_path) as edges:
        central = centrals.start("memory:", time_flags)
        edge = edges.start(central.address, "eu-west", ["--max-stale-s", "3600", *time_flags])
        try:
            yield central, edge
        finally:
            os.kill(central.pid, signal.SIGCONT)


async def timed_read(kv: edgekv.KVNamespace, key: str) -> tuple[float, object]:
    """(seconds the read took, its result or the error it raised)."""
    started = time.monotonic()
    try:
        result: object = await kv.get_with_metadata(key, cache_ttl=CACHE_TTL_S)
    except edgekv.KVError as exc:
        result = exc
    return time.monotonic() - started, result


async def test_a_stopped_central_gives_stale_or_unavailable_within_the_callers_deadline(
    nodes: tuple[CentralProcess, EdgeProcess],
) -> None:
    central, edge = nodes
    async with edgekv.Client(central=central.address) as admin:
        namespace = (await admin.create_namespace("failover")).id
        await admin.namespace(namespace).put("cached", "v1")
    # One call with the caller's deadline: the client's own read retries stay out of it.
    async with edgekv.Client(
        edge=edge.address, timeout_s=CALLER_DEADLINE_S, retry=RetryPolicy.NONE
    ) as client:
        kv = client.namespace(namespace)
        assert (await kv.get_with_metadata("cached", cache_ttl=CACHE_TTL_S)).cache_status == "MISS"

        os.kill(central.pid, signal.SIGSTOP)
        await asyncio.sleep(1.5 * CACHE_TTL_S / TIME_SCALE)  # the copy is no longer fresh

        took_s, stale = await timed_read(kv, "cached")
        assert isinstance(stale, edgekv.ValueWithMetadata), f"after {took_s:.2f} s: {stale!r}"
        assert (stale.value, stale.cache_status) == ("v1", "STALE")
        assert took_s < 0.95 * CALLER_DEADLINE_S, f"STALE after {took_s:.2f} s"

        took_s, refused = await timed_read(kv, "never-cached")
        assert isinstance(refused, edgekv.UnavailableError), f"after {took_s:.2f} s: {refused!r}"
        assert refused.kind is ErrorKind.UNAVAILABLE, refused.message
        assert "cannot reach the central store and has no copy it may serve" in refused.message
        assert took_s < 0.95 * CALLER_DEADLINE_S, f"UNAVAILABLE after {took_s:.2f} s"
