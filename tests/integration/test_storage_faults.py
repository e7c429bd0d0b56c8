"""Storage faults under a real ``edgekv central``: nothing acknowledged is lost or hidden.

Each test provokes, for real, a fault a tester found: a write no store can hold
sent among good writes, a storage that fails (a full disk) while a namespace is
deleted, the SQLite file removed or renamed under a running central, and a
Redis that loses what it acknowledged. Central runs as a child process on real
SQLite files or a real ``redis-server``; nothing of edgekv's is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekv
from tests.support.central_process import CentralLauncher

WRITERS = 8


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[CentralLauncher]:
    with CentralLauncher(tmp_path / "logs") as launcher:
        yield launcher


# -- finding 1: one request stalled every write ------------------------------------------


async def test_a_put_that_no_store_can_hold_stalls_no_other_write(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    central = launcher.start(f"sqlite:{tmp_path / 'central.db'}", ["--no-write-rate-limit"])
    async with edgekv.Client(central.address, timeout_s=10) as client:
        busy = client.namespace((await client.create_namespace("busy")).id)
        other = client.namespace((await client.create_namespace("other")).id)
        acks_after_poison: list[int] = [0] * WRITERS
        poisoned = asyncio.Event()
        stop = asyncio.Event()

        async def write(writer: int) -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                await busy.put(f"w{writer}/{i}", "v")
                if poisoned.is_set():
                    acks_after_poison[writer] += 1

        writers = [asyncio.create_task(write(w)) for w in range(WRITERS)]
        try:
            await asyncio.sleep(0.2)
            refusals = []
            for i in range(5):
                with pytest.raises(edgekv.KVError) as caught:
                    await other.put(f"forever{i}", "v", expiration_ttl=2**63 - 1)
                refusals.append(caught.value)
                poisoned.set()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), timeout=15)
    assert all(isinstance(exc, edgekv.InvalidRequestError) for exc in refusals), refusals
    assert all(acks > 0 for acks in acks_after_poison), (
        f"writers stalled after the first refused put: acks after it {acks_after_poison}"
    )
    assert "Traceback" not in central.stderr(), central.stderr()
