"""When central cannot be reached: STALE within max_stale_s, else UNAVAILABLE, then recovery.

Central is stopped for real (and restarted on the same port over the same
SQLite file), or the edge's modelled link is partitioned or made lossy. Time
is a ManualClock shared by all, except where the modelled link's delays are
the subject: there a ScaledClock at 1000x makes 100 ms of RTT 0.1 ms of real
time.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from pathlib import Path

import pytest

import edgekv
from edge.link import Link
from edge.node import EdgePolicy
from edge.upstream import RetrySettings
from edgekv.clock import ManualClock, ScaledClock
from edgekv.control import LinkSettings
from tests.integration.edge.conftest import Cluster, Edge, MakeCluster, eventually

MAX_STALE_S = 120


async def unavailable(edge: Edge, key: str) -> edgekv.UnavailableError:
    with pytest.raises(edgekv.UnavailableError) as caught:
        await edge.kv.get_with_metadata(key)
    return caught.value


async def test_a_stopped_central_means_stale_copies_then_unavailable_then_recovery(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    cluster = await make_cluster(storage_url=f"sqlite:{tmp_path / 'central.db'}")
    clock = cluster.clock
    assert isinstance(clock, ManualClock)
    b = await cluster.add_edge("b", "eu-west", policy=EdgePolicy(max_stale_s=MAX_STALE_S))
    strict = await cluster.add_edge("strict", "us-west")  # max_stale_s=0
    put = await cluster.kv.put("k", "v1")
    assert (await b.kv.get_with_metadata("k")).cache_status == "MISS"
    assert (await strict.kv.get_with_metadata("k")).cache_status == "MISS"
    filled_at = clock.now()

    await cluster.stop_central()

    clock.set(filled_at + 30)
    fresh = await b.kv.get_with_metadata("k")
    assert (fresh.value, fresh.cache_status) == ("v1", "HIT"), "a fresh copy needs no central"

    clock.set(filled_at + 100)  # 40 s past freshness, within max_stale_s
    stale = await b.kv.get_with_metadata("k")
    assert (stale.value, stale.cache_status) == ("v1", "STALE")
    assert stale.info.age_s == pytest.approx(100) and stale.info.revision == put.revision
    refused = await unavailable(strict, "k")
    assert "edge strict (us-west) cannot reach the central store" in refused.message

    never_cached = await unavailable(b, "never-cached")
    assert never_cached.reason.startswith(
        "edge b (eu-west) cannot reach the central store and has no copy it may serve: "
    ), never_cached.message

    clock.set(filled_at + 60 + MAX_STALE_S)  # exactly max_stale_s past freshness: still ok
    assert (await b.kv.get_with_metadata("k")).cache_status == "STALE"
    clock.set(filled_at + 60 + MAX_STALE_S + 1)
    too_old = await unavailable(b, "k")
    assert "edge b (eu-west)" in too_old.message
    stats = await b.stats()
    assert stats.stale_serves == 2 and stats.upstream_errors >= 3

    await cluster.restart_central()

    async def recovered() -> bool:
        try:
            await b.kv.get_with_metadata("k")
        except edgekv.UnavailableError:
            return False
        return True

    await eventually(recovered, timeout_s=5.0, what="the edge reaching the restarted central")
    back = await b.kv.get_with_metadata("k")
    assert (back.value, back.cache_status) == ("v1", "HIT")
    assert back.info.revision == put.revision, "central kept its data across the restart"
    assert await b.kv.get("never-cached") is None
    clock.advance(1)
    await b.kv.put("k", "v2")
    assert (await cluster.kv.get("k")) == "v2"


async def test_a_partitioned_link_serves_stale_refuses_writes_and_heals(
    cluster: Cluster, clock: ManualClock
) -> None:
    b = await cluster.add_edge("b", "eu-west", policy=EdgePolicy(max_stale_s=60))
    strict = await cluster.add_edge("strict", "us-west")
    await cluster.kv.put("k", "v1")
    for edge in (b, strict):
        assert (await edge.kv.get_with_metadata("k")).cache_status == "MISS"
        cut = await edge.set_link(partitioned=True)
        assert cut.partitioned
    filled_at = clock.now()

    clock.set(filled_at + 70)
    stale = await b.kv.get_with_metadata("k")
    assert (stale.value, stale.cache_status) == ("v1", "STALE")
    assert "cannot reach the central store" in (await unavailable(strict, "k")).message
    assert "has no copy it may serve" in (await unavailable(b, "never-cached")).message

    revision = cluster.revision
    with pytest.raises(edgekv.UnavailableError) as caught:
        await b.kv.put("k", "lost")
    assert caught.value.reason == (
        "edge b (eu-west) cannot reach the central store; the write was not applied: "
        "The link from b to the central store is partitioned."
    )
    assert caught.value.definite, "a write that never left the edge surely did not happen"
    with pytest.raises(edgekv.UnavailableError):
        await b.kv.delete("k")
    assert cluster.revision == revision, "a write across a partition must not reach central"
    assert await cluster.kv.get("k") == "v1"
    stale_again = await b.kv.get_with_metadata("k")
    assert (stale_again.value, stale_again.cache_status) == ("v1", "STALE"), (
        "a refused write must not change the edge's copy"
    )

    clock.set(filled_at + 60 + 61)  # past max_stale_s
    assert "edge b (eu-west)" in (await unavailable(b, "k")).message

    healed = await b.set_link(partitioned=False)
    assert not healed.partitioned
    back = await b.kv.get_with_metadata("k")
    assert (back.value, back.cache_status) == ("v1", "REVALIDATED")
    await b.kv.put("k", "v2")
    assert await cluster.kv.get("k") == "v2"
    assert cluster.revision == revision + 1


# -- a seeded, lossy, jittery link ---------------------------------------------------

LOSSY = LinkSettings(rtt_ms=20, jitter_ms=10, loss=0.3)
KEYS = [f"key-{i:02d}" for i in range(40)]
FAST = 1000.0  # simulated seconds per real second


async def outcome(edge: Edge, key: str) -> str:
    before = (await edge.stats()).upstream_errors
    try:
        read = await edge.kv.get_with_metadata(key, cache_ttl=30)
        status = read.cache_status or "?"
    except edgekv.UnavailableError:
        status = "UNAVAILABLE"
    errors = (await edge.stats()).upstream_errors - before
    return f"{status}/{errors}"


async def run_lossy_edge(cluster: Cluster, node: str, seed: int) -> list[str]:
    """Read every key twice through a lossy link: a fill, then once the copies are old."""
    edge = await cluster.add_edge(
        node,
        policy=EdgePolicy(max_stale_s=10**6),
        link=LOSSY,
        retry=RetrySettings(attempts=2),
        seed=seed,
    )
    outcomes = [await outcome(edge, key) for key in KEYS]
    await asyncio.sleep(31 / FAST + 0.02)  # every copy is now older than its cacheTtl
    outcomes += [await outcome(edge, key) for key in KEYS]
    return outcomes


async def test_loss_and_jitter_are_seeded_and_reproducible(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(clock=ScaledClock(scale=FAST))
    for key in KEYS[::2]:  # half the keys exist
        await cluster.kv.put(key, "v")

    first = await run_lossy_edge(cluster, "first", seed=7)
    same_seed = await run_lossy_edge(cluster, "same-seed", seed=7)
    other_seed = await run_lossy_edge(cluster, "other-seed", seed=8)

    assert first == same_seed, "the same seed must replay the same losses"
    assert first != other_seed, "another seed must give other losses"
    kinds = {entry.split("/")[0] for entry in first}
    # fill: MISS or UNAVAILABLE; later: REVALIDATED, STALE (copy kept), MISS or UNAVAILABLE
    assert {"MISS", "REVALIDATED", "STALE", "UNAVAILABLE"} <= kinds, first
    assert any(entry.endswith("/1") for entry in first), "some reads recover by a retry"


def test_link_round_trips_are_seeded_and_the_jitter_right_skewed() -> None:
    settings = LinkSettings(rtt_ms=100, jitter_ms=10)

    def samples(seed: int, count: int = 10_000) -> list[float]:
        link = Link(settings, random.Random(seed), ManualClock(), "n")
        return [link.sample_round_trip_s() for _ in range(count)]

    first, again, other = samples(1), samples(1), samples(2)
    assert first == again
    assert first != other
    assert min(first) >= 0.1, "jitter only adds to the RTT"
    jitter = [s - 0.1 for s in first]
    assert statistics.mean(jitter) > statistics.median(jitter), "jitter is right-skewed"
    assert statistics.mean(jitter) == pytest.approx(0.010, rel=0.1)
