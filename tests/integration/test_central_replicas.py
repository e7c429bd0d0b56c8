"""Several central processes over one Redis: one store, whichever central a call reaches.

Two centrals are served on real gRPC ports over one real ``redis-server``, with one
manual clock (a cluster's nodes share a time anchor). Each test makes a change
through one and observes it through the other: namespaces, tokens, the
one-write-per-second rule, and Watch — live, resumed, ended — all of which
central used to keep in its own memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

import edgekv
from central.feed import FeedFollower
from central.server import CentralServer, start_central
from central.service import CentralSettings
from central.storage.redis_store import RedisStorage
from edgekv.clock import ManualClock
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.model import DEFAULT_ACCOUNT_ID, Change, FeedEvent, Namespace, Put
from edgekv.v1 import central_pb2 as pb

pytestmark = pytest.mark.redis


@dataclass
class Replica:
    server: CentralServer
    client: edgekv.Client


@dataclass
class Pair:
    a: Replica
    b: Replica
    clock: ManualClock


async def _start(url: str, clock: ManualClock, settings: CentralSettings) -> Replica:
    server = await start_central("127.0.0.1:0", url, clock, settings)
    return Replica(server, edgekv.Client(central=server.address, retry_rate_limited=False))


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[Pair]:
    clock = ManualClock()
    settings = CentralSettings()
    # Both at once, on an empty Redis: it is initialised once.
    a, b = await asyncio.gather(
        _start(redis_url, clock, settings), _start(redis_url, clock, settings)
    )
    yield Pair(a, b, clock)
    for replica in (a, b):
        await replica.client.close()
        await replica.server.stop(grace_s=0)


async def _eventually(check: object, timeout_s: float = 3.0) -> None:
    """Poll ``check`` (an async callable returning bool) until true: a change made through
    one central reaches the others through the feed, within milliseconds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


async def test_two_centrals_starting_at_once_serve_one_store(pair: Pair) -> None:
    assert pair.a.server.storage.store_id == pair.b.server.storage.store_id


async def test_a_namespace_made_through_one_is_served_by_the_other_at_once(pair: Pair) -> None:
    namespace = await pair.a.client.create_namespace("shared")
    # No waiting: b has not heard of it, so it catches up with the feed before refusing.
    await pair.b.client.namespace(namespace.id).put("k", "from b")
    assert await pair.a.client.namespace(namespace.id).get("k") == "from b"
    titles = [ns.title for ns in await pair.b.client.list_namespaces()]
    assert titles == ["shared"]
    with pytest.raises(KVError) as refused:
        await pair.b.client.create_namespace("shared")
    assert refused.value.kind is ErrorKind.NAMESPACE_TITLE_EXISTS


async def test_a_deleted_namespace_is_gone_through_every_central(pair: Pair) -> None:
    namespace = await pair.a.client.create_namespace("doomed")
    await pair.b.client.namespace(namespace.id).put("k", "v")
    await pair.a.client.delete_namespace(namespace.id)

    async def gone_at_b() -> bool:
        try:
            await pair.b.client.namespace(namespace.id).get("k")
        except KVError as exc:
            return exc.kind is ErrorKind.NAMESPACE_NOT_FOUND
        return False

    await _eventually(gone_at_b)
    with pytest.raises(KVError) as refused:
        await pair.b.client.namespace(namespace.id).put("k", "again")
    assert refused.value.kind is ErrorKind.NAMESPACE_NOT_FOUND


async def test_a_token_made_through_one_works_at_once_and_its_revocation_everywhere(
    pair: Pair,
) -> None:
    namespace = await pair.a.client.create_namespace("tokens")
    token, info = await pair.a.client.create_token(DEFAULT_ACCOUNT_ID)
    as_token = edgekv.Client(central=pair.b.server.address, token=token)
    try:
        await as_token.namespace(namespace.id).put("k", "with a token")  # no waiting
        await pair.a.client.revoke_token(info.token_id)

        async def refused_at_b() -> bool:
            try:
                await as_token.namespace(namespace.id).get("k")
            except KVError as exc:
                return exc.kind is ErrorKind.TOKEN_INVALID
            return False

        await _eventually(refused_at_b)
    finally:
        await as_token.close()


async def test_one_write_per_second_holds_across_centrals(pair: Pair) -> None:
    namespace = await pair.a.client.create_namespace("rate")
    through_a = pair.a.client.namespace(namespace.id)
    through_b = pair.b.client.namespace(namespace.id)
    await through_a.put("k", "first")
    with pytest.raises(KVError) as refused:
        await through_b.put("k", "second, same second")
    assert refused.value.kind is ErrorKind.WRITE_RATE_LIMITED
    with pytest.raises(KVError):
        await through_b.delete("k")  # a delete that would change something is a write
    await through_b.delete("never-written")  # changes nothing: not limited
    result = await through_b.bulk_put([{"key": "k", "value": "bulk"}, {"key": "j", "value": "1"}])
    assert result.unsuccessful_keys == ["k"] and result.successful_key_count == 1
    pair.clock.advance(1.0)
    await through_b.put("k", "a second later")
    assert await through_a.get("k") == "a second later"


async def test_a_watcher_of_one_sees_every_centrals_writes_in_order(pair: Pair) -> None:
    namespace = await pair.a.client.create_namespace("watched")
    stream = await pair.b.client.namespace(namespace.id).watch(include_values=True)
    seen: list[Change] = []

    async def collect(count: int) -> None:
        async for change in stream:
            seen.append(change)
            if len(seen) == count:
                return

    collector = asyncio.create_task(collect(40))
    writers = [pair.a.client.namespace(namespace.id), pair.b.client.namespace(namespace.id)]
    await asyncio.gather(*(writers[i % 2].put(f"key-{i}", f"value-{i}") for i in range(40)))
    await asyncio.wait_for(collector, 10)
    stream.close()
    revisions = [change.revision for change in seen]
    assert revisions == sorted(revisions) and len(set(revisions)) == 40
    assert {change.key for change in seen} == {f"key-{i}" for i in range(40)}
    values = {change.key: change.version.value for change in seen if change.version}
    assert values == {f"key-{i}": f"value-{i}".encode() for i in range(40)}


async def test_a_watch_resumes_from_a_revision_written_through_another_central(
    pair: Pair,
) -> None:
    namespace = await pair.a.client.create_namespace("resumed")
    first = await pair.a.client.namespace(namespace.id).put("one", "1")
    await pair.a.client.namespace(namespace.id).put("two", "2")
    stream = await pair.b.client.namespace(namespace.id).watch(start_revision=first.revision)
    seen: list[str] = []
    async for change in stream:
        seen.append(change.key)
        if len(seen) == 3:
            break
        if len(seen) == 2:
            await pair.a.client.namespace(namespace.id).put("three", "3")
    stream.close()
    assert seen == ["one", "two", "three"]


async def test_deleting_a_namespace_through_one_ends_the_watches_on_the_other(
    pair: Pair,
) -> None:
    namespace = await pair.a.client.create_namespace("ended")
    stream = await pair.b.client.namespace(namespace.id).watch()
    await pair.a.client.delete_namespace(namespace.id)

    async def drain() -> None:
        async for _ in stream:
            pass

    with pytest.raises(KVError) as ended:
        await asyncio.wait_for(drain(), 5)
    assert ended.value.kind is ErrorKind.NAMESPACE_NOT_FOUND


async def test_the_response_revision_follows_the_other_centrals_commits(pair: Pair) -> None:
    namespace = await pair.a.client.create_namespace("revisions")
    written = await pair.a.client.namespace(namespace.id).put("k", "v")

    async def b_has_heard() -> bool:
        return pair.b.server.storage.revision >= written.revision

    await _eventually(b_has_heard)


async def test_centrals_tell_which_store_they_serve(pair: Pair, redis_url: str) -> None:
    """A client given several addresses compares these to find a replica pointed at
    another Redis database (a store of its own)."""
    other_db = redis_url.rsplit("/", 1)[0] + "/5"
    elsewhere = await _start(other_db, pair.clock, CentralSettings())
    try:
        ids = [
            (await replica.client.stub.Authorize(pb.AuthorizeRequest())).store_id
            for replica in (pair.a, pair.b, elsewhere)
        ]
    finally:
        await elsewhere.client.close()
        await elsewhere.server.stop(grace_s=0)
    assert ids[0] == ids[1] == pair.a.server.storage.store_id
    assert ids[2] != ids[0] and ids[2] == elsewhere.server.storage.store_id


async def test_a_central_that_fell_behind_the_feed_starts_again_from_the_store(
    redis_url: str,
) -> None:
    """Its position trimmed away, a follower cannot know what it missed: it reloads."""
    writer = await RedisStorage.open(redis_url)
    reader = await RedisStorage.open(redis_url)
    for store in (writer, reader):  # a short feed, trimmed after a few commits
        store._feed_length = 10
    namespace_id = "0123456789abcdef0123456789abcdef"
    await writer.create_namespace(Namespace(namespace_id, "behind", 0.0), max_namespaces=10)
    applied: list[FeedEvent] = []
    resyncs: list[int] = []

    async def apply(event: FeedEvent) -> None:
        applied.append(event)

    async def resync() -> None:
        resyncs.append(len(applied))

    follower = FeedFollower(reader, apply, resync)
    await follower.mark()  # then it stops reading while 1,000 commits go by
    for i in range(1000):
        await writer.commit([Put(namespace_id, f"k{i}", b"v", None, None)], 1.0)
    follower.start()
    try:
        await follower.catch_up()
    finally:
        await follower.stop()
        await writer.close()
        await reader.close()
    assert resyncs == [0]  # before applying anything of what is left
    assert applied and applied[-1].last_revision == 1000
    assert len(applied) < 1000


async def test_an_event_that_fails_to_apply_is_tried_again_not_dropped(redis_url: str) -> None:
    """Whatever applying an event raises, the follower goes on, from that event: a central
    whose follower died would serve a stale directory from then on."""
    store = await RedisStorage.open(redis_url)
    failures = [RuntimeError("a bug"), KVError(ErrorKind.STORAGE_FAILED, "Redis away")]
    applied: list[FeedEvent] = []

    async def apply(event: FeedEvent) -> None:
        if failures:
            raise failures.pop()
        applied.append(event)

    async def resync() -> None:
        raise AssertionError("nothing was trimmed")

    follower = FeedFollower(store, apply, resync)
    await follower.mark()
    follower.start()
    try:
        namespace_id = "fedcba9876543210fedcba9876543210"
        await store.create_namespace(Namespace(namespace_id, "again", 0.0), max_namespaces=10)
        await follower.catch_up()
    finally:
        await follower.stop()
        await store.close()
    assert [(event.kind, event.subject) for event in applied] == [("n+", namespace_id)]
    assert not failures


def _hold_back(replica: Replica, delay_s: float) -> None:
    """Make a central hear of every event of its feed ``delay_s`` late (a slow follower)."""
    follower = replica.server.service._feed
    assert follower is not None
    apply = follower._apply

    async def late(event: FeedEvent) -> None:
        await asyncio.sleep(delay_s)
        await apply(event)

    follower._apply = late


async def test_a_central_whose_feed_is_behind_still_serves_a_new_namespace(pair: Pair) -> None:
    """Its feed 3 s late (more than the 2 s a call waits for it to catch up), B asks the
    store itself before it calls a namespace unknown."""
    _hold_back(pair.b, 3.0)
    namespace = await pair.a.client.create_namespace("behind")
    await pair.b.client.namespace(namespace.id).put("k", "through b")
    assert await pair.a.client.namespace(namespace.id).get("k") == "through b"


async def test_a_centrals_own_overwritten_puts_reach_its_watchers_with_their_values(
    pair: Pair,
) -> None:
    """A's feed is late, so both puts are committed before A hears of the first: the change
    log no longer holds the first value, yet A's watcher gets it, as one central sent it."""
    namespace = await pair.a.client.create_namespace("values")
    stream = await pair.a.client.namespace(namespace.id).watch(include_values=True)
    _hold_back(pair.a, 0.3)
    await pair.a.client.namespace(namespace.id).put("k", "first")
    pair.clock.advance(1.0)
    await pair.a.client.namespace(namespace.id).put("k", "second")
    values = []
    async for change in stream:
        assert change.version is not None, change
        values.append(change.version.value)
        if len(values) == 2:
            break
    stream.close()
    assert values == [b"first", b"second"]


async def test_a_delete_through_one_takes_the_keys_second_on_the_other(pair: Pair) -> None:
    namespace = await pair.a.client.create_namespace("deleted")
    await pair.a.client.namespace(namespace.id).put("k", "v")
    pair.clock.advance(1.0)
    await pair.b.client.namespace(namespace.id).delete("k")  # a write: it takes the second
    with pytest.raises(KVError) as refused:
        await pair.a.client.namespace(namespace.id).put("k", "again")
    assert refused.value.kind is ErrorKind.WRITE_RATE_LIMITED
    pair.clock.advance(1.0)
    await pair.a.client.namespace(namespace.id).put("k", "again")


async def test_a_clock_behind_the_last_write_does_not_refuse_the_key(redis_url: str) -> None:
    """A store reused by a new session (a scaled clock re-anchored) or a replica whose
    host's clock lags: a write 'before' the last one is no write within its second."""
    store = await RedisStorage.open(redis_url)
    store.judge_write_rate(1.0)
    namespace_id = "00112233445566778899aabbccddeeff"
    try:
        await store.create_namespace(Namespace(namespace_id, "clock", 0.0), max_namespaces=10)
        [first] = await store.commit([Put(namespace_id, "k", b"1", None, None)], 100_000.0)
        [earlier] = await store.commit([Put(namespace_id, "k", b"2", None, None)], 50_000.0)
        [soon] = await store.commit([Put(namespace_id, "k", b"3", None, None)], 50_000.5)
    finally:
        await store.close()
    assert (first.rate_limited, earlier.rate_limited, soon.rate_limited) == (False, False, True)


async def test_a_central_that_started_on_an_empty_feed_knows_when_it_was_trimmed(
    redis_url: str,
) -> None:
    """Its position is "0-0": events trimmed before its first read are lost to it too."""
    writer = await RedisStorage.open(redis_url)
    reader = await RedisStorage.open(redis_url)
    for store in (writer, reader):
        store._feed_length = 10
    try:
        namespace_id = "0123456789abcdef0123456789abcdef"
        await writer.create_namespace(Namespace(namespace_id, "empty", 0.0), max_namespaces=10)
        for i in range(1000):
            await writer.commit([Put(namespace_id, f"k{i}", b"v", None, None)], 1.0)
        _, trimmed = await reader.read_feed("0-0", 1000, 100)
    finally:
        await writer.close()
        await reader.close()
    assert trimmed


async def test_an_event_that_always_fails_is_given_up_for_a_fresh_start(redis_url: str) -> None:
    """Retried forever, one bad event would stop this central following for good."""
    store = await RedisStorage.open(redis_url)
    applied: list[str] = []
    resyncs: list[int] = []

    async def apply(event: FeedEvent) -> None:
        if event.kind == "n+":
            raise RuntimeError("this event never applies")
        applied.append(event.kind)

    async def resync() -> None:
        resyncs.append(len(applied))

    follower = FeedFollower(store, apply, resync)
    await follower.mark()
    follower.start()
    try:
        await store.create_namespace(
            Namespace("99999999999999999999999999999999", "bad", 0.0), max_namespaces=10
        )
        await store.delete_namespace("99999999999999999999999999999999")
        deadline = asyncio.get_running_loop().time() + 10
        while applied != ["n-"]:
            assert asyncio.get_running_loop().time() < deadline, (applied, resyncs)
            await asyncio.sleep(0.05)
    finally:
        await follower.stop()
        await store.close()
    assert resyncs == [0]
