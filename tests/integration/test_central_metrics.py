"""Central's Prometheus endpoint, scraped from a real central after real calls.

``edgekv central --metrics-listen HOST:PORT`` serves /metrics: calls by
method and final status (counted at the error boundary, refusals included),
the group commit's latency and batch sizes, the watchers and the bytes they
are behind, and the requests the storage failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import edgekv
from central.server import CentralServer, start_central
from edgekv.clock import ManualClock
from tests.support.central_process import start_central as start_central_process
from tests.support.metrics import scrape
from tests.support.redis_server import free_port

CENTRAL = 'service="edgekv.v1.CentralStore"'
KiB = 1024


def calls(samples: dict[str, dict[str, float]], method: str, status: str) -> float:
    series = samples.get("edgekv_central_requests_total", {})
    return series.get(f'method="{method}",{CENTRAL},status="{status}"', 0.0)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[CentralServer, int]]:
    port = free_port()
    server = await start_central(
        "127.0.0.1:0",
        f"sqlite:{tmp_path / 'central.db'}",
        ManualClock(),
        metrics_listen=f"127.0.0.1:{port}",
    )
    try:
        yield server, port
    finally:
        await server.stop(grace_s=0)


async def test_calls_by_method_and_status_and_the_group_commit(
    served: tuple[CentralServer, int],
) -> None:
    server, port = served
    before = await scrape(port)
    assert before["edgekv_central_watchers"] == {"": 0.0}
    assert before["edgekv_central_storage_errors_total"] == {"": 0.0}
    async with edgekv.Client(central=server.address) as client:
        namespace = await client.create_namespace("metrics")
        kv = client.namespace(namespace.id)
        await asyncio.gather(*(kv.put(f"k{i}", "v") for i in range(3)))
        assert await kv.get("k0") == "v"
        with pytest.raises(edgekv.InvalidRequestError):
            await kv.get("k" * 513)  # refused by central (an empty key, by the client)
        with pytest.raises(edgekv.NotFoundError):
            await client.namespace("f" * 32).get("k")
    after = await scrape(port)
    assert calls(after, "CreateNamespace", "OK") == 1
    assert calls(after, "Put", "OK") == 3
    assert calls(after, "Get", "OK") == 1
    assert calls(after, "Get", "INVALID_ARGUMENT") == 1
    assert calls(after, "Get", "NOT_FOUND") == 1
    commits = after["edgekv_central_commit_seconds_count"][""]
    assert 1 <= commits <= 3, "three puts, committed in one to three transactions"
    assert after["edgekv_central_commit_seconds_bucket"]['le="+Inf"'] == commits
    assert after["edgekv_central_commit_seconds_sum"][""] > 0
    assert after["edgekv_central_commit_batch_writes_sum"][""] == 3
    assert after["edgekv_central_commit_batch_writes_count"][""] == commits
    assert after["edgekv_central_storage_errors_total"] == {"": 0.0}


async def test_watchers_and_the_bytes_they_are_behind(served: tuple[CentralServer, int]) -> None:
    server, port = served
    async with edgekv.Client(central=server.address) as client:
        namespace = await client.create_namespace("watched")
        kv = client.namespace(namespace.id)
        # A watcher that reads nothing: once the stream's window is full, changes queue
        # in its backlog at central.
        stream = await kv.watch(include_values=True)
        try:
            deadline = time.monotonic() + 10
            written = 0
            while True:
                samples = await scrape(port)
                assert samples["edgekv_central_watchers"] == {"": 1.0}
                if samples["edgekv_central_watch_backlog_bytes"][""] >= 256 * KiB:
                    break
                assert time.monotonic() < deadline, "no backlog after writing 10 s"
                await kv.put(f"big-{written}", b"x" * (256 * KiB))
                written += 1
        finally:
            stream.close()

        async def gone() -> bool:
            return (await scrape(port))["edgekv_central_watchers"] == {"": 0.0}

        deadline = time.monotonic() + 5
        while not await gone():
            assert time.monotonic() < deadline, "the closed watch still counted"
            await asyncio.sleep(0.02)
    assert calls(await scrape(port), "Watch", "CANCELLED") == 1


def test_edgekv_central_serves_metrics_with_its_flag(tmp_path: Path) -> None:
    port = free_port()
    extra = ["--metrics-listen", f"127.0.0.1:{port}"]
    with start_central_process("memory:", tmp_path, extra) as central:

        async def use() -> dict[str, dict[str, float]]:
            async with edgekv.Client(central=central.address) as client:
                with pytest.raises(edgekv.InvalidRequestError):
                    await client.create_namespace(" ")
            return await scrape(port)

        samples = asyncio.run(use())
    assert calls(samples, "CreateNamespace", "INVALID_ARGUMENT") == 1
