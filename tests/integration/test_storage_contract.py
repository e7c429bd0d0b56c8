"""One contract, every back-end: memory, SQLite (a real file) and Redis (a real server).

Each test runs against all three (one that reopens the store, against the two
that keep it); a back-end that differs from the others in any rule of
central/storage/base.py fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from central.storage import open_storage
from central.storage.base import Storage
from edgekv.core.accounts import Token, sorted_tokens
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.listing import ListQuery, make_page
from edgekv.core.model import DEFAULT_ACCOUNT_ID, ChangeKind, Delete, Namespace, Put

NOW = 1_700_000_000.0
NS = "0" * 31 + "1"
OTHER_NS = "0" * 31 + "2"
ACCOUNT = "a" * 32
OTHER_ACCOUNT = "b" * 32


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "memory":
        url = "memory:"
    elif request.param == "sqlite":
        url = f"sqlite:{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    store = await open_storage(url)
    await store.create_namespace(Namespace(NS, "main", NOW), max_namespaces=1000)
    yield store
    await store.close()


def put(
    key: str, value: bytes = b"v", expiration: int | None = None, meta: str | None = None
) -> Put:
    return Put(NS, key, value, meta, expiration)


async def list_names(store: Storage, prefix: str = "", now: float = NOW) -> list[str]:
    names: list[str] = []
    start_after = None
    while True:
        scan = await store.scan(ListQuery(NS, prefix, start_after, 1000), now)
        names.extend(info.name for info in scan.keys)
        if scan.resume_after is None:
            return names
        start_after = scan.resume_after


async def test_put_then_get_returns_the_version(storage: Storage) -> None:
    [committed] = await storage.commit([put("k", b"hello", 1_700_000_600, '{"a":1}')], NOW)
    version = await storage.get(NS, "k")
    assert version is not None
    assert (version.value, version.metadata_json, version.expiration) == (
        b"hello",
        '{"a":1}',
        1_700_000_600,
    )
    assert (version.revision, version.commit_time) == (committed.revision, NOW)
    assert storage.revision == committed.revision == 1


async def test_revisions_increase_by_one_per_change_across_commits(storage: Storage) -> None:
    first = await storage.commit([put("a"), put("b"), Delete(NS, "a")], NOW)
    second = await storage.commit([put("c")], NOW + 1)
    assert [c.revision for c in first + second] == [1, 2, 3, 4]
    assert storage.revision == 4


async def test_delete_of_missing_key_writes_nothing(storage: Storage) -> None:
    await storage.commit([put("a")], NOW)
    [outcome] = await storage.commit([Delete(NS, "missing")], NOW)
    assert not outcome.changed
    assert outcome.revision == storage.revision == 1


async def test_overwrite_replaces_value_metadata_and_expiration(storage: Storage) -> None:
    await storage.commit([put("k", b"one", 1_700_001_000, '{"v":1}')], NOW)
    await storage.commit([put("k", b"two")], NOW + 2)
    version = await storage.get(NS, "k")
    assert version is not None
    assert (version.value, version.metadata_json, version.expiration, version.revision) == (
        b"two",
        None,
        None,
        2,
    )


async def test_commit_to_missing_namespace_fails_whole_group(storage: Storage) -> None:
    with pytest.raises(KVError) as caught:
        await storage.commit([Put(OTHER_NS, "k", b"v", None, None)], NOW)
    assert caught.value.kind is ErrorKind.NAMESPACE_NOT_FOUND
    assert storage.revision == 0


async def test_get_many_keeps_order_and_duplicates(storage: Storage) -> None:
    await storage.commit([put("a", b"1"), put("b", b"2")], NOW)
    versions = await storage.get_many(NS, ["b", "missing", "a", "b"])
    assert [v.value if v else None for v in versions] == [b"2", None, b"1", b"2"]


async def test_list_is_in_utf8_byte_order_with_byte_exact_prefix(storage: Storage) -> None:
    names = ["b", "a", "a%", "a_", "a\\", "ab", "é", "\x7f", "\u00ff", "😀", "z", "A"]
    await storage.commit([put(name) for name in names], NOW)
    assert await list_names(storage) == sorted(names, key=lambda n: n.encode())
    assert await list_names(storage, prefix="a") == ["a", "a%", "a\\", "a_", "ab"]
    assert await list_names(storage, prefix="a%") == ["a%"]
    assert await list_names(storage, prefix="a_") == ["a_"]
    assert await list_names(storage, prefix="\u00ff") == ["\u00ff"]


async def test_list_pages_with_cursor_and_lookahead(storage: Storage) -> None:
    await storage.commit([put(f"k{i:02}") for i in range(5)], NOW)
    first = await storage.scan(ListQuery(NS, "", None, 2), NOW)
    assert [k.name for k in first.keys] == ["k00", "k01"]
    assert first.resume_after == "k01"
    second = await storage.scan(ListQuery(NS, "", "k01", 2), NOW)
    assert [k.name for k in second.keys] == ["k02", "k03"]
    last = await storage.scan(ListQuery(NS, "", "k03", 2), NOW)
    assert [k.name for k in last.keys] == ["k04"]
    assert last.resume_after is None
    exact = await storage.scan(ListQuery(NS, "", None, 5), NOW)
    assert len(exact.keys) == 5
    assert make_page(exact).list_complete


async def test_list_returns_expiration_and_metadata(storage: Storage) -> None:
    await storage.commit([put("m", meta='{"x":true}', expiration=1_700_000_999), put("n")], NOW)
    scan = await storage.scan(ListQuery(NS, "", None, 10), NOW)
    assert [(k.name, k.expiration, k.metadata_json) for k in scan.keys] == [
        ("m", 1_700_000_999, '{"x":true}'),
        ("n", None, None),
    ]


async def test_expired_keys_are_never_listed(storage: Storage) -> None:
    await storage.commit(
        [put("a", expiration=int(NOW) + 60), put("b"), put("c", expiration=int(NOW) + 120)], NOW
    )
    assert await list_names(storage, now=NOW + 59) == ["a", "b", "c"]
    assert await list_names(storage, now=NOW + 60) == ["b", "c"]
    assert await list_names(storage, now=NOW + 120) == ["b"]


async def test_reads_return_expired_versions_for_the_service_to_filter(storage: Storage) -> None:
    await storage.commit([put("a", expiration=int(NOW) + 60)], NOW)
    version = await storage.get(NS, "a")
    assert version is not None
    assert not version.is_live(NOW + 60)


async def test_large_value_round_trips(storage: Storage) -> None:
    value = bytes(range(256)) * (25 * 1024 * 4)
    assert len(value) == 25 * 1024 * 1024
    await storage.commit([put("big", value)], NOW)
    version = await storage.get(NS, "big")
    assert version is not None
    assert version.value == value


async def test_namespaces_create_rename_delete(storage: Storage) -> None:
    await storage.create_namespace(Namespace(OTHER_NS, "second", NOW), max_namespaces=1000)
    with pytest.raises(KVError) as taken:
        await storage.create_namespace(Namespace("f" * 32, "second", NOW), max_namespaces=1000)
    assert taken.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS
    renamed = await storage.rename_namespace(OTHER_NS, "renamed")
    assert renamed == Namespace(OTHER_NS, "renamed", NOW)
    assert await storage.get_namespace(OTHER_NS) == renamed
    with pytest.raises(KVError) as clash:
        await storage.rename_namespace(OTHER_NS, "main")
    assert clash.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS
    assert sorted(ns.title for ns in await storage.list_namespaces()) == ["main", "renamed"]
    assert await storage.delete_namespace(OTHER_NS)
    assert not await storage.delete_namespace(OTHER_NS)
    assert await storage.get_namespace(OTHER_NS) is None


async def test_namespace_limit(storage: Storage) -> None:
    await storage.create_namespace(Namespace(OTHER_NS, "second", NOW), max_namespaces=2)
    with pytest.raises(KVError) as full:
        await storage.create_namespace(Namespace("f" * 32, "third", NOW), max_namespaces=2)
    assert full.value.kind is ErrorKind.NAMESPACE_LIMIT


def namespace_id(number: int) -> str:
    """Ids apart from NS and OTHER_NS."""
    return f"c{number:031x}"


async def test_a_title_is_unique_within_an_account_not_across_accounts(storage: Storage) -> None:
    # The fixture's "main" is in the default account; another account may have one too.
    await storage.create_namespace(Namespace(OTHER_NS, "main", NOW, ACCOUNT), 1000)
    for taken in (DEFAULT_ACCOUNT_ID, ACCOUNT):
        with pytest.raises(KVError) as caught:
            await storage.create_namespace(Namespace(namespace_id(9), "main", NOW, taken), 1000)
        assert caught.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS
    # Renaming checks the namespace's own account only.
    await storage.create_namespace(Namespace(namespace_id(3), "third", NOW, ACCOUNT), 1000)
    with pytest.raises(KVError) as clash:
        await storage.rename_namespace(namespace_id(3), "main")
    assert clash.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS
    renamed = await storage.rename_namespace(NS, "third")
    assert renamed == Namespace(NS, "third", NOW, DEFAULT_ACCOUNT_ID)
    # The title NS gave up is free again in its account.
    await storage.create_namespace(Namespace(namespace_id(4), "main", NOW), 1000)
    titles = {(ns.account_id, ns.title) for ns in await storage.list_namespaces()}
    assert titles == {
        (DEFAULT_ACCOUNT_ID, "third"),
        (DEFAULT_ACCOUNT_ID, "main"),
        (ACCOUNT, "main"),
        (ACCOUNT, "third"),
    }


async def test_the_namespace_limit_counts_per_account(storage: Storage) -> None:
    limit = 3
    for number in range(1, limit + 1):  # the third is at the limit, and passes
        await storage.create_namespace(
            Namespace(namespace_id(number), f"n{number}", NOW, ACCOUNT), limit
        )
    with pytest.raises(KVError) as full:
        await storage.create_namespace(Namespace(namespace_id(4), "n4", NOW, ACCOUNT), limit)
    assert full.value.kind is ErrorKind.NAMESPACE_LIMIT
    # Other accounts count their own: the default one (holding the fixture's) and a new one.
    await storage.create_namespace(Namespace(namespace_id(5), "n5", NOW), limit)
    await storage.create_namespace(Namespace(namespace_id(6), "n6", NOW, OTHER_ACCOUNT), limit)
    # A deleted namespace no longer counts.
    assert await storage.delete_namespace(namespace_id(2))
    await storage.create_namespace(Namespace(namespace_id(4), "n4", NOW, ACCOUNT), limit)


async def test_account_id_round_trips(storage: Storage) -> None:
    created = Namespace(OTHER_NS, "theirs", NOW, ACCOUNT)
    await storage.create_namespace(created, 1000)
    assert await storage.get_namespace(OTHER_NS) == created
    assert await storage.get_namespace(NS) == Namespace(NS, "main", NOW, DEFAULT_ACCOUNT_ID)
    listed = {ns.id: ns for ns in await storage.list_namespaces()}
    assert listed[OTHER_NS] == created
    assert listed[NS].account_id == DEFAULT_ACCOUNT_ID
    assert await storage.rename_namespace(OTHER_NS, "renamed") == Namespace(
        OTHER_NS, "renamed", NOW, ACCOUNT
    )


TOKENS = [
    Token(
        "1" * 32, "d1" * 32, ACCOUNT, read_only=True, namespace_ids=(NS, OTHER_NS), created_at=NOW
    ),
    Token("2" * 32, "d2" * 32, ACCOUNT, read_only=False, namespace_ids=(), created_at=NOW + 0.125),
    Token("3" * 32, "d3" * 32, OTHER_ACCOUNT, read_only=False, namespace_ids=(NS,), created_at=NOW),
]


async def test_tokens_create_list_revoke(storage: Storage) -> None:
    assert await storage.list_tokens() == []
    for token in TOKENS:
        await storage.create_token(token)
    assert sorted_tokens(await storage.list_tokens()) == sorted_tokens(TOKENS)
    assert await storage.revoke_token(TOKENS[0].token_id)
    assert not await storage.revoke_token(TOKENS[0].token_id)
    assert not await storage.revoke_token("f" * 32)
    assert sorted_tokens(await storage.list_tokens()) == sorted_tokens(TOKENS[1:])


@pytest.fixture(params=["sqlite", "redis"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


async def test_accounts_and_tokens_survive_reopening(durable_url: str) -> None:
    # memory: keeps nothing across a restart; the durable back-ends keep all of it.
    first = await open_storage(durable_url)
    await first.create_namespace(Namespace(NS, "main", NOW, ACCOUNT), 2)
    for token in TOKENS:
        await first.create_token(token)
    await first.revoke_token(TOKENS[2].token_id)
    await first.close()

    second = await open_storage(durable_url)
    try:
        assert await second.list_namespaces() == [Namespace(NS, "main", NOW, ACCOUNT)]
        assert sorted_tokens(await second.list_tokens()) == sorted_tokens(TOKENS[:2])
        # The account's title and count were kept too.
        with pytest.raises(KVError) as taken:
            await second.create_namespace(Namespace(OTHER_NS, "main", NOW, ACCOUNT), 2)
        assert taken.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS
        await second.create_namespace(Namespace(OTHER_NS, "second", NOW, ACCOUNT), 2)
        with pytest.raises(KVError) as full:
            await second.create_namespace(Namespace(namespace_id(3), "third", NOW, ACCOUNT), 2)
        assert full.value.kind is ErrorKind.NAMESPACE_LIMIT
    finally:
        await second.close()


async def test_deleting_a_namespace_deletes_its_keys(storage: Storage) -> None:
    await storage.create_namespace(Namespace(OTHER_NS, "second", NOW), max_namespaces=1000)
    await storage.commit([Put(OTHER_NS, "k", b"v", None, None)], NOW)
    await storage.delete_namespace(OTHER_NS)
    await storage.create_namespace(Namespace(OTHER_NS, "again", NOW), max_namespaces=1000)
    assert await storage.get(OTHER_NS, "k") is None


async def test_change_log_replays_with_current_values(storage: Storage) -> None:
    await storage.commit([put("a", b"1"), put("b", b"1")], NOW)
    await storage.commit([put("a", b"2"), Delete(NS, "b")], NOW + 1)
    changes = await storage.changes_after(NS, 0, 100)
    assert [(c.revision, c.kind, c.key) for c in changes] == [
        (1, ChangeKind.PUT, "a"),
        (2, ChangeKind.PUT, "b"),
        (3, ChangeKind.PUT, "a"),
        (4, ChangeKind.DELETE, "b"),
    ]
    # Superseded puts carry no value; the current one does.
    assert [c.version.value if c.version else None for c in changes] == [None, None, b"2", None]
    assert [c.revision for c in await storage.changes_after(NS, 2, 1)] == [3]
    assert await storage.oldest_change_revision() == 1


async def test_concurrent_commits_get_unique_consecutive_revisions(storage: Storage) -> None:
    outcomes = await asyncio.gather(*(storage.commit([put(f"k{i}")], NOW) for i in range(50)))
    revisions = sorted(o[0].revision for o in outcomes)
    assert revisions == list(range(1, 51))
    assert len(await list_names(storage)) == 50


# An expiration no back-end can hold: SQLite's INTEGER, protobuf's int64 and the
# storages' parsers all stop at 2**63 - 1. The core refuses it long before (it is far
# past 9999); this feeds it to the storage directly, as a bug in the core would.
UNSTORABLE_EXPIRATION = 2**63


async def test_a_poisoned_write_fails_alone_and_its_batch_commits(storage: Storage) -> None:
    # Concurrent commits share one group commit (one SQLite transaction, one Redis pipeline).
    goods = [put(f"good{i}", b"v") for i in range(3)]
    poison = put("poison", expiration=UNSTORABLE_EXPIRATION)
    commits = [storage.commit([goods[0]], NOW), storage.commit([poison], NOW)]
    commits += [storage.commit([good], NOW) for good in goods[1:]]
    outcomes = await asyncio.wait_for(asyncio.gather(*commits, return_exceptions=True), timeout=10)
    poisoned = outcomes.pop(1)
    assert isinstance(poisoned, KVError), f"the poisoned write was accepted: {poisoned!r}"
    assert poisoned.kind is ErrorKind.INTERNAL, poisoned
    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    revisions = sorted(outcome[0].revision for outcome in outcomes)  # type: ignore[index]
    assert revisions == [1, 2, 3], "the refused write must not use up a revision"
    assert storage.revision == 3
    assert await storage.get(NS, "poison") is None
    assert await list_names(storage) == ["good0", "good1", "good2"]
    # The writer goes on taking writes.
    [after] = await storage.commit([put("after")], NOW)
    assert after.revision == 4


async def test_a_poisoned_write_in_a_group_fails_the_whole_group(storage: Storage) -> None:
    # A group (one caller's writes, e.g. a bulk put) is atomic: all of it or none.
    group = [put("first"), put("poison", expiration=UNSTORABLE_EXPIRATION), put("last")]
    with pytest.raises(KVError) as caught:
        await asyncio.wait_for(storage.commit(group, NOW), timeout=10)
    assert caught.value.kind is ErrorKind.INTERNAL
    assert storage.revision == 0
    assert await list_names(storage) == []
    assert await storage.changes_after(NS, 0, 10) == []
