"""The edge's cache policy (edgekv.core.cache) and modelled link, without sockets."""

from __future__ import annotations

import math
import random
import statistics

import pytest

import edgekv
from edge.link import Link
from edge.pages import PageCache
from edgekv.clock import ManualClock
from edgekv.control import LinkSettings
from edgekv.core.cache import (
    FAIL,
    FETCH,
    Answered,
    CachedPage,
    CachedValue,
    CachePolicy,
    CacheStatus,
    Looked,
    Serve,
    Unreachable,
    decide,
    invalidated,
    worth_keeping,
)
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.listing import ListPage
from edgekv.core.model import KeyInfo, Version

T0 = 1_000.0
PLAIN = CachePolicy()


def version(revision: int = 3, expiration: int | None = None) -> Version:
    return Version("k", b"v", None, expiration, revision=revision, commit_time=T0)


def copy_of(
    value: Version | None, fetched_at: float = T0, fetched_at_revision: int = 7
) -> CachedValue:
    return CachedValue("ns", "k", value, fetched_at, fetched_at_revision)


def looked(
    held: CachedValue | None, ttl_s: float, now: float, policy: CachePolicy = PLAIN
) -> object:
    return decide(Looked(held, ttl_s, now), policy)


def test_a_copy_younger_than_the_readers_ttl_is_a_hit() -> None:
    copy = copy_of(version())
    assert looked(copy, 60, T0 + 59.9) == Serve(copy, CacheStatus.HIT, pytest.approx(59.9))
    assert looked(copy, 60, T0 + 60) is FETCH
    assert looked(None, 60, T0) is FETCH


def test_a_smaller_cache_ttl_treats_an_older_copy_as_expired() -> None:
    copy = copy_of(version())
    assert isinstance(looked(copy, 300, T0 + 100), Serve)
    assert looked(copy, 30, T0 + 100) is FETCH


def test_a_copy_never_outlives_its_keys_expiration() -> None:
    copy = copy_of(version(expiration=int(T0) + 10))
    assert isinstance(looked(copy, 300, T0 + 9), Serve)
    assert looked(copy, 300, T0 + 10) is FETCH


def test_refresh_ahead_in_the_last_fraction_of_the_ttl() -> None:
    copy = copy_of(version())
    ahead = CachePolicy(refresh_fraction=0.25)
    assert looked(copy, 60, T0 + 44, ahead) == Serve(copy, CacheStatus.HIT, 44.0, refresh=False)
    assert looked(copy, 60, T0 + 45, ahead) == Serve(copy, CacheStatus.HIT, 45.0, refresh=True)
    assert looked(copy, 60, T0 + 45) == Serve(copy, CacheStatus.HIT, 45.0, refresh=False)


def test_a_fresh_copy_is_not_enough_while_the_callers_access_is_unchecked() -> None:
    copy = copy_of(version())
    assert decide(Looked(copy, 60, T0 + 1, access_known=False), PLAIN) is FETCH


def status_after(previous: CachedValue | None, answer: CachedValue) -> CacheStatus:
    served = decide(Answered(previous, answer, held=previous), PLAIN)
    assert isinstance(served, Serve) and served.age_s == 0.0
    return served.status


def test_status_after_a_fetch() -> None:
    five, six = copy_of(version(5), T0 + 70), copy_of(version(6), T0 + 70)
    not_found = copy_of(None, T0 + 70)
    assert status_after(None, five) is CacheStatus.MISS
    assert status_after(copy_of(version(5)), five) is CacheStatus.REVALIDATED
    assert status_after(copy_of(None), not_found) is CacheStatus.REVALIDATED  # still not found
    assert status_after(copy_of(version(5)), six) is CacheStatus.EXPIRED
    assert status_after(copy_of(None), six) is CacheStatus.EXPIRED  # created since


def test_an_answer_is_kept_unless_the_cache_holds_a_later_copy_or_it_predates_the_floor() -> None:
    answer = copy_of(version(5), T0 + 70, fetched_at_revision=9)
    assert decide(Answered(None, answer, held=None), PLAIN) == Serve(
        answer, CacheStatus.MISS, 0.0, keep=True
    )
    later = copy_of(version(6), T0 + 71, fetched_at_revision=10)
    assert not worth_keeping(answer, held=later)
    # the same revision answered later renews an old copy's freshness ...
    assert worth_keeping(answer, held=copy_of(version(5), T0, fetched_at_revision=9))
    # ... but the copy another reader of the same fetch kept is not stored again
    assert not worth_keeping(answer, held=answer)
    # a watch that covers the namespace from revision 10 on: 9 may have missed a change
    assert not worth_keeping(answer, held=None, floor_revision=10)
    assert not decide(Answered(None, answer, None, floor_revision=10), PLAIN).keep  # type: ignore[union-attr]


def test_stale_serving_is_bounded() -> None:
    copy = copy_of(version())
    policy = CachePolicy(max_stale_s=30)
    assert decide(Unreachable(copy, 60, T0 + 60 + 30), policy) == Serve(
        copy, CacheStatus.STALE, 90.0
    )
    assert decide(Unreachable(copy, 60, T0 + 60 + 30.001), policy) is FAIL
    assert decide(Unreachable(copy, 60, T0 + 61), PLAIN) is FAIL
    assert decide(Unreachable(None, 60, T0), policy) is FAIL


def test_an_invalidated_copy_is_no_copy_to_a_read() -> None:
    mark = invalidated("ns", "k", revision=12)
    for ttl_s in (30, 60, 3600):
        assert looked(mark, ttl_s, T0) is FETCH
    answer = copy_of(version(5), T0, fetched_at_revision=11)
    assert status_after(mark, answer) is CacheStatus.MISS
    assert not worth_keeping(answer, held=mark), "central answered before the change"
    assert worth_keeping(copy_of(version(6), T0, fetched_at_revision=12), held=mark)
    never_stale = CachePolicy(max_stale_s=math.inf)
    assert decide(Unreachable(mark, 60, T0), never_stale) is FAIL, "not 'not found'"


def test_a_stale_copy_of_an_expired_key_says_not_found() -> None:
    expiring = version(expiration=int(T0) + 100)
    copy = copy_of(expiring)
    assert copy.served_version(T0 + 99) is expiring
    assert copy.served_version(T0 + 100) is None
    assert copy.revision == 3 and copy_of(None).revision == 0
    assert copy.size_bytes > len(b"v")


def test_pages_go_through_the_same_policy() -> None:
    keys = [KeyInfo("a", None, None), KeyInfo("b", int(T0) + 50, '{"x":1}')]
    page = CachedPage(("ns", "", 1000, None), ListPage(keys, True, None), T0, 4)
    assert page.expires_at == T0 + 50
    assert decide(Looked(page, 60, T0 + 49), PLAIN) == Serve(page, CacheStatus.HIT, 49.0)
    assert decide(Looked(page, 60, T0 + 50), PLAIN) is FETCH  # its first key expired
    same = CachedPage(page.slot, ListPage(list(keys), True, None), T0 + 50, 5)
    other = CachedPage(page.slot, ListPage(keys[:1], True, None), T0 + 50, 6)
    assert decide(Answered(page, same, page), PLAIN).status is CacheStatus.REVALIDATED  # type: ignore[union-attr]
    assert decide(Answered(page, other, page), PLAIN).status is CacheStatus.EXPIRED  # type: ignore[union-attr]


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
    assert caught.value.definite and caught.value.transient
    assert "edge-1" in caught.value.message


def test_link_settings_are_validated() -> None:
    with pytest.raises(edgekv.InvalidRequestError, match="probability"):
        LinkSettings(loss=1.5).validated()
    with pytest.raises(edgekv.InvalidRequestError, match=">= 0"):
        LinkSettings(rtt_ms=-1).validated()
    link = Link(LinkSettings(), random.Random(0), ManualClock(), "n")
    assert link.change(rtt_ms=5).rtt_ms == 5


def test_page_floors_are_bounded_and_an_old_one_is_folded_in_not_lost() -> None:
    pages = PageCache(max_bytes=1 << 20, max_floors=2)
    for namespace_id, revision in (("a", 5), ("b", 6), ("c", 7)):
        pages.flush(namespace_id, revision)
    assert (pages.floor("b"), pages.floor("c")) == (6, 7)
    # a's floor made room; every namespace without its own floor now has it
    assert pages.floor("a") == 5 and pages.floor("never-changed") == 5
