"""Redis-specific tests of :class:`RedisStorage` against a real ``redis-server``.

The shared contract suite checks the Storage rules; these check what only the
Redis back-end can get wrong: restarts, byte order of odd keys, big values,
the bounded scan, concurrent scripts, the key layout, and — with random
operations — that it answers exactly as :class:`MemoryStorage` does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from central.storage.memory import MemoryStorage
from central.storage.redis_store import RedisStorage
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.listing import ListQuery
from edgekv.core.model import ChangeKind, Delete, Namespace, Put, Write
from tests.support.redis_server import RedisServer, free_port, start_redis
from tests.support.tcp_proxy import ReplyDroppingProxy

pytestmark = pytest.mark.redis

NS = "0123456789abcdef0123456789abcdef"
OTHER_NS = "fedcba9876543210fedcba9876543210"
NOW = 1_700_000_000.25
MIB = 1024 * 1024


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStorage]:
    storage = await RedisStorage.open(redis_url)
    await storage.create_namespace(Namespace(NS, "main", NOW), max_namespaces=10)
    yield storage
    await storage.close()


def put(key: str, value: bytes = b"v", expiration: int | None = None, ns: str = NS) -> Put:
    return Put(ns, key, value, None, expiration)


async def scan_all(store: RedisStorage, prefix: str, limit: int, now: float) -> list[str]:
    """Follow cursors to the end; every key seen, in order."""
    names: list[str] = []
    start_after: str | None = None
    while True:
        result = await store.scan(ListQuery(NS, prefix, start_after, limit), now)
        names += [info.name for info in result.keys]
        if result.resume_after is None:
            return names
        start_after = result.resume_after


async def test_data_survives_closing_and_reopening(redis_url: str) -> None:
    first = await RedisStorage.open(redis_url)
    await first.create_namespace(Namespace(NS, "main", NOW), max_namespaces=10)
    await first.commit(
        [
            Put(NS, "kept", b"\x00\xffbytes", '{"a": 1}', 1_800_000_000),
            put("gone"),
            Delete(NS, "gone"),
        ],
        NOW,
    )
    await first.close()

    second = await RedisStorage.open(redis_url)
    try:
        assert second.revision == 3
        assert await second.list_namespaces() == [Namespace(NS, "main", NOW)]
        version = await second.get(NS, "kept")
        assert version is not None
        assert (version.value, version.metadata_json, version.expiration) == (
            b"\x00\xffbytes",
            '{"a": 1}',
            1_800_000_000,
        )
        assert (version.revision, version.commit_time) == (1, NOW)
        assert await second.get(NS, "gone") is None
        changes = await second.changes_after(NS, 0, 10)
        assert [(c.revision, c.kind, c.key) for c in changes] == [
            (1, ChangeKind.PUT, "kept"),
            (2, ChangeKind.PUT, "gone"),
            (3, ChangeKind.DELETE, "gone"),
        ]
        assert changes[0].version == version
        assert changes[1].version is None
        [committed] = await second.commit([put("next")], NOW + 1)
        assert committed.revision == 4
    finally:
        await second.close()


ODD_KEYS = [
    "a",
    "a%",
    "a%b",
    "a_",
    "a_b",
    "a\\",
    "a\\%",
    "a\x7f",
    "a\u00ff",
    "a\u0100",
    "a\u07ff",
    "a\u0800",
    "a\uffff",
    "a\U00010000",
    "a\U0001f600",
    "ab",
    "b|pipe|",
    "b\n",
    "\u00e9",
    "\U0001f600",
    "\U0001f600\U0001f600",
]


async def test_odd_keys_list_in_utf8_byte_order(store: RedisStorage) -> None:
    shuffled = ODD_KEYS[:]
    random.Random(7).shuffle(shuffled)
    await store.commit([put(key, key.encode()) for key in shuffled], NOW)

    expected = sorted(ODD_KEYS, key=lambda key: key.encode("utf-8"))
    for limit in (1, 2, 3, 1000):
        assert await scan_all(store, "", limit, NOW) == expected
    assert await scan_all(store, "a%", 1000, NOW) == ["a%", "a%b"]
    assert await scan_all(store, "a_", 1000, NOW) == ["a_", "a_b"]
    assert await scan_all(store, "a\\", 1000, NOW) == ["a\\", "a\\%"]
    assert await scan_all(store, "\U0001f600", 2, NOW) == ["\U0001f600", "\U0001f600\U0001f600"]
    assert await scan_all(store, "a\uffff", 1000, NOW) == ["a\uffff"]
    for key in ODD_KEYS:
        version = await store.get(NS, key)
        assert version is not None
        assert version.value == key.encode()


async def test_a_25_mib_value_round_trips(store: RedisStorage) -> None:
    value = random.Random(25).randbytes(25 * MIB)
    [committed] = await store.commit([put("big", value)], NOW)
    version = await store.get(NS, "big")
    assert version is not None
    assert version.value == value
    [change] = await store.changes_after(NS, committed.revision - 1, 10)
    assert change.version is not None
    assert change.version.value == value


async def test_a_page_of_only_expired_keys_comes_back_empty_with_a_cursor(
    redis_url: str,
) -> None:
    store = await RedisStorage.open(redis_url, scan_skip_keys=20)
    try:
        await store.create_namespace(Namespace(NS, "main", NOW), max_namespaces=10)
        expired = [put(f"k{i:03}", expiration=int(NOW) - 1) for i in range(100)]
        await store.commit([*expired, put("k999")], NOW)

        first = await store.scan(ListQuery(NS, "k", None, 10), NOW)
        assert first.keys == []
        # It looked at limit + 1 + scan_skip_keys keys and stopped at the last.
        assert first.resume_after == "k030"
        assert await scan_all(store, "k", 10, NOW) == ["k999"]
        # With nothing expired the same keys come back in one page.
        assert len(await scan_all(store, "k", 1000, NOW - 100)) == 101
    finally:
        await store.close()


async def test_default_scan_bound_stops_on_many_expired_keys(store: RedisStorage) -> None:
    expired = [put(f"e{i:05}", expiration=int(NOW) + 10) for i in range(1500)]
    await store.commit([*expired, put("e99999")], NOW)
    later = NOW + 20
    first = await store.scan(ListQuery(NS, "e", None, 5), later)
    assert first.keys == []
    assert first.resume_after is not None
    assert await scan_all(store, "e", 5, later) == ["e99999"]


async def test_expiration_is_exclusive_at_now(store: RedisStorage) -> None:
    await store.commit([put("x", expiration=1_700_000_100)], NOW)
    assert await scan_all(store, "", 10, 1_700_000_099.999) == ["x"]
    assert await scan_all(store, "", 10, 1_700_000_100.0) == []
    # Reads return it anyway; the service filters.
    assert await store.get(NS, "x") is not None


async def test_concurrent_commits_get_unique_increasing_revisions(store: RedisStorage) -> None:
    async def writer(number: int) -> list[int]:
        revisions = []
        for round_number in range(10):
            committed = await store.commit(
                [put(f"w{number}-{round_number}-a"), put(f"w{number}-{round_number}-b")], NOW
            )
            revisions += [c.revision for c in committed]
        return revisions

    per_writer = await asyncio.gather(*(writer(number) for number in range(40)))
    for revisions in per_writer:
        assert revisions == sorted(revisions)
        assert len(set(revisions)) == len(revisions)
    every = [revision for revisions in per_writer for revision in revisions]
    assert sorted(every) == list(range(1, 40 * 10 * 2 + 1))
    assert store.revision == 800
    assert await store.oldest_change_revision() == 1


async def test_change_log_is_trimmed_to_its_row_count(redis_url: str) -> None:
    store = await RedisStorage.open(redis_url, change_log_rows=5)
    try:
        await store.create_namespace(Namespace(NS, "main", NOW), 10)
        await store.create_namespace(Namespace(OTHER_NS, "other", NOW), 10)
        for i in range(4):
            await store.commit([put(f"a{i}")], NOW)
            await store.commit([put(f"b{i}", ns=OTHER_NS)], NOW)
        assert await store.oldest_change_revision() == 4
        assert [c.revision for c in await store.changes_after(NS, 0, 100)] == [5, 7]
        assert [c.revision for c in await store.changes_after(OTHER_NS, 0, 100)] == [4, 6, 8]
    finally:
        await store.close()


async def test_delete_namespace_leaves_no_entry_keys(redis_url: str) -> None:
    store = await RedisStorage.open(redis_url)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await store.create_namespace(Namespace(NS, "main", NOW), 10)
        await store.commit([put("a"), put("b", b"x" * MIB)], NOW)
        assert await store.delete_namespace(NS)
        left = sorted(await raw.keys(f"edgekv:ns:{NS}:*"))
        # The change log stays until trimmed, as it does in MemoryStorage.
        assert left == [f"edgekv:ns:{NS}:changes"]
        assert await raw.hlen("edgekv:titles") == 0
        # The title is free again.
        await store.create_namespace(Namespace(OTHER_NS, "main", NOW), 10)
    finally:
        await raw.aclose()
        await store.close()


async def test_prefixes_keep_stores_apart(redis_url: str) -> None:
    first = await RedisStorage.open(redis_url, prefix="one:")
    second = await RedisStorage.open(redis_url, prefix="two:")
    try:
        await first.create_namespace(Namespace(NS, "main", NOW), 10)
        await first.commit([put("a")], NOW)
        assert await second.list_namespaces() == []
        assert await second.get(NS, "a") is None
        with pytest.raises(KVError) as caught:
            await second.commit([put("a")], NOW)
        assert caught.value.kind is ErrorKind.NAMESPACE_NOT_FOUND
        assert second.revision == 0
    finally:
        await first.close()
        await second.close()


async def test_open_fails_with_a_one_line_message_when_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionError) as caught:
        await RedisStorage.open(url)
    message = str(caught.value)
    assert message.startswith(f"cannot reach Redis at {url}: ")
    assert "\n" not in message


async def test_open_hides_the_password_in_its_message() -> None:
    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionError) as caught:
        await RedisStorage.open(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("database", ["99", "notadb"])
async def test_open_refuses_a_bad_database(redis_server: RedisServer, database: str) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/{database}"
    with pytest.raises(ValueError, match=r"^cannot use Redis") as caught:
        await RedisStorage.open(url)
    assert "\n" not in str(caught.value)


async def test_a_lost_connection_is_a_storage_failure_the_caller_may_retry(
    tmp_path: Path,
) -> None:
    server = start_redis(tmp_path / "redis")
    store = await RedisStorage.open(server.url())
    try:
        await store.create_namespace(Namespace(NS, "main", NOW), 10)
        server.stop()
        with pytest.raises(KVError) as caught:
            await store.commit([put("a")], NOW)
        assert caught.value.kind is ErrorKind.STORAGE_FAILED
        assert caught.value.status == "UNAVAILABLE" and not caught.value.definite
        assert f"Redis at {server.url()} is out of reach" in caught.value.message
    finally:
        server.stop()
        await store.close()


async def test_a_commit_whose_reply_was_lost_is_not_sent_again(tmp_path: Path) -> None:
    # redis-py would, by default, send it again on a new connection: Redis applied it
    # already, and would apply it twice.
    server = start_redis(tmp_path / "redis")
    proxy = ReplyDroppingProxy("127.0.0.1", server.port)
    store = await RedisStorage.open(f"redis://127.0.0.1:{await proxy.start()}/0")
    try:
        await store.create_namespace(Namespace(NS, "main", NOW), 10)
        [before] = await store.commit([put("before")], NOW)
        proxy.drop_reply_to(b"EVALSHA")
        with pytest.raises(KVError) as caught:
            await store.commit([put("a")], NOW)
        assert caught.value.kind is ErrorKind.STORAGE_FAILED and not caught.value.definite
        assert proxy.dropped == 1
        changes = await store.changes_after(NS, before.revision, 10)
        assert [change.key for change in changes] == ["a"], "applied once, by Redis alone"
        [after] = await store.commit([put("b")], NOW)  # and the store goes on
        assert after.revision == before.revision + 2
    finally:
        await store.close()
        await proxy.close()
        server.stop()


# -- the same answers as MemoryStorage, for random operations -----------------

ALPHABET = ["a", "b", "%", "_", "\\", "\x7f", "\u00ff", "\U0001f600", "é"]


def random_key(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 3)))


def random_write(rng: random.Random, namespace_id: str, now: float) -> Write:
    key = random_key(rng)
    if rng.random() < 0.3:
        return Delete(namespace_id, key)
    expiration = rng.choice([None, None, int(now) + rng.randint(-5, 30)])
    metadata = rng.choice([None, '{"n": 1}', '"a|b"'])
    return Put(namespace_id, key, rng.randbytes(rng.randint(0, 8)), metadata, expiration)


@pytest.mark.parametrize("seed", range(4))
async def test_random_operations_answer_as_memory_does(redis_url: str, seed: int) -> None:
    rng = random.Random(seed)
    memory = MemoryStorage(change_log_rows=40)
    # No expired key is ever skipped for the bound, so pages must match exactly.
    redis_store = await RedisStorage.open(redis_url, change_log_rows=40, scan_skip_keys=10_000)
    stores = (memory, redis_store)
    try:
        for store in stores:
            await store.create_namespace(Namespace(NS, "main", NOW), 10)
            await store.create_namespace(Namespace(OTHER_NS, "other", NOW + 1), 10)
        now = NOW
        for _ in range(150):
            now += rng.random() * 3
            namespace_id = rng.choice([NS, OTHER_NS])
            writes = [random_write(rng, namespace_id, now) for _ in range(rng.randint(1, 4))]
            committed = [await store.commit(writes, now) for store in stores]
            assert committed[0] == committed[1]
            assert memory.revision == redis_store.revision

            query = ListQuery(
                namespace_id,
                rng.choice(["", "a", "%", "\U0001f600"]),
                rng.choice([None, random_key(rng)]),
                rng.randint(1, 6),
            )
            scan_now = now + rng.choice([0, 10])
            scans = [await store.scan(query, scan_now) for store in stores]
            assert scans[0] == scans[1]

            keys = [random_key(rng) for _ in range(3)]
            reads = [await store.get_many(namespace_id, keys) for store in stores]
            assert reads[0] == reads[1]

            after = max(0, memory.revision - rng.randint(0, 50))
            changes = [await store.changes_after(namespace_id, after, 7) for store in stores]
            assert changes[0] == changes[1]
            oldest = [await store.oldest_change_revision() for store in stores]
            assert oldest[0] == oldest[1]

        for store in stores:
            await store.rename_namespace(OTHER_NS, "renamed")
            assert await store.delete_namespace(NS)
        assert await memory.list_namespaces() == await redis_store.list_namespaces()
        assert await memory.get_many(NS, ["a"]) == await redis_store.get_many(NS, ["a"])
        assert await memory.changes_after(NS, 0, 100) == await redis_store.changes_after(NS, 0, 100)
    finally:
        await redis_store.close()


async def test_namespace_errors_match_memory(redis_url: str) -> None:
    memory = MemoryStorage()
    redis_store = await RedisStorage.open(redis_url)
    try:
        for store in (memory, redis_store):
            await store.create_namespace(Namespace(NS, "main", NOW), 2)
        outcomes: list[list[tuple[str, str]]] = []
        for store in (memory, redis_store):
            seen: list[tuple[str, str]] = []
            attempts = [
                store.create_namespace(Namespace(OTHER_NS, "main", NOW), 2),
                store.rename_namespace(OTHER_NS, "x"),
                store.commit([put("a", ns=OTHER_NS)], NOW),
            ]
            for attempt in attempts:
                try:
                    await attempt
                except KVError as exc:
                    seen.append((exc.kind.value, exc.message))
            await store.create_namespace(Namespace(OTHER_NS, "other", NOW), 2)
            for attempt in [
                store.create_namespace(Namespace("1" * 32, "third", NOW), 2),
                store.rename_namespace(OTHER_NS, "main"),
            ]:
                try:
                    await attempt
                except KVError as exc:
                    seen.append((exc.kind.value, exc.message))
            renamed = await store.rename_namespace(OTHER_NS, "other")
            seen.append(("renamed to itself", renamed.title))
            outcomes.append(seen)
        assert outcomes[0] == outcomes[1]
        assert len(outcomes[0]) == 6
    finally:
        await redis_store.close()
