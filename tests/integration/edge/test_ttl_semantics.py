"""The edge's consistency model (Workers KV's): cacheTtl decides what an edge may serve.

Two edges and central share one ManualClock; time moves only when a test says
so, so every age below is exact. The writing edge reads its own write at once;
any other edge serves the copy it holds until the copy is older than the
reader's cacheTtl — "not found" copies included — and never a key past its
expiration.
"""

from __future__ import annotations

import math

import pytest

import edgekv
from edge.node import EdgePolicy
from edgekv.clock import ManualClock
from tests.integration.edge.conftest import Cluster


def seen(read: edgekv.ValueWithMetadata) -> tuple[object, str | None]:
    return read.value, read.cache_status


@pytest.mark.parametrize("cache_ttl", [None, 30, 300], ids=["default-60", "30", "300"])
async def test_writer_reads_its_write_at_once_other_edges_when_their_copy_expires(
    cluster: Cluster, clock: ManualClock, cache_ttl: int | None
) -> None:
    ttl = 60 if cache_ttl is None else cache_ttl
    a = await cluster.add_edge("a", "us-east")
    b = await cluster.add_edge("b", "eu-west")
    await a.kv.put("k", "old")
    clock.advance(1)
    first = await b.kv.get_with_metadata("k", cache_ttl=cache_ttl)
    assert seen(first) == ("old", "MISS") and first.info.age_s == 0.0
    assert (first.info.node, first.info.region) == ("b", "eu-west")
    filled_at = clock.now()

    clock.advance(5)
    written = await a.kv.put("k", "new")
    mine = await a.kv.get_with_metadata("k", cache_ttl=cache_ttl)
    assert seen(mine) == ("new", "HIT"), "the writing edge must read its own write at once"
    assert mine.info.age_s == 0.0
    assert mine.info.revision == written.revision
    assert (mine.info.node, mine.info.region) == ("a", "us-east")

    for age in (5.0, ttl / 2, ttl - 1, ttl - 0.25):
        clock.set(filled_at + age)
        read = await b.kv.get_with_metadata("k", cache_ttl=cache_ttl)
        assert seen(read) == ("old", "HIT"), f"B must serve its copy at age {age} < {ttl}"
        assert read.info.age_s == pytest.approx(age)
        assert read.info.revision == first.info.revision

    clock.set(filled_at + ttl)
    expired = await b.kv.get_with_metadata("k", cache_ttl=cache_ttl)
    assert seen(expired) == ("new", "EXPIRED"), f"at age {ttl} B's copy is too old"
    assert expired.info.age_s == 0.0 and expired.info.revision == written.revision
    clock.advance(2)
    again = await b.kv.get_with_metadata("k", cache_ttl=cache_ttl)
    assert seen(again) == ("new", "HIT") and again.info.age_s == pytest.approx(2.0)

    stats = await b.stats()
    assert (stats.misses, stats.expired, stats.hits, stats.upstream_calls) == (1, 1, 5, 2)


async def test_writer_reads_its_delete_at_once(cluster: Cluster, clock: ManualClock) -> None:
    a = await cluster.add_edge("a", "us-east")
    b = await cluster.add_edge("b", "eu-west")
    await cluster.kv.put("k", "v")
    assert seen(await b.kv.get_with_metadata("k")) == ("v", "MISS")
    clock.advance(3)
    await a.kv.delete("k")
    assert seen(await a.kv.get_with_metadata("k")) == (None, "HIT")
    assert seen(await b.kv.get_with_metadata("k")) == ("v", "HIT")
    clock.advance(57)
    assert seen(await b.kv.get_with_metadata("k")) == (None, "EXPIRED")


async def test_a_smaller_cache_ttl_treats_an_older_copy_as_expired(
    cluster: Cluster, clock: ManualClock
) -> None:
    b = await cluster.add_edge("b")
    await cluster.kv.put("k", "old")
    assert seen(await b.kv.get_with_metadata("k", cache_ttl=300)) == ("old", "MISS")
    clock.advance(1)
    await cluster.kv.put("k", "new")
    clock.advance(44)  # the copy is 45 s old

    long = await b.kv.get_with_metadata("k", cache_ttl=300)
    assert seen(long) == ("old", "HIT") and long.info.age_s == pytest.approx(45)
    default = await b.kv.get_with_metadata("k")
    assert seen(default) == ("old", "HIT"), "45 s < the default cacheTtl of 60"
    short = await b.kv.get_with_metadata("k", cache_ttl=30)
    assert seen(short) == ("new", "EXPIRED"), "a 45 s old copy is expired for cacheTtl 30"
    assert seen(await b.kv.get_with_metadata("k", cache_ttl=300)) == ("new", "HIT")


async def test_not_found_is_cached_until_the_ttl_passes(
    cluster: Cluster, clock: ManualClock
) -> None:
    a = await cluster.add_edge("a", "us-east")
    b = await cluster.add_edge("b", "eu-west")
    looked = await b.kv.get_with_metadata("later")
    assert seen(looked) == (None, "MISS") and looked.info.revision == 0
    looked_at = clock.now()
    clock.advance(1)
    created = await cluster.kv.put("later", "here")

    for age in (1.0, 30.0, 59.5):
        clock.set(looked_at + age)
        read = await b.kv.get_with_metadata("later")
        assert seen(read) == (None, "HIT"), f"B must keep its 'not found' copy at age {age}"
        assert read.info.age_s == pytest.approx(age)
    assert seen(await a.kv.get_with_metadata("later")) == ("here", "MISS"), (
        "an edge that never looked sees the key at once"
    )

    clock.set(looked_at + 60)
    appeared = await b.kv.get_with_metadata("later")
    assert seen(appeared) == ("here", "EXPIRED")
    assert appeared.info.revision == created.revision


async def test_an_unchanged_key_comes_back_revalidated(
    cluster: Cluster, clock: ManualClock
) -> None:
    b = await cluster.add_edge("b")
    put = await cluster.kv.put("k", "same")
    assert seen(await b.kv.get_with_metadata("k")) == ("same", "MISS")
    assert seen(await b.kv.get_with_metadata("absent")) == (None, "MISS")
    clock.advance(61)

    revalidated = await b.kv.get_with_metadata("k")
    assert seen(revalidated) == ("same", "REVALIDATED")
    assert revalidated.info.age_s == 0.0 and revalidated.info.revision == put.revision
    assert seen(await b.kv.get_with_metadata("absent")) == (None, "REVALIDATED")
    clock.advance(10)
    hit = await b.kv.get_with_metadata("k")
    assert seen(hit) == ("same", "HIT") and hit.info.age_s == pytest.approx(10)
    stats = await b.stats()
    assert (stats.misses, stats.revalidated, stats.expired, stats.hits) == (2, 2, 0, 1)


async def test_a_cached_copy_never_outlives_its_keys_expiration(
    cluster: Cluster, clock: ManualClock
) -> None:
    a = await cluster.add_edge("a", "us-east")
    b = await cluster.add_edge("b", "eu-west")
    c = await cluster.add_edge("c", "ap-southeast", policy=EdgePolicy(max_stale_s=3600))
    written = await a.kv.put("short-lived", "v", expiration_ttl=60)
    expiration = math.floor(written.commit_time) + 60
    assert seen(await b.kv.get_with_metadata("short-lived", cache_ttl=300)) == ("v", "MISS")
    assert seen(await c.kv.get_with_metadata("short-lived", cache_ttl=300)) == ("v", "MISS")

    clock.set(expiration - 0.5)
    assert seen(await b.kv.get_with_metadata("short-lived", cache_ttl=300)) == ("v", "HIT")

    clock.set(expiration)
    gone = await b.kv.get_with_metadata("short-lived", cache_ttl=300)
    assert gone.value is None, "an edge must not serve a key past its expiration"
    assert gone.cache_status == "EXPIRED"
    writer = await a.kv.get_with_metadata("short-lived", cache_ttl=300)
    assert writer.value is None, "the writing edge's own copy expires with the key too"
    assert writer.cache_status != "HIT"

    # Cut off from central, an edge holding a copy of the expired key serves
    # what the copy says now: the key is gone.
    await c.set_link(partitioned=True)
    stale = await c.kv.get_with_metadata("short-lived", cache_ttl=300)
    assert seen(stale) == (None, "STALE")
