"""The edge's whole read and write path, without sockets, on a manual clock.

Every test drives a real :class:`~edge.node.EdgeNode` in front of the real
central service through the in-process transport (messages serialised as on
the wire, errors through the same boundary), with ``edgekv.Client`` calling
the edge's real gRPC service. Time moves only when a test moves it.
"""

from __future__ import annotations

import asyncio
import re

import pytest

import edgekv
from edge.node import EdgePolicy
from edgekv.control import LinkSettings
from edgekv.core import limits
from edgekv.core.errors import ErrorKind, KVError
from edgekv.topology import Mode
from edgekv.v1 import central_pb2 as pb
from tests.support.inprocess_cluster import NO_CLIENT_RETRY, InProcessCluster, InProcessEdge


async def read(edge: InProcessEdge, key: str, cache_ttl: int | None = None) -> tuple[object, str]:
    answer = await edge.kv.get_with_metadata(key, cache_ttl=cache_ttl)
    return answer.value, str(answer.cache_status)


async def settle() -> None:
    """Let every task that can run, run, until each waits on the clock or is done."""
    for _ in range(100):
        await asyncio.sleep(0)


async def cross_link(cluster: InProcessCluster, rtt_s: float) -> None:
    """Move the clock over one round trip: the way out, then the way back."""
    for _ in range(2):
        await settle()
        cluster.clock.advance(rtt_s / 2)
    await settle()


# -- values ------------------------------------------------------------------------------


async def test_a_read_misses_then_hits_then_revalidates_then_sees_a_change(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge()
    await cluster.kv.put("k", "v1")
    assert await read(edge, "k") == ("v1", "MISS")
    cluster.clock.advance(59)
    assert await read(edge, "k") == ("v1", "HIT")
    cluster.clock.advance(1)
    assert await read(edge, "k") == ("v1", "REVALIDATED")
    await cluster.kv.put("k", "v2")
    assert await read(edge, "k") == ("v1", "HIT"), "a write elsewhere is not seen while fresh"
    cluster.clock.advance(60)
    assert await read(edge, "k") == ("v2", "EXPIRED")
    counters = edge.counters
    assert (counters.misses, counters.hits, counters.revalidated, counters.expired) == (1, 2, 1, 1)
    assert counters.upstream_calls == 3


async def test_a_missing_key_is_cached_as_missing(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge()
    assert await read(edge, "later") == (None, "MISS")
    await cluster.kv.put("later", "here")
    cluster.clock.advance(30)
    assert await read(edge, "later") == (None, "HIT")
    cluster.clock.advance(30)
    assert await read(edge, "later") == ("here", "EXPIRED")


async def test_a_smaller_cache_ttl_treats_an_older_copy_as_expired(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge()
    await cluster.kv.put("k", "v1")
    assert await read(edge, "k", cache_ttl=300) == ("v1", "MISS")
    await cluster.kv.put("k", "v2")
    cluster.clock.advance(100)
    assert await read(edge, "k", cache_ttl=300) == ("v1", "HIT")
    assert await read(edge, "k", cache_ttl=30) == ("v2", "EXPIRED")


async def test_a_copy_never_outlives_its_keys_expiration(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge()
    await cluster.kv.put("k", "v", expiration_ttl=60)
    cluster.clock.advance(0.5)
    assert await read(edge, "k", cache_ttl=300) == ("v", "MISS")
    cluster.clock.advance(59.5)
    assert await read(edge, "k", cache_ttl=300) == (None, "EXPIRED")


async def test_the_writing_edge_reads_its_own_write_at_once(cluster: InProcessCluster) -> None:
    edge, other = await cluster.add_edge("eu-west"), await cluster.add_edge("us-west")
    assert await read(other, "k") == (None, "MISS")
    written = await edge.kv.put("k", "mine", metadata={"a": 1}, expiration_ttl=3600)
    answer = await edge.kv.get_with_metadata("k")
    assert (answer.value, answer.metadata, answer.cache_status) == ("mine", {"a": 1}, "HIT")
    assert answer.info.revision == written.revision and answer.info.age_s == 0.0
    assert await read(other, "k") == (None, "HIT"), "other edges are not told"
    await edge.kv.delete("k")
    assert await read(edge, "k") == (None, "HIT")
    assert edge.counters.upstream_calls == 2, "the two writes, and no read"


async def test_concurrent_misses_of_one_key_share_one_upstream_call(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge(link=LinkSettings(rtt_ms=80))
    await cluster.kv.put("k", "v")
    readers = [asyncio.ensure_future(read(edge, "k")) for _ in range(5)]
    await cross_link(cluster, 0.08)
    assert await asyncio.gather(*readers) == [("v", "MISS")] * 5
    assert edge.counters.upstream_calls == 1


async def test_refresh_ahead_renews_a_hot_copy_in_the_background(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge(policy=EdgePolicy(refresh_fraction=0.25))
    await cluster.kv.put("k", "v1")
    assert await read(edge, "k") == ("v1", "MISS")
    await cluster.kv.put("k", "v2")
    cluster.clock.advance(50)  # in the last quarter of the 60 s cacheTtl
    assert await read(edge, "k") == ("v1", "HIT")
    await settle()
    assert edge.counters.refreshes == 1
    cluster.clock.advance(20)  # the first copy would be too old now; the refreshed one is not
    assert await read(edge, "k") == ("v2", "HIT")


async def test_a_bulk_read_asks_central_once_for_its_misses(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge()
    for key in "abc":
        await cluster.kv.put(key, key.upper())
    assert await read(edge, "a") == ("A", "MISS")
    answers = await edge.kv.get_with_metadata(["a", "b", "c", "missing"])
    statuses = {key: None if r is None else (r.value, r.cache_status) for key, r in answers.items()}
    assert statuses == {"a": ("A", "HIT"), "b": ("B", "MISS"), "c": ("C", "MISS"), "missing": None}
    assert edge.counters.upstream_calls == 2


async def half_way(cluster: InProcessCluster, rtt_s: float) -> None:
    """Move the clock over the way out: central has answered, the answer is on its way back."""
    await settle()
    cluster.clock.advance(rtt_s / 2)
    await settle()


async def test_an_answer_central_gave_before_an_invalidation_does_not_undo_it(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge(
        policy=EdgePolicy(mode=Mode.INVALIDATE), link=LinkSettings(rtt_ms=200)
    )
    await cluster.kv.put("k", "v1")
    warming = asyncio.ensure_future(read(edge, "other"))  # starts the namespace's watcher
    for _ in range(3):
        await cross_link(cluster, 0.2)
    await warming

    reading = asyncio.ensure_future(read(edge, "k"))
    await half_way(cluster, 0.2)  # central answered v1; the answer is on the way back
    edge.edge.link.change(rtt_ms=0)  # so the change overtakes it
    await cluster.kv.put("k", "v2")
    await settle()
    assert edge.counters.watch_changes == 1
    await half_way(cluster, 0.2)
    assert await reading == ("v1", "MISS")
    assert await read(edge, "k") == ("v2", "MISS"), "the late answer was not kept"


async def test_a_change_to_a_key_an_edge_neither_holds_nor_fetches_costs_it_no_entry(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge(policy=EdgePolicy(mode=Mode.INVALIDATE))
    assert await read(edge, "held") == (None, "MISS")  # starts the watcher; one entry
    for key in ("held", "never-read-1", "never-read-2"):
        await cluster.kv.put(key, "v")
    await settle()
    assert edge.counters.watch_changes == 3
    assert (await edge.node.cache.occupancy()).entries == 1, "only the held key is marked"
    assert await read(edge, "held") == ("v", "MISS")


# -- central away ---------------------------------------------------------------------


async def test_a_cut_off_edge_serves_stale_within_its_bound_then_fails(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge(policy=EdgePolicy(max_stale_s=100))
    await cluster.kv.put("k", "v")
    assert await read(edge, "k") == ("v", "MISS")
    edge.edge.link.change(partitioned=True)
    cluster.clock.advance(150)
    answer = await edge.kv.get_with_metadata("k")
    assert (answer.value, answer.cache_status, answer.info.age_s) == ("v", "STALE", 150.0)
    cluster.clock.advance(10.5)
    with pytest.raises(edgekv.UnavailableError, match="no copy it may serve"):
        await edge.kv.get("k")
    with pytest.raises(edgekv.UnavailableError, match="no copy it may serve"):
        await edge.kv.get("never-read")
    edge.edge.link.change(partitioned=False)
    assert await read(edge, "k") == ("v", "REVALIDATED")


def impatient(edge: InProcessEdge, deadline_s: float) -> edgekv.KVNamespace:
    """The edge's namespace through a client whose calls have a deadline of ``deadline_s``."""
    client = edgekv.Client(edge=edge.channel, timeout_s=deadline_s, retry=NO_CLIENT_RETRY)
    return client.namespace(edge.kv.id)


async def far_edge_holding(cluster: InProcessCluster, value: str) -> InProcessEdge:
    """An edge 80 ms from central that may serve STALE for 100 s, holding key "k" = value."""
    edge = await cluster.add_edge(policy=EdgePolicy(max_stale_s=100), link=LinkSettings(rtt_ms=80))
    await cluster.kv.put("k", value)
    reading = asyncio.ensure_future(read(edge, "k"))
    await cross_link(cluster, 0.08)
    assert await reading == (value, "MISS")
    return edge


async def test_a_read_gives_up_on_central_within_its_callers_deadline(
    cluster: InProcessCluster,
) -> None:
    # The link's way out waits on the manual clock, which stands still: central never
    # answers, as when it is stopped. Only the caller's deadline (real time) ends the wait.
    edge = await far_edge_holding(cluster, "v")
    cluster.clock.advance(61)

    kv = impatient(edge, deadline_s=0.3)
    answer = await kv.get_with_metadata("k")
    assert (answer.value, answer.cache_status) == ("v", "STALE")
    with pytest.raises(edgekv.UnavailableError, match="no copy it may serve") as caught:
        await kv.get("never-read")
    assert caught.value.kind is ErrorKind.UNAVAILABLE, "the edge answered, in time"
    with pytest.raises(KVError) as refused:
        await kv.put("k", "v2")
    assert refused.value.kind is ErrorKind.UNAVAILABLE_NOT_APPLIED, "cut off on the link's way out"


async def test_a_reader_sharing_a_slower_readers_fetch_stops_at_its_own_deadline(
    cluster: InProcessCluster,
) -> None:
    edge = await far_edge_holding(cluster, "v1")
    await cluster.kv.put("k", "v2")
    cluster.clock.advance(61)

    patient = asyncio.ensure_future(read(edge, "k"))  # leads the fetch, 30 s to wait
    await settle()
    answer = await impatient(edge, deadline_s=0.3).get_with_metadata("k")
    assert (answer.value, answer.cache_status) == ("v1", "STALE")
    assert not patient.done()
    await cross_link(cluster, 0.08)
    assert await patient == ("v2", "EXPIRED"), "the shared fetch went on"
    assert edge.counters.upstream_calls == 2


async def test_a_write_through_a_cut_off_edge_fails_definitely(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge()
    edge.edge.link.change(partitioned=True)
    with pytest.raises(KVError) as caught:
        await edge.kv.put("k", "v")
    assert caught.value.kind is ErrorKind.UNAVAILABLE_NOT_APPLIED and caught.value.definite
    assert await cluster.kv.get("k") is None


async def test_refusals_are_not_hidden_by_stale_copies(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge(policy=EdgePolicy(max_stale_s=1000))
    await cluster.kv.put("k", "v")
    assert await read(edge, "k") == ("v", "MISS")
    await cluster.admin.delete_namespace(cluster.kv.id)
    cluster.clock.advance(61)
    with pytest.raises(edgekv.NotFoundError, match="namespace not found"):
        await edge.kv.get("k")


async def test_bad_input_is_refused_with_the_registrys_words(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge()
    with pytest.raises(edgekv.InvalidRequestError, match="exceeds key length limit of 512"):
        await edge.kv.get("k" * 513)
    with pytest.raises(edgekv.InvalidRequestError, match="Cache TTL must be at least 30"):
        await edge.kv.get("k", cache_ttl=29)
    assert edge.counters.upstream_calls == 0, "bad input never costs an upstream call"


async def test_an_edge_takes_expirations_up_to_9999_and_refuses_one_second_more(
    cluster: InProcessCluster,
) -> None:
    """The gRPC contract's bound (the REST API has no int32 range, so neither has it)."""
    edge = await cluster.add_edge()
    latest = limits.MAX_EXPIRATION_S
    largest_ttl = latest - int(cluster.clock.now())

    async def put(key: str, **expiry: int) -> object:
        stub = edge.client.edge_stub
        assert stub is not None
        request = pb.PutRequest(namespace_id=cluster.kv.id, key=key.encode(), value=b"v", **expiry)
        return await edge.client.call(stub.Put, request)

    await put("at", expiration=latest)
    await put("ttl", expiration_ttl=largest_ttl)
    assert edge.counters.upstream_calls == 2
    with pytest.raises(edgekv.InvalidRequestError, match="must be at most 253402300799 "):
        await put("past", expiration=latest + 1)
    with pytest.raises(edgekv.InvalidRequestError, match=f"must be at most {largest_ttl},"):
        await put("past-ttl", expiration_ttl=largest_ttl + 1)
    assert edge.counters.upstream_calls == 2, "bad input never costs an upstream call"
    listed = await cluster.kv.list()
    assert [(key.name, key.expiration) for key in listed.keys] == [("at", latest), ("ttl", latest)]


INT32_RANGE = "Value out of range. Must be between -2147483648 and 2147483647 (inclusive)."


@pytest.mark.parametrize("argument", ["expiration", "expiration_ttl"])
async def test_the_python_binding_takes_int32s_as_a_workers_binding_does(
    cluster: InProcessCluster, argument: str
) -> None:
    """2**31 - 1 passes the binding's range check (then the core's rules apply); 2**31 is a
    TypeError, before any request — through an edge as at central."""
    edge = await cluster.add_edge()
    for kv in (cluster.kv, edge.kv):
        await kv.put(f"in-{argument}", "v", **{argument: 2**31 - 1})
        for outside in (2**31, -(2**31) - 1, 1e10):
            with pytest.raises(edgekv.InvalidRequestError) as caught:
                await kv.put("out", "v", **{argument: outside})
            assert isinstance(caught.value, TypeError)
            assert (caught.value.kind, caught.value.message) == (
                ErrorKind.VALUE_OUT_OF_RANGE,
                INT32_RANGE,
            )
    assert edge.counters.upstream_calls == 1, "refused before any request"
    with pytest.raises(TypeError, match=re.escape(INT32_RANGE)):
        await edge.kv.get("k", cache_ttl=2**31)
    with pytest.raises(TypeError, match=re.escape(INT32_RANGE)):
        await edge.kv.list(limit=2**31)


# -- list pages go the same way -----------------------------------------------------------


async def names(edge: InProcessEdge, prefix: str = "") -> tuple[list[str], str | None]:
    page = await edge.kv.list(prefix=prefix)
    return [key.name for key in page.keys], page.cache_status


async def test_list_pages_miss_hit_and_expire_like_values(cluster: InProcessCluster) -> None:
    edge = await cluster.add_edge()
    await cluster.kv.put("a1", "x")
    assert await names(edge, "a") == (["a1"], "MISS")
    await cluster.kv.put("a2", "x")
    cluster.clock.advance(59)
    assert await names(edge, "a") == (["a1"], "HIT")
    cluster.clock.advance(1)
    assert await names(edge, "a") == (["a1", "a2"], "EXPIRED")
    cluster.clock.advance(60)
    assert await names(edge, "a") == (["a1", "a2"], "REVALIDATED")
    await edge.kv.put("a3", "x")
    assert await names(edge, "a") == (["a1", "a2", "a3"], "MISS"), "a write drops the pages"


async def test_list_pages_are_served_stale_coalesced_and_refreshed_ahead(
    cluster: InProcessCluster,
) -> None:
    policy = EdgePolicy(max_stale_s=100, refresh_fraction=0.25)
    edge = await cluster.add_edge(policy=policy, link=LinkSettings(rtt_ms=20))
    await cluster.kv.put("a1", "x")
    listers = [asyncio.ensure_future(names(edge)) for _ in range(3)]
    await cross_link(cluster, 0.02)
    assert await asyncio.gather(*listers) == [(["a1"], "MISS")] * 3
    assert edge.counters.upstream_calls == 1
    await cluster.kv.put("a2", "x")
    cluster.clock.advance(50)
    assert await names(edge) == (["a1"], "HIT")
    await cross_link(cluster, 0.02)
    assert edge.counters.refreshes == 1
    edge.edge.link.change(partitioned=True)
    cluster.clock.advance(100)
    assert await names(edge) == (["a1", "a2"], "STALE"), "the refreshed page"


async def test_a_page_central_gave_before_this_edges_own_write_is_not_kept(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge(link=LinkSettings(rtt_ms=200))
    await cluster.kv.put("a1", "x")
    listing = asyncio.ensure_future(names(edge))
    await half_way(cluster, 0.2)  # central listed a1; the page is on the way back
    edge.edge.link.change(rtt_ms=0)
    await edge.kv.put("a2", "x")  # written, and the namespace's pages dropped, before it lands
    await half_way(cluster, 0.2)
    assert await listing == (["a1"], "MISS")
    assert await names(edge) == (["a1", "a2"], "MISS"), "the writing edge reads its own write"
