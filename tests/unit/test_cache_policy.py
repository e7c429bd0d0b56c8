"""The edge's cache policy (edgekv.core.cache) and modelled link, without sockets."""

from __future__ import annotations

import random
import statistics

import pytest

from edge.link import Link, LinkSettings
from edgekv.clock import ManualClock
from edgekv.core.cache import (
    CachedValue,
    CacheStatus,
    Freshness,
    judge,
    may_serve_stale,
    status_after_fetch,
)
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.model import Version

T0 = 1_000.0


def copy_of(version: Version | None, fetched_at: float = T0) -> CachedValue:
    return CachedValue("ns", "k", version, fetched_at, fetched_at_revision=7)


def test_a_copy_younger_than_the_readers_ttl_is_fresh() -> None:
    assert judge(T0, None, 60, T0 + 59.9) is Freshness.FRESH
    assert judge(T0, None, 60, T0 + 60) is Freshness.TOO_OLD


def test_a_smaller_cache_ttl_treats_an_older_copy_as_expired() -> None:
    assert judge(T0, None, 300, T0 + 100) is Freshness.FRESH
    assert judge(T0, None, 30, T0 + 100) is Freshness.TOO_OLD


def test_a_copy_never_outlives_its_keys_expiration() -> None:
    assert judge(T0, T0 + 10, 300, T0 + 9) is Freshness.FRESH
    assert judge(T0, T0 + 10, 300, T0 + 10) is Freshness.TOO_OLD


def test_refresh_ahead_in_the_last_fraction_of_the_ttl() -> None:
    assert judge(T0, None, 60, T0 + 44, refresh_fraction=0.25) is Freshness.FRESH
    assert judge(T0, None, 60, T0 + 45, refresh_fraction=0.25) is Freshness.FRESH_REFRESH
    assert judge(T0, None, 60, T0 + 45) is Freshness.FRESH


def test_status_after_a_fetch() -> None:
    assert status_after_fetch(None, 5) is CacheStatus.MISS
    assert status_after_fetch(5, 5) is CacheStatus.REVALIDATED
    assert status_after_fetch(0, 0) is CacheStatus.REVALIDATED  # still not found
    assert status_after_fetch(5, 6) is CacheStatus.EXPIRED
    assert status_after_fetch(0, 6) is CacheStatus.EXPIRED  # created since the negative copy


def test_stale_serving_is_bounded() -> None:
    assert may_serve_stale(T0, 60, T0 + 60 + 30, max_stale_s=30)
    assert not may_serve_stale(T0, 60, T0 + 60 + 30.001, max_stale_s=30)
    assert not may_serve_stale(T0, 60, T0 + 61, max_stale_s=0)


def test_a_stale_copy_of_an_expired_key_says_not_found() -> None:
    version = Version("k", b"v", None, int(T0) + 100, revision=3, commit_time=T0)
    copy = copy_of(version)
    assert copy.served_version(T0 + 99) is version
    assert copy.served_version(T0 + 100) is None
    assert copy.revision == 3 and copy_of(None).revision == 0
    assert copy.size_bytes > len(b"v")


def settings(**fields: float) -> LinkSettings:
    return LinkSettings(**fields)  # type: ignore[arg-type]


def test_link_delays_are_seeded_and_right_skewed() -> None:
    clock = ManualClock()

    def samples(seed: int) -> list[float]:
        link = Link(settings(rtt_ms=80, jitter_ms=10), random.Random(seed), clock, "n")
        return [link.sample_round_trip_s() for _ in range(2000)]

    first, again, other = samples(1), samples(1), samples(2)
    assert first == again
    assert first != other
    assert min(first) >= 0.080
    extra_ms = [(s - 0.080) * 1000 for s in first]
    assert statistics.mean(extra_ms) > statistics.median(extra_ms)  # right-skewed
    assert statistics.mean(extra_ms) == pytest.approx(10, rel=0.15)


async def test_link_loss_is_seeded_and_partition_refuses_at_once() -> None:
    clock = ManualClock()

    async def outcomes(seed: int) -> list[str]:
        link = Link(settings(loss=0.3), random.Random(seed), clock, "n")
        seen = []
        for _ in range(200):

            async def ok() -> str:
                return "ok"

            try:
                seen.append(await link.carry(ok))
            except KVError as exc:
                seen.append(exc.kind.value)
        return seen

    first = await outcomes(3)
    assert first == await outcomes(3)
    assert first != await outcomes(4)
    lost = sum(outcome != "ok" for outcome in first) / len(first)
    assert lost == pytest.approx(0.3, abs=0.08)
    assert {"REQUEST_LOST", "RESPONSE_LOST"} <= set(first)

    link = Link(settings(partitioned=True), random.Random(0), clock, "edge-1")
    with pytest.raises(KVError) as caught:
        await link.carry(lambda: None)  # type: ignore[arg-type,return-value]
    assert caught.value.kind is ErrorKind.LINK_DOWN
    assert caught.value.definite and caught.value.retryable
    assert "edge-1" in caught.value.message


def test_link_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="probability"):
        LinkSettings(loss=1.5).validated()
    with pytest.raises(ValueError, match=">= 0"):
        LinkSettings(rtt_ms=-1).validated()
    link = Link(LinkSettings(), random.Random(0), ManualClock(), "n")
    assert link.change(rtt_ms=5).rtt_ms == 5
