"""A write refused with 429 (one write per second per key): who retries it, and who does not.

A Worker sees the 429 (``RateLimitedError``): so do ``edgekv.Client()`` by
default and the Workers-style bindings, always. ``Client(retry_rate_limited=True)``
(what ``edgekv kv`` uses) waits at least a second, with jitter, and writes again.
Central runs in this process on a real socket with a real-time clock: the rule
is about real seconds here, and a retry waits one (no TTL is waited for).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import edgekv
from central.server import CentralServer, start_central
from edgekv.clock import ScaledClock
from edgekv.core.errors import ErrorKind, RateLimitedError


@pytest.fixture
async def central() -> AsyncIterator[CentralServer]:
    server = await start_central("127.0.0.1:0", "memory:", ScaledClock())
    yield server
    await server.stop(grace_s=0)


@pytest.fixture
async def namespace_id(central: CentralServer) -> str:
    async with edgekv.Client(central=central.address) as client:
        return (await client.create_namespace("rate-limited")).id


async def test_by_default_a_429_reaches_the_caller_at_once(
    central: CentralServer, namespace_id: str
) -> None:
    async with edgekv.Client(central=central.address) as client:
        kv = client.namespace(namespace_id)
        await kv.put("k", "first")
        started = time.monotonic()
        with pytest.raises(RateLimitedError, match="KV PUT failed: 429 Too Many Requests") as info:
            await kv.put("k", "second")
        assert info.value.kind is ErrorKind.WRITE_RATE_LIMITED
        assert time.monotonic() - started < 1.0, "not retried"
        assert await kv.get("k") == "first"


async def test_retry_rate_limited_writes_again_after_a_second(
    central: CentralServer, namespace_id: str
) -> None:
    async with edgekv.Client(central=central.address, retry_rate_limited=True) as client:
        kv = client.namespace(namespace_id)
        await kv.put("k", "first")
        started = time.monotonic()
        await kv.put("k", "second")
        waited_s = time.monotonic() - started
        assert waited_s >= 1.0, "the rule is one write per second: no retry comes sooner"
        assert await kv.get("k") == "second"

        await kv.delete("k")  # also within a second of the last write
        assert await kv.get("k") is None


async def test_retry_rate_limited_bulk_writes_again_only_the_refused_entries(
    central: CentralServer, namespace_id: str
) -> None:
    async with edgekv.Client(central=central.address, retry_rate_limited=True) as client:
        kv = client.namespace(namespace_id)
        await kv.bulk_put([{"key": "a", "value": "1"}])
        # "a" was written just now; "b" is new; "c" twice in one request (the second is refused).
        result = await kv.bulk_put(
            [
                {"key": "a", "value": "2"},
                {"key": "b", "value": "2"},
                {"key": "c", "value": "1"},
                {"key": "c", "value": "2"},
            ]
        )
        assert result.successful_key_count == 4 and not result.unsuccessful_keys
        assert [r.key for r in result.results] == ["a", "b", "c", "c"]
        assert await kv.get(["a", "b", "c"]) == {"a": "2", "b": "2", "c": "2"}

        deleted = await kv.bulk_delete(["a", "b", "c"])
        assert deleted.successful_key_count == 3
        assert await kv.get(["a", "b", "c"]) == {"a": None, "b": None, "c": None}


async def test_without_retry_a_bulk_write_reports_the_refused_entries(
    central: CentralServer, namespace_id: str
) -> None:
    async with edgekv.Client(central=central.address) as client:
        kv = client.namespace(namespace_id)
        result = await kv.bulk_put([{"key": "c", "value": "1"}, {"key": "c", "value": "2"}])
        assert result.successful_key_count == 1
        assert result.results[1].error_kind == "WRITE_RATE_LIMITED"
        assert await kv.get("c") == "1"


async def test_bindings_never_retry_a_429(
    central: CentralServer, namespace_id: str, tmp_path: Path
) -> None:
    config = tmp_path / "wrangler.toml"
    config.write_text(f'[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{namespace_id}"\n')
    async with await edgekv.bindings(config, central=central.address) as env:
        assert env.client.retry_rate_limited is False
        await env.MY_KV.put("k", "first")
        started = time.monotonic()
        with pytest.raises(RateLimitedError):
            await env.MY_KV.put("k", "second")
        assert time.monotonic() - started < 1.0
