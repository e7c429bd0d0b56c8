"""The edge's cache stores: the shared contract on ``memory`` and a real Redis, then each one's own.

Redis tests never wait for an expiry: they read the TTL Redis holds (PTTL).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from edge.cache import CacheURLError, open_cache
from edge.cache.base import CacheStore, Occupancy
from edge.cache.memory import MemoryCache
from edge.cache.redis_cache import FORMAT, MAX_TTL_MS, RedisCache, decode, encode
from edgekv.clock import ManualClock, ScaledClock
from edgekv.core.cache import CachedValue
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.model import Version
from tests.support.redis_server import RedisServer, free_port, start_redis

NS = "0123456789abcdef0123456789abcdef"
OTHER_NS = "fedcba9876543210fedcba9876543210"
NOW = 1_700_000_000.123456789
MIB = 1024 * 1024
ODD_KEYS = ["plain", "a:b", "*", "[x]?", "back\\slash", "ünï😀", " "]


def found(
    key: str,
    value: bytes = b"v",
    *,
    ns: str = NS,
    metadata: str | None = None,
    expiration: int | None = None,
    revision: int = 7,
    fetched_at: float = NOW,
) -> CachedValue:
    version = Version(key, value, metadata, expiration, revision, commit_time=NOW - 0.1)
    return CachedValue(ns, key, version, fetched_at=fetched_at, fetched_at_revision=revision + 3)


def missing(key: str, *, ns: str = NS) -> CachedValue:
    return CachedValue(ns, key, None, fetched_at=NOW + 0.3, fetched_at_revision=42)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    cache: CacheStore
    if request.param == "memory":
        cache = MemoryCache(max_bytes=64 * MIB)
    else:
        url: str = request.getfixturevalue("redis_url")
        # real time: entries put with retention_s=60 live a real minute, so a
        # slow machine never sees one expire mid-test
        cache = await RedisCache.open(url, clock=ScaledClock(scale=1.0), region="eu-west")
    yield cache
    await cache.close()


# -- the shared contract ------------------------------------------------------


async def test_a_found_copy_round_trips_exactly(store: CacheStore) -> None:
    copy = found("k", b"\x00\xffbinary", metadata='{"a": [1, 2.5]}', expiration=1_700_003_600)
    await store.put(copy, retention_s=60)
    assert await store.get(NS, "k") == copy


async def test_floats_round_trip_bit_for_bit(store: CacheStore) -> None:
    copy = CachedValue(
        NS,
        "k",
        Version("k", b"v", None, None, 2**62, commit_time=0.1 + 0.2),
        fetched_at=NOW,
        fetched_at_revision=2**63 - 1,
    )
    await store.put(copy, retention_s=60)
    held = await store.get(NS, "k")
    assert held is not None and held.version is not None
    assert held.fetched_at.hex() == NOW.hex()
    assert held.version.commit_time.hex() == (0.1 + 0.2).hex()
    assert held == copy


async def test_a_negative_copy_round_trips(store: CacheStore) -> None:
    copy = missing("gone")
    await store.put(copy, retention_s=60)
    held = await store.get(NS, "gone")
    assert held == copy
    assert held is not None and held.version is None


async def test_no_metadata_and_empty_metadata_stay_apart(store: CacheStore) -> None:
    await store.put(found("none", metadata=None), retention_s=60)
    await store.put(found("empty", metadata="{}"), retention_s=60)
    await store.put(found("blank", b"", metadata=""), retention_s=60)
    none, empty, blank = [await store.get(NS, key) for key in ("none", "empty", "blank")]
    assert none is not None and none.version is not None
    assert empty is not None and empty.version is not None
    assert blank is not None and blank.version is not None
    assert none.version.metadata_json is None
    assert empty.version.metadata_json == "{}"
    assert blank.version.metadata_json == "" and blank.version.value == b""


async def test_odd_keys_are_kept_apart(store: CacheStore) -> None:
    for index, key in enumerate(ODD_KEYS):
        await store.put(found(key, str(index).encode()), retention_s=60)
    for index, key in enumerate(ODD_KEYS):
        held = await store.get(NS, key)
        assert held is not None and held.version is not None
        assert held.key == key and held.version.value == str(index).encode()
    assert await store.get(NS, "a") is None


async def test_a_25_mib_value_round_trips(store: CacheStore) -> None:
    value = bytes(range(256)) * (25 * MIB // 256)
    copy = found("big", value, metadata='{"size": "25MiB"}')
    await store.put(copy, retention_s=60)
    held = await store.get(NS, "big")
    assert held is not None and held.version is not None
    assert len(held.version.value) == 25 * MIB
    assert held == copy


async def test_a_missing_key_is_none(store: CacheStore) -> None:
    assert await store.get(NS, "never") is None
    await store.put(found("k"), retention_s=60)
    assert await store.get(OTHER_NS, "k") is None


async def test_put_replaces(store: CacheStore) -> None:
    await store.put(found("k", b"old", revision=1), retention_s=60)
    await store.put(found("k", b"new", revision=2), retention_s=60)
    held = await store.get(NS, "k")
    assert held is not None and held.version is not None
    assert held.version.value == b"new" and held.revision == 2
    await store.put(missing("k"), retention_s=60)
    assert await store.get(NS, "k") == missing("k")
    assert (await store.occupancy()).entries == 1


async def test_delete(store: CacheStore) -> None:
    await store.put(found("k"), retention_s=60)
    await store.put(found("other"), retention_s=60)
    await store.delete(NS, "k")
    await store.delete(NS, "never-there")
    assert await store.get(NS, "k") is None
    assert await store.get(NS, "other") is not None
    assert (await store.occupancy()).entries == 1


async def test_flush_one_namespace_then_all(store: CacheStore) -> None:
    for key in ODD_KEYS:
        await store.put(found(key), retention_s=60)
    await store.put(found("k", ns=OTHER_NS), retention_s=60)
    await store.put(missing("gone", ns=OTHER_NS), retention_s=60)
    assert (await store.occupancy()).entries == len(ODD_KEYS) + 2

    assert await store.flush(NS) == len(ODD_KEYS)
    assert await store.get(NS, "plain") is None
    assert await store.get(OTHER_NS, "k") is not None
    assert (await store.occupancy()).entries == 2

    assert await store.flush(NS) == 0
    assert await store.flush() == 2
    assert (await store.occupancy()).entries == 0
    assert await store.get(OTHER_NS, "gone") is None


# -- Redis ---------------------------------------------------------------------


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def opened(redis_url: str) -> AsyncIterator[list[RedisCache]]:
    """Caches a test opens; closed after it."""
    caches: list[RedisCache] = []
    yield caches
    for cache in caches:
        await cache.close()


async def open_redis(
    opened: list[RedisCache], url: str, region: str = "eu-west", **options: object
) -> RedisCache:
    clock = options.pop("clock", ScaledClock(scale=1.0))
    cache = await RedisCache.open(url, clock=clock, region=region, **options)  # type: ignore[arg-type]
    opened.append(cache)
    return cache


@pytest.mark.redis
async def test_the_key_layout_and_value_format(
    redis_url: str, raw: aioredis.Redis, opened: list[RedisCache]
) -> None:
    cache = await open_redis(opened, redis_url)
    copy = found("a:b*", b"value", metadata="{}", expiration=1_700_000_100)
    await cache.put(copy, retention_s=60)
    names = [name async for name in raw.scan_iter()]
    assert names == [f"edgekv-cache:eu-west:{NS}:a:b*".encode()]
    stored = await raw.get(names[0])
    assert stored == encode(copy)
    assert stored[0] == FORMAT and stored.endswith(b"{}value")
    assert b"pickle" not in stored and not stored.startswith(b"\x80")
    assert decode(NS, "a:b*", stored) == copy


@pytest.mark.redis
async def test_a_prefix_keeps_caches_apart(
    redis_url: str, raw: aioredis.Redis, opened: list[RedisCache]
) -> None:
    one = await open_redis(opened, redis_url)
    two = await open_redis(opened, redis_url, prefix="other:")
    await one.put(found("k"), retention_s=60)
    assert await two.get(NS, "k") is None
    assert await raw.exists(f"edgekv-cache:eu-west:{NS}:k") == 1


@pytest.mark.redis
async def test_two_edges_of_one_region_share_fills(
    redis_url: str, opened: list[RedisCache]
) -> None:
    first = await open_redis(opened, redis_url, "eu-west")
    second = await open_redis(opened, redis_url, "eu-west")
    elsewhere = await open_redis(opened, redis_url, "us-east")

    await first.put(found("k", b"from first"), retention_s=60)
    await second.put(missing("gone"), retention_s=60)
    assert await second.get(NS, "k") == found("k", b"from first")
    assert await first.get(NS, "gone") == missing("gone")
    assert await elsewhere.get(NS, "k") is None
    assert await elsewhere.get(NS, "gone") is None

    await elsewhere.put(found("k", b"from us-east"), retention_s=60)
    assert (await first.occupancy()).entries == 2
    assert (await elsewhere.occupancy()).entries == 1

    await second.delete(NS, "k")
    assert await first.get(NS, "k") is None
    assert await elsewhere.get(NS, "k") == found("k", b"from us-east")

    assert await first.flush() == 1
    assert await second.get(NS, "gone") is None
    assert (await elsewhere.occupancy()).entries == 1


@pytest.mark.redis
async def test_glob_characters_in_a_region_match_only_that_region(
    redis_url: str, opened: list[RedisCache]
) -> None:
    starred = await open_redis(opened, redis_url, "r*[1]?\\")
    plain = await open_redis(opened, redis_url, "rx[1]?\\")
    await starred.put(found("k"), retention_s=60)
    await plain.put(found("k"), retention_s=60)
    assert (await starred.occupancy()).entries == 1
    assert await starred.flush(NS) == 1
    assert await starred.flush() == 0
    assert await plain.get(NS, "k") is not None


@pytest.mark.redis
@pytest.mark.parametrize(
    ("scale", "retention_s", "lowest_ms", "highest_ms"),
    [
        (1000.0, 1000.0, 900, 1000),  # 1000 simulated s = 1 real s
        (1.0, 90.0, 85_000, 90_000),  # real time: the retention itself
        (10.0, 600.0, 55_000, 60_000),
        (1000.0, 10.0, 900, 1000),  # 10 ms real is raised to the 1 s floor
        (1.0, float("inf"), MAX_TTL_MS - 60_000, MAX_TTL_MS),
    ],
)
async def test_entries_expire_in_redis_after_retention_in_real_time(
    redis_url: str,
    raw: aioredis.Redis,
    opened: list[RedisCache],
    scale: float,
    retention_s: float,
    lowest_ms: int,
    highest_ms: int,
) -> None:
    cache = await open_redis(opened, redis_url, clock=ScaledClock(scale=scale))
    await cache.put(found("k"), retention_s=retention_s)
    remaining_ms = await raw.pttl(f"edgekv-cache:eu-west:{NS}:k")
    assert lowest_ms < remaining_ms <= highest_ms


@pytest.mark.redis
async def test_a_manual_clock_gets_the_floor_which_can_be_set(
    redis_url: str, raw: aioredis.Redis, opened: list[RedisCache]
) -> None:
    default = await open_redis(opened, redis_url, "a", clock=ManualClock())
    longer = await open_redis(opened, redis_url, "b", clock=ManualClock(), min_ttl_ms=30_000)
    await default.put(found("k"), retention_s=3600)
    await longer.put(found("k"), retention_s=3600)
    assert 0 < await raw.pttl(f"edgekv-cache:a:{NS}:k") <= 1000
    assert 29_000 < await raw.pttl(f"edgekv-cache:b:{NS}:k") <= 30_000


@pytest.mark.redis
async def test_put_renews_the_ttl(
    redis_url: str, raw: aioredis.Redis, opened: list[RedisCache]
) -> None:
    cache = await open_redis(opened, redis_url, clock=ScaledClock(scale=1.0))
    await cache.put(found("k"), retention_s=5)
    await cache.put(found("k", b"again"), retention_s=500)
    assert 490_000 < await raw.pttl(f"edgekv-cache:eu-west:{NS}:k") <= 500_000


@pytest.mark.redis
async def test_an_unreadable_value_is_a_counted_miss(
    redis_url: str, raw: aioredis.Redis, opened: list[RedisCache]
) -> None:
    cache = await open_redis(opened, redis_url)
    await raw.set(f"edgekv-cache:eu-west:{NS}:short", b"\x01abc")
    await raw.set(f"edgekv-cache:eu-west:{NS}:format", b"\x09" + encode(found("x"))[1:])
    broken = bytearray(encode(found("meta", b"v", metadata="{}")))
    broken[-7:-3] = (1000).to_bytes(4, "little")  # metadata longer than what follows
    await raw.set(f"edgekv-cache:eu-west:{NS}:meta", bytes(broken))
    for key in ("short", "format", "meta"):
        assert await cache.get(NS, key) is None
    assert cache.errors == 3


@pytest.mark.redis
async def test_a_stopped_redis_makes_reads_miss_and_writes_noops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server: RedisServer = start_redis(tmp_path)
    cache: RedisCache | None = None
    try:
        cache = await RedisCache.open(server.url(), clock=ScaledClock(), region="eu-west")
        await cache.put(found("k"), retention_s=60)
        assert await cache.get(NS, "k") == found("k")
        server.stop()

        with caplog.at_level(logging.WARNING, logger="edge.cache.redis_cache"):
            assert await cache.get(NS, "k") is None
            await cache.put(found("k2"), retention_s=60)
            await cache.delete(NS, "k")
            assert await cache.get(NS, "k2") is None
        assert cache.errors == 4
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1, [record.getMessage() for record in warnings]
        assert "failed" in warnings[0].getMessage()

        for operation in (cache.flush(), cache.occupancy()):
            with pytest.raises(KVError) as raised:
                await operation
            assert raised.value.kind is ErrorKind.UNAVAILABLE
        assert cache.errors == 6
    finally:
        if cache is not None:
            await cache.close()
        server.stop()


@pytest.mark.redis
async def test_open_refuses_what_it_cannot_use(redis_url: str) -> None:
    clock = ManualClock()
    for url in (
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/notadb",
        "http://127.0.0.1:6379/0",
    ):
        with pytest.raises(ValueError, match="cannot use Redis cache URL"):
            await RedisCache.open(url, clock=clock, region="eu-west")
    for region in ("", "eu:west"):
        with pytest.raises(ValueError, match="region"):
            await RedisCache.open(redis_url, clock=clock, region=region)
    with pytest.raises(ValueError, match="cannot use Redis cache at"):
        await RedisCache.open(redis_url.rsplit("/", 1)[0] + "/99999", clock=clock, region="x")


async def test_an_unreachable_redis_is_a_one_line_connection_error() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionError) as raised:
        await RedisCache.open(url, clock=ManualClock(), region="eu-west")
    message = str(raised.value)
    assert message.startswith("cannot reach Redis cache at redis://user:***@127.0.0.1:")
    assert "s3cret" not in message and "\n" not in message
    with pytest.raises(CacheURLError, match="cannot reach Redis cache") as wrapped:
        await open_cache(url, MIB, ManualClock(), "eu-west")
    assert "s3cret" not in str(wrapped.value)


@pytest.mark.redis
async def test_open_cache_opens_a_redis_cache(redis_url: str) -> None:
    cache = await open_cache(redis_url, MIB, ManualClock(), "eu-west")
    try:
        assert isinstance(cache, RedisCache) and cache.region == "eu-west"
    finally:
        await cache.close()


# -- memory --------------------------------------------------------------------


def sized(key: str, size: int) -> CachedValue:
    """A copy of exactly ``size`` bytes by CachedValue.size_bytes."""
    copy = found(key, b"")
    padding = size - copy.size_bytes
    assert padding >= 0
    return found(key, b"x" * padding)


async def test_memory_evicts_the_least_recently_used_by_bytes() -> None:
    cache = MemoryCache(max_bytes=3000)
    for key in ("a", "b", "c"):
        await cache.put(sized(key, 1000), retention_s=60)
    assert await cache.occupancy() == Occupancy(entries=3, bytes_cached=3000, evictions=0)

    assert await cache.get(NS, "a") is not None  # a is now the most recent
    await cache.put(sized("d", 1000), retention_s=60)
    assert await cache.get(NS, "b") is None
    assert [await cache.get(NS, key) is not None for key in ("a", "c", "d")] == [True] * 3

    # recency now: a, c, d (the gets above) → a 1500-byte entry evicts a and c
    await cache.put(sized("e", 1500), retention_s=60)
    assert await cache.get(NS, "a") is None and await cache.get(NS, "c") is None
    occupancy = await cache.occupancy()
    assert occupancy.entries == 2 and occupancy.evictions == 3
    assert occupancy.bytes_cached == sized("d", 1000).size_bytes + sized("e", 1500).size_bytes


async def test_memory_bytes_follow_replace_delete_and_flush() -> None:
    cache = MemoryCache(max_bytes=10_000)
    await cache.put(sized("a", 1000), retention_s=60)
    await cache.put(sized("a", 400), retention_s=60)
    await cache.put(missing("n"), retention_s=60)
    occupancy = await cache.occupancy()
    assert occupancy.bytes_cached == 400 + missing("n").size_bytes and occupancy.evictions == 0
    await cache.delete(NS, "a")
    assert (await cache.occupancy()).bytes_cached == missing("n").size_bytes
    assert await cache.flush() == 1
    assert (await cache.occupancy()).bytes_cached == 0


async def test_memory_does_not_keep_an_entry_larger_than_its_budget() -> None:
    cache = MemoryCache(max_bytes=2000)
    await cache.put(sized("small", 1000), retention_s=60)
    await cache.put(sized("huge", 2001), retention_s=60)
    assert await cache.get(NS, "huge") is None
    assert await cache.get(NS, "small") is not None
    occupancy = await cache.occupancy()
    assert (occupancy.entries, occupancy.bytes_cached, occupancy.evictions) == (1, 1000, 0)

    # replacing a kept copy with one too big drops the old one too: no stale leftovers
    await cache.put(sized("small", 2001), retention_s=60)
    assert await cache.get(NS, "small") is None
    assert (await cache.occupancy()).bytes_cached == 0


async def test_memory_needs_a_positive_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryCache(max_bytes=0)
