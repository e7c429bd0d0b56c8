"""A watcher that stops reading costs central a bounded amount of memory, then is cut.

Central keeps each watcher's backlog of changes not yet sent; with
``include_values`` every change carries its value. A watcher that stops
reading used to make central keep every value written (+621 MiB for 600 MiB
written). The backlog is now bounded in bytes as well as in changes: past
64 MiB the watcher's stream ends with WATCH_LAGGING, naming the revision to
resume from, and what it held is let go. Central is a real process (its
resident memory is what is measured) over SQLite, writing over a few keys so
that storage holds little.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekv
from edgekv.bench.servers import process_memory
from tests.support.central_process import CentralLauncher, CentralProcess

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
VALUE_BYTES = 1 * MiB
WRITTEN_BYTES = 600 * MiB
KEYS = 16
STALLED_WATCHER_BOUND_BYTES = 64 * MiB


@pytest.fixture
def central(tmp_path: Path) -> Iterator[CentralProcess]:
    with CentralLauncher(tmp_path) as launcher:
        yield launcher.start(f"sqlite:{tmp_path / 'central.db'}", ["--no-write-rate-limit"])


def rss_bytes(pid: int) -> int:
    return process_memory(pid)["VmRSS"]


async def write_values(kv: edgekv.KVNamespace, total_bytes: int) -> int:
    """Write ``total_bytes`` of 1 MiB values over a few keys, 8 at a time; the last revision."""
    last = 0
    for start in range(0, total_bytes // VALUE_BYTES, 8):
        written = await asyncio.gather(
            *(
                kv.put(f"k{n % KEYS}", bytes([n % 256]) * VALUE_BYTES)
                for n in range(start, start + 8)
            )
        )
        last = max(w.revision for w in written)
    return last


async def test_a_stalled_watcher_with_values_costs_central_at_most_64_mib(
    central: CentralProcess,
) -> None:
    async with edgekv.Client(central=central.address) as client:
        kv = client.namespace((await client.create_namespace("stalled")).id)
        await write_values(kv, 32 * MiB)  # warm up: central's own buffers for 1 MiB values
        stalled = await kv.watch(include_values=True)
        before = rss_bytes(central.pid)

        last_revision = await write_values(kv, WRITTEN_BYTES)
        await asyncio.sleep(3)  # what central lets go, it may give back meanwhile
        grown = rss_bytes(central.pid) - before

        assert grown <= STALLED_WATCHER_BOUND_BYTES, (
            f"central grew by {grown / MiB:.0f} MiB for a watcher that read nothing"
        )
        with pytest.raises(edgekv.WatchError) as cut:
            async for _ in stalled:
                pass
        assert cut.value.kind is edgekv.ErrorKind.WATCH_LAGGING
        assert "resume with start_revision=" in cut.value.message
        resume = int(cut.value.message.rpartition("=")[2].rstrip("."))
        assert 0 < resume <= last_revision
