"""The edge's read path: shared misses, refresh-ahead, big values, bad input, flush and stats.

Central and the edges share one ManualClock. Where a test needs an upstream
call to be *in flight* it gives the edge a modelled RTT: the call then waits on
the ManualClock until the test moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

import edgekv
from edge.node import EdgePolicy
from edgekv.clock import ManualClock
from edgekv.control import LinkSettings
from edgekv.core import limits
from edgekv.core.cache import ENTRY_OVERHEAD_BYTES
from edgekv.rpc import error_from_rpc
from edgekv.v1 import edge_pb2
from tests.integration.edge.conftest import Cluster, eventually

MiB = 1024 * 1024
CALLERS = 50


async def test_concurrent_misses_of_one_key_make_one_upstream_call(
    cluster: Cluster, clock: ManualClock
) -> None:
    b = await cluster.add_edge("b", link=LinkSettings(rtt_ms=100))
    await cluster.kv.put("hot", "value")
    arrived: list[str] = []
    # The node calls this hook first thing in every read (the watchers use it in
    # other modes); with a memory cache nothing between it and joining the
    # in-flight fetch yields, so "arrived" means "waiting for the one fetch".
    b.server.node.on_namespace = arrived.append
    before = await b.stats()

    reads = [asyncio.ensure_future(b.kv.get_with_metadata("hot")) for _ in range(CALLERS)]

    async def all_arrived() -> bool:
        return len(arrived) == CALLERS

    await eventually(all_arrived, what=f"{CALLERS} reads reaching the edge")
    assert not any(read.done() for read in reads), "the fetch waits for the modelled RTT"

    async def all_answered() -> bool:
        clock.advance(0.05)  # half the modelled round trip at a time
        return all(read.done() for read in reads)

    await eventually(all_answered, what="the shared fetch to finish")
    results = await asyncio.gather(*reads)
    assert [r.value for r in results] == ["value"] * CALLERS, "every caller gets the value"
    assert {r.cache_status for r in results} == {"MISS"}, (
        "each caller was served without a cached copy: each is a MISS"
    )
    after = await b.stats()
    assert after.upstream_calls - before.upstream_calls == 1, "the misses share one fetch"
    assert after.misses - before.misses == CALLERS
    assert after.hits == before.hits
    assert after.upstream_bytes - before.upstream_bytes == len("value")


async def test_refresh_ahead_renews_a_hot_copy_in_the_background(
    cluster: Cluster, clock: ManualClock
) -> None:
    b = await cluster.add_edge("b", policy=EdgePolicy(refresh_fraction=0.5))
    await cluster.kv.put("hot", "v1")
    assert (await b.kv.get_with_metadata("hot")).cache_status == "MISS"
    filled_at = clock.now()
    clock.advance(10)
    await cluster.kv.put("hot", "v2")

    clock.set(filled_at + 29.5)  # first half of the TTL: no refresh
    early = await b.kv.get_with_metadata("hot")
    assert (early.value, early.cache_status) == ("v1", "HIT")
    assert (await b.stats()).refreshes == 0

    clock.set(filled_at + 30)  # second half: served from the copy, refreshed behind
    late = await b.kv.get_with_metadata("hot")
    assert (late.value, late.cache_status) == ("v1", "HIT")

    async def refreshed() -> bool:
        stats = await b.stats()
        return stats.refreshes == 1 and stats.upstream_bytes == len("v1") + len("v2")

    await eventually(refreshed, what="the background refresh")

    clock.set(filled_at + 61)  # the first copy would have expired by now
    after = await b.kv.get_with_metadata("hot")
    assert (after.value, after.cache_status) == ("v2", "HIT"), (
        "the refreshed copy must answer after the original TTL"
    )
    assert after.info.age_s == pytest.approx(31), "the refresh reset the copy's age"
    # Age 31 is again in the second half of the TTL: that HIT refreshes too.
    stats = await b.stats()
    assert (stats.misses, stats.expired, stats.hits, stats.refreshes) == (1, 0, 3, 2)


async def test_a_25_mib_value_round_trips_through_edges(cluster: Cluster) -> None:
    a = await cluster.add_edge("a", "us-east")
    b = await cluster.add_edge("b", "eu-west")
    value = bytes(range(256)) * (limits.MAX_VALUE_BYTES // 256)
    assert len(value) == 26_214_400
    await a.kv.put("big", value)

    elsewhere = await b.kv.get_with_metadata("big", type="bytes")
    assert elsewhere.cache_status == "MISS" and elsewhere.value == value
    again = await b.kv.get_with_metadata("big", type="bytes")
    assert again.cache_status == "HIT" and again.value == value
    own = await a.kv.get_with_metadata("big", type="bytes")
    assert own.cache_status == "HIT" and own.value == value
    assert await cluster.kv.get("big", type="bytes") == value
    assert (await b.stats()).upstream_bytes == len(value)


async def refusal(call: Awaitable[Any]) -> edgekv.KVError:
    with pytest.raises(edgekv.KVError) as caught:
        await call
    return caught.value


BAD_INPUT: list[tuple[str, Callable[[edgekv.KVNamespace], Awaitable[Any]], str]] = [
    ("get, empty key", lambda kv: kv.get(""), "Key name cannot be empty."),
    (
        "get, 513-byte key",
        lambda kv: kv.get("k" * 513),
        "UTF-8 encoded length of 513 exceeds key length limit of 512.",
    ),
    ("put, empty key", lambda kv: kv.put("", "v"), "Key name cannot be empty."),
    (
        "put, 513-byte key",
        lambda kv: kv.put("k" * 513, "v"),
        "UTF-8 encoded length of 513 exceeds key length limit of 512.",
    ),
    ("delete, empty key", lambda kv: kv.delete(""), "Key name cannot be empty."),
    (
        "put, value of 25 MiB + 1",
        lambda kv: kv.put("k", b"x" * (25 * MiB + 1)),
        "Value length of 26214401 exceeds limit of 26214400.",
    ),
    (
        "put, metadata of 1025 bytes",
        lambda kv: kv.put("k", "v", metadata="m" * 1023),  # JSON: 1023 + 2 quotes
        "Metadata length of 1025 exceeds limit of 1024.",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
async def test_bad_input_is_refused_at_the_edge_as_at_central_without_an_upstream_call(
    cluster: Cluster,
    call: Callable[[edgekv.KVNamespace], Awaitable[Any]],
    message: str,
) -> None:
    b = await cluster.add_edge("b")
    at_central = await refusal(call(cluster.kv))
    before, revision = await b.stats(), cluster.revision
    at_edge = await refusal(call(b.kv))
    # The same words, bare (as central says them) and as a Worker's binding reports them.
    assert at_edge.reason == at_central.reason == message
    assert at_edge.message == at_central.message
    assert at_edge.kind is at_central.kind
    assert type(at_edge) is type(at_central)
    assert isinstance(at_edge, edgekv.InvalidRequestError)
    assert (await b.stats()).upstream_calls == before.upstream_calls, (
        "bad input must be refused before any upstream call"
    )
    assert cluster.revision == revision


async def test_a_cache_ttl_below_30_is_refused_by_the_edge(cluster: Cluster) -> None:
    b = await cluster.add_edge("b")
    message = "Invalid cache_ttl of 29. Cache TTL must be at least 30."
    stub = b.client.edge_stub
    assert stub is not None
    ns = cluster.namespace_id
    before = await b.stats()
    raw_calls: list[tuple[Any, Any]] = [
        (stub.Get, edge_pb2.EdgeGetRequest(namespace_id=ns, key=b"k", cache_ttl=29)),
        (stub.GetMany, edge_pb2.EdgeGetManyRequest(namespace_id=ns, keys=[b"k"], cache_ttl=29)),
        (stub.List, edge_pb2.EdgeListRequest(namespace_id=ns, cache_ttl=29)),
    ]
    for method, request in raw_calls:  # the raw stub: the client would refuse it first
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        refused = error_from_rpc(caught.value)
        assert refused.message == message
        assert refused.kind is edgekv.ErrorKind.CACHE_TTL_TOO_SMALL
    assert (await b.stats()).upstream_calls == before.upstream_calls
    # The client refuses it locally with the same words, as a Worker's binding reports them.
    assert (await refusal(b.kv.get("k", cache_ttl=29))).message == f"KV GET failed: 400 {message}"
    assert (await b.kv.get_with_metadata("k", cache_ttl=30)).cache_status == "MISS"


async def test_an_unknown_namespace_is_not_found_at_the_edge(cluster: Cluster) -> None:
    b = await cluster.add_edge("b")
    unknown = "0123456789abcdef" * 2
    assert unknown != cluster.namespace_id
    for operation in ("get", "put"):
        at_edge_kv = b.client.namespace(unknown)
        at_central_kv = cluster.central_namespace(unknown)
        if operation == "get":
            at_edge = await refusal(at_edge_kv.get("k"))
            at_central = await refusal(at_central_kv.get("k"))
        else:
            at_edge = await refusal(at_edge_kv.put("k", "v"))
            at_central = await refusal(at_central_kv.put("k", "v"))
        assert isinstance(at_edge, edgekv.NotFoundError), at_edge
        assert at_edge.kind is edgekv.ErrorKind.NAMESPACE_NOT_FOUND
        assert at_edge.message == at_central.message
        assert unknown in at_edge.message


async def test_flush_drops_every_copy_and_stats_count_them(cluster: Cluster) -> None:
    b = await cluster.add_edge("b")
    await cluster.kv.put("k1", "a" * 1000)
    await cluster.kv.put("k2", "x", metadata={"m": 1})
    for key in ("k1", "k2", "absent"):
        assert (await b.kv.get_with_metadata(key)).cache_status == "MISS"

    stats = await b.stats()
    expected_bytes = (
        (ENTRY_OVERHEAD_BYTES + 2 + 1000)
        + (ENTRY_OVERHEAD_BYTES + 2 + 1 + len('{"m":1}'))
        + (ENTRY_OVERHEAD_BYTES + len("absent"))
    )
    assert (stats.entries, stats.bytes_cached) == (3, expected_bytes)
    assert (stats.region, stats.node, stats.mode) == ("eu-west", "b", "ttl")

    assert await b.control.flush("f" * 32) == 0, "flushing another namespace drops nothing"
    assert await b.control.flush(cluster.namespace_id) == 3
    stats = await b.stats()
    assert (stats.entries, stats.bytes_cached) == (0, 0)

    after = await b.kv.get_with_metadata("k1")
    assert (after.value, after.cache_status) == ("a" * 1000, "MISS"), "a flushed copy is gone"
    assert await b.control.flush() == 1
    assert (await b.kv.get_with_metadata("k1")).cache_status == "MISS"


async def test_a_bulk_read_fetches_all_its_misses_in_one_upstream_call(
    cluster: Cluster, clock: ManualClock
) -> None:
    b = await cluster.add_edge("b")
    await cluster.kv.bulk_put([{"key": f"k{i}", "value": f"v{i}"} for i in range(5)])
    assert await b.kv.get("k0") == "v0"  # one copy is cached already
    before = await b.stats()

    read = await b.kv.get_with_metadata(["k0", "k1", "k2", "k3", "k4", "absent", "k1"])

    after = await b.stats()
    assert after.upstream_calls - before.upstream_calls == 1, "the misses share one GetMany"
    assert {key: r.cache_status if r else None for key, r in read.items()} == {
        "k0": "HIT",
        "k1": "MISS",
        "k2": "MISS",
        "k3": "MISS",
        "k4": "MISS",
        "absent": None,
    }
    assert [read[f"k{i}"].value for i in range(5)] == [f"v{i}" for i in range(5)]  # type: ignore[union-attr]
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 5)
    again = await b.kv.get(["k1", "k2", "absent"])
    assert again == {"k1": "v1", "k2": "v2", "absent": None}
    assert (await b.stats()).upstream_calls == after.upstream_calls, "all cached now, absent too"
