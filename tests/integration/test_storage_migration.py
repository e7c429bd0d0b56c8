"""Stores written before accounts (schema version 1) open, migrated, on SQLite and Redis.

Each version-1 store is built by hand, as the code before accounts wrote it
(SQLite: its CREATE TABLE statements; Redis: its records, written with
redis-py), with two namespaces, keys and the store's id and revision. Opened
with :func:`open_storage`, its namespaces are in the default account with
their titles, values and revisions, and the store records version 2; a second
open changes nothing; and a store written by a newer edgekv is refused with
one line, untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis

from central.storage import StorageURLError, open_storage
from central.storage.base import SCHEMA_VERSION, Storage
from central.storage.record import StoreRecord
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.model import DEFAULT_ACCOUNT_ID, Namespace

NOW = 1_700_000_000.5
FIRST = "1" * 32
SECOND = "2" * 32
THIRD = "3" * 32
STORE_ID = "5e" * 16
# A title with the record separator in it: version 1 kept it last, unescaped.
ODD_TITLE = "a|title with | pipes"
EXPECTED_NAMESPACES = [
    Namespace(FIRST, "first", NOW, DEFAULT_ACCOUNT_ID),
    Namespace(SECOND, ODD_TITLE, NOW + 1, DEFAULT_ACCOUNT_ID),
]

# The schema of central/storage/sqlite.py before accounts, as it was.
SQLITE_V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS identity (store_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    namespace_id TEXT NOT NULL,
    key BLOB NOT NULL,
    expiration INTEGER,
    revision INTEGER NOT NULL,
    commit_time REAL NOT NULL,
    metadata_json TEXT,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace_id, key)
);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    key BLOB NOT NULL,
    kind TEXT NOT NULL,
    commit_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_namespace ON changes (namespace_id, revision);
"""


async def check_migrated(store: Storage) -> None:
    """What every migrated store holds: the version-1 store's data, in the default account."""
    assert store.store_id == STORE_ID
    assert store.revision == 3
    assert await store.list_namespaces() == EXPECTED_NAMESPACES
    kept = await store.get(FIRST, "k")
    assert kept is not None
    assert (kept.value, kept.metadata_json, kept.revision, kept.commit_time) == (
        b"two",
        '{"a":1}',
        2,
        NOW,
    )
    other = await store.get(SECOND, "x")
    assert other is not None
    assert (other.value, other.expiration, other.revision) == (b"\x00\xff", 1_800_000_000, 3)
    assert [c.revision for c in await store.changes_after(FIRST, 0, 10)] == [1, 2]
    assert await store.list_tokens() == []


async def check_account_rules(store: Storage) -> None:
    """The migrated namespaces count, and hold their titles, in the default account only."""
    with pytest.raises(KVError) as taken:
        await store.create_namespace(Namespace(THIRD, "first", NOW), 1000)
    assert taken.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS
    with pytest.raises(KVError) as full:
        await store.create_namespace(Namespace(THIRD, "third", NOW), 2)
    assert full.value.kind is ErrorKind.NAMESPACE_LIMIT
    await store.create_namespace(Namespace(THIRD, "first", NOW, "a" * 32), 2)
    renamed = await store.rename_namespace(SECOND, "second")
    assert renamed == Namespace(SECOND, "second", NOW + 1, DEFAULT_ACCOUNT_ID)


def assert_refused_as_newer(caught: pytest.ExceptionInfo[StorageURLError]) -> None:
    message = str(caught.value)
    assert "\n" not in message, message
    assert "written by a newer edgekv" in message, message
    assert f"schema version {SCHEMA_VERSION + 1}" in message, message


# -- SQLite ---------------------------------------------------------------------


def build_sqlite_v1(path: Path) -> None:
    """A version-1 database: two namespaces, three revisions, no schema version row."""
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SQLITE_V1_SCHEMA)
        db.execute("INSERT INTO identity (store_id) VALUES (?)", (STORE_ID,))
        db.execute("UPDATE meta SET value = 3 WHERE name = 'revision'")
        db.executemany(
            "INSERT INTO namespaces (id, title, created_at) VALUES (?, ?, ?)",
            [(FIRST, "first", NOW), (SECOND, ODD_TITLE, NOW + 1)],
        )
        db.executemany(
            "INSERT INTO entries (namespace_id, key, expiration, revision, commit_time,"
            " metadata_json, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (FIRST, b"k", None, 2, NOW, '{"a":1}', b"two"),
                (SECOND, b"x", 1_800_000_000, 3, NOW, None, b"\x00\xff"),
            ],
        )
        db.executemany(
            "INSERT INTO changes (revision, namespace_id, key, kind, commit_time)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (1, FIRST, b"k", "put", NOW),
                (2, FIRST, b"k", "put", NOW),
                (3, SECOND, b"x", "put", NOW),
            ],
        )


def sqlite_dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return list(db.iterdump())


def sqlite_schema_version(path: Path) -> int | None:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        return None if row is None else int(row[0])


@pytest.fixture
def sqlite_v1(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    build_sqlite_v1(path)
    assert sqlite_schema_version(path) is None
    return path


async def test_a_version_1_sqlite_store_is_migrated_at_open(sqlite_v1: Path) -> None:
    store = await open_storage(f"sqlite:{sqlite_v1}")
    try:
        await check_migrated(store)
    finally:
        await store.close()
    assert sqlite_schema_version(sqlite_v1) == SCHEMA_VERSION

    migrated = sqlite_dump(sqlite_v1)
    again = await open_storage(f"sqlite:{sqlite_v1}")
    try:
        assert sqlite_dump(sqlite_v1) == migrated, "a second open changed the store"
        await check_migrated(again)
        await check_account_rules(again)
    finally:
        await again.close()


async def test_a_new_sqlite_store_starts_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await open_storage(f"sqlite:{path}")
    await store.close()
    assert sqlite_schema_version(path) == SCHEMA_VERSION


async def test_a_newer_sqlite_store_is_refused_untouched(sqlite_v1: Path) -> None:
    with closing(sqlite3.connect(sqlite_v1)) as db, db:
        db.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION + 1,)
        )
    before = sqlite_dump(sqlite_v1)
    with pytest.raises(StorageURLError) as caught:
        await open_storage(f"sqlite:{sqlite_v1}")
    assert_refused_as_newer(caught)
    assert f"sqlite:{sqlite_v1}" in str(caught.value)
    assert sqlite_dump(sqlite_v1) == before


async def test_a_version_1_sqlite_store_that_is_not_the_recorded_one_is_left_as_it_is(
    sqlite_v1: Path, tmp_path: Path
) -> None:
    # Central migrates only a store it will serve.
    record = StoreRecord(tmp_path / "record.json", "another store", 0)
    record.write()
    before = sqlite_dump(sqlite_v1)
    with pytest.raises(StorageURLError, match="not store another store"):
        await open_storage(f"sqlite:{sqlite_v1}", record_path=record.path)
    assert sqlite_dump(sqlite_v1) == before


# -- Redis ----------------------------------------------------------------------


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def build_redis_v1(client: redis.Redis) -> None:
    """The records central/storage/redis_layout.py wrote before accounts (no schema key)."""
    client.set("edgekv:store_id", STORE_ID)
    client.set("edgekv:rev", 3)
    client.set("edgekv:namespace_seq", 2)
    # id → "seq|created_at|title"; title → id.
    client.hset(
        "edgekv:namespaces",
        mapping={FIRST: f"1|{NOW!r}|first", SECOND: f"2|{NOW + 1!r}|{ODD_TITLE}"},
    )
    client.hset("edgekv:titles", mapping={"first": FIRST, ODD_TITLE: SECOND})
    # Per namespace: names (score 0), info "rev|expiration|commit_time|M", values, changes.
    for namespace_id, key, info, value in [
        (FIRST, b"k", f'2||{NOW!r}|+{{"a":1}}', b"two"),
        (SECOND, b"x", f"3|1800000000|{NOW!r}|-", b"\x00\xff"),
    ]:
        client.zadd(f"edgekv:ns:{namespace_id}:names", {key: 0})
        client.hset(f"edgekv:ns:{namespace_id}:info", key, info)
        client.hset(f"edgekv:ns:{namespace_id}:values", key, value)
    for revision, owner, name in [(1, FIRST, "k"), (2, FIRST, "k"), (3, SECOND, "x")]:
        client.zadd(f"edgekv:ns:{owner}:changes", {f"{revision}|p|{NOW!r}|{name}": revision})
        client.zadd("edgekv:changes", {f"{revision}|{owner}": revision})


def redis_dump(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key's serialized value: equal dumps, equal stores."""
    return {key: client.dump(key) for key in client.keys("*")}  # type: ignore[misc]


@pytest.fixture
def redis_v1(raw_redis: redis.Redis) -> redis.Redis:
    build_redis_v1(raw_redis)
    return raw_redis


@pytest.mark.redis
async def test_a_version_1_redis_store_is_migrated_at_open(
    redis_url: str, redis_v1: redis.Redis
) -> None:
    store = await open_storage(redis_url)
    try:
        await check_migrated(store)
    finally:
        await store.close()
    assert redis_v1.get("edgekv:schema_version") == str(SCHEMA_VERSION).encode()
    assert redis_v1.hgetall("edgekv:titles") == {
        f"{DEFAULT_ACCOUNT_ID}|first".encode(): FIRST.encode(),
        f"{DEFAULT_ACCOUNT_ID}|{ODD_TITLE}".encode(): SECOND.encode(),
    }

    migrated = redis_dump(redis_v1)
    again = await open_storage(redis_url)
    try:
        assert redis_dump(redis_v1) == migrated, "a second open changed the store"
        await check_migrated(again)
        await check_account_rules(again)
    finally:
        await again.close()


@pytest.mark.redis
async def test_a_new_redis_store_starts_at_the_current_version(
    redis_url: str, raw_redis: redis.Redis
) -> None:
    store = await open_storage(redis_url)
    await store.close()
    assert raw_redis.get("edgekv:schema_version") == str(SCHEMA_VERSION).encode()


@pytest.mark.redis
async def test_a_newer_redis_store_is_refused_untouched(
    redis_url: str, redis_v1: redis.Redis
) -> None:
    redis_v1.set("edgekv:schema_version", SCHEMA_VERSION + 1)
    before = redis_dump(redis_v1)
    with pytest.raises(StorageURLError) as caught:
        await open_storage(redis_url)
    assert_refused_as_newer(caught)
    assert redis_dump(redis_v1) == before


@pytest.mark.redis
async def test_a_redis_store_with_an_unreadable_record_is_not_half_migrated(
    redis_url: str, redis_v1: redis.Redis
) -> None:
    # The script checks every record before it rewrites any: Redis does not undo a
    # script that fails halfway.
    redis_v1.hset("edgekv:namespaces", THIRD, "not a record")
    before = redis_dump(redis_v1)
    with pytest.raises(StorageURLError) as caught:
        await open_storage(redis_url)
    assert THIRD in str(caught.value) and "\n" not in str(caught.value)
    assert redis_dump(redis_v1) == before


@pytest.mark.redis
async def test_a_version_1_redis_store_that_is_not_the_recorded_one_is_left_as_it_is(
    redis_url: str, redis_v1: redis.Redis, tmp_path: Path
) -> None:
    record = StoreRecord(tmp_path / "record.json", "another store", 0)
    record.write()
    before = redis_dump(redis_v1)
    with pytest.raises(StorageURLError, match="not store another store"):
        await open_storage(redis_url, record_path=record.path)
    assert redis_dump(redis_v1) == before
