"""The edge's cache policy: one pure decision function for values and list pages alike.

Theory of operation: an edge keeps *copies* of what central answered — a
value, "not found" (negative caching), or a page of a key listing — each
stamped with when central answered (its time and its revision). A read
brings its own ``cacheTtl`` T, and walks through at most three steps, each
decided here by :func:`decide`:

1. :class:`Looked` — the read looked its slot up in the cache. A copy younger
   than T whose key has not expired answers as a **HIT** (a later read with a
   smaller T therefore treats an older copy as expired, as Workers KV
   documents); with refresh-ahead on, a HIT in the last ``refresh_fraction``
   of T also asks for a background refresh. Otherwise: **fetch** from central.
   A fresh copy is not enough when the caller's right to read the namespace
   is not known yet (``access_known``): central must see the caller, so the
   read fetches — access checks fit in here without a second path.
2. :class:`Answered` — central answered. The read reports **MISS** (the edge
   had no copy, or only one a change invalidated), **REVALIDATED** (central
   still has what the copy held) or **EXPIRED** (it has something else), and
   the answer is *kept* unless the cache meanwhile holds a copy central
   produced later — an invalidated copy stamped with the change's revision
   counts, so an answer fetched before the change is not kept — or the answer
   is older than a floor: the revision from which a watch covers the
   namespace, or at which its list pages were dropped.
3. :class:`Unreachable` — central could not be reached. The old copy is served
   as **STALE** if it is at most ``max_stale_s`` past its freshness, else the
   read **fails**: the edge never invents data. Nothing is kept or dropped.

A copy never outlives its key's expiration. Nothing here reads a clock or
does I/O: steps come in, decisions go out; :mod:`edge.node` carries them out.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, Protocol, Self, TypeVar

from edgekv.core.listing import ListPage
from edgekv.core.model import Version

# Bytes a cache entry costs beyond its key, value and metadata (bookkeeping),
# so that a cache of many tiny entries is still bounded.
ENTRY_OVERHEAD_BYTES = 200


class CacheStatus(enum.Enum):
    HIT = "HIT"
    MISS = "MISS"
    EXPIRED = "EXPIRED"
    STALE = "STALE"
    REVALIDATED = "REVALIDATED"


class Copy(Protocol):
    """What the policy needs to know of any cached copy."""

    @property
    def fetched_at(self) -> float:
        """Simulated time central answered (or the commit, for a write kept here)."""
        ...

    @property
    def fetched_at_revision(self) -> int:
        """Central's newest revision when it answered."""
        ...

    @property
    def expires_at(self) -> float | None:
        """When the copy's content stops being true by itself (a key's expiration)."""
        ...

    def same_content(self, other: Self) -> bool:
        """Does ``other`` (a newer answer) say what this copy says?"""
        ...


CopyT = TypeVar("CopyT", bound=Copy)


@dataclass(frozen=True, slots=True)
class CachedValue:
    """A copy of what central answered for one key."""

    namespace_id: str
    key: str
    # None is a negative entry: central said the key does not exist.
    version: Version | None
    fetched_at: float
    fetched_at_revision: int

    @property
    def revision(self) -> int:
        return 0 if self.version is None else self.version.revision

    @property
    def expires_at(self) -> float | None:
        return None if self.version is None else self.version.expiration

    @property
    def size_bytes(self) -> int:
        size = ENTRY_OVERHEAD_BYTES + len(self.key.encode("utf-8"))
        if self.version is not None:
            size += len(self.version.value) + len(self.version.metadata_json or "")
        return size

    def same_content(self, other: CachedValue) -> bool:
        return self.revision == other.revision

    def served_version(self, now: float) -> Version | None:
        """What the copy says now: its version, or None once the key has expired."""
        if self.version is None or not self.version.is_live(now):
            return None
        return self.version


# Where a page lives: namespace, prefix, limit and cursor of the request.
PageSlot = tuple[str, str, int, str | None]


def invalidated(namespace_id: str, key: str, revision: int) -> CachedValue:
    """What a cache keeps of a key a change (at ``revision``) invalidated.

    Deleting the copy would not do: an answer fetched before the change and
    arriving after it would then be kept, and served as fresh for a whole
    cacheTtl. This copy is fetched "at minus infinity", so it is never fresh
    and never stale-servable, but it is stamped with the change's revision, so
    :func:`worth_keeping` keeps only answers central gave from that revision on.
    """
    return CachedValue(namespace_id, key, None, -math.inf, fetched_at_revision=revision)


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A copy of one list page; it stops being true when its first key expires."""

    slot: PageSlot
    page: ListPage
    fetched_at: float
    fetched_at_revision: int
    # Worked out once, when the copy is made: every hit asks for the first, and a page
    # holds up to 1000 keys.
    expires_at: float | None = field(init=False, compare=False)
    size_bytes: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        expirations = [key.expiration for key in self.page.keys if key.expiration is not None]
        object.__setattr__(self, "expires_at", min(expirations) if expirations else None)
        size_bytes = ENTRY_OVERHEAD_BYTES + sum(
            ENTRY_OVERHEAD_BYTES // 4 + len(key.name.encode("utf-8")) + len(key.metadata_json or "")
            for key in self.page.keys
        )
        object.__setattr__(self, "size_bytes", size_bytes)

    def same_content(self, other: CachedPage) -> bool:
        return self.page == other.page


@dataclass(frozen=True, slots=True)
class CachePolicy:
    # How long past its freshness a copy may still be served when central is away.
    max_stale_s: float = 0.0
    # Refresh a copy read in the last fraction of its TTL (0 = no refresh-ahead).
    refresh_fraction: float = 0.0

    def retention_s(self, cache_ttl_s: float) -> float:
        """How long a store should keep a copy: fresh for the filling read, then stale-servable."""
        return cache_ttl_s + self.max_stale_s


# -- the steps of a read ------------------------------------------------------
#
# Steps and decisions are named tuples: immutable like frozen dataclasses, and
# about twice as quick to make, which a read that hits pays for on every call.


class Looked(NamedTuple, Generic[CopyT]):
    """The read looked its slot up; ``held`` is the copy found, if any."""

    held: CopyT | None
    cache_ttl_s: float
    now: float
    # False while the caller's right to read the namespace is unchecked.
    access_known: bool = True


class Answered(NamedTuple, Generic[CopyT]):
    """Central answered the fetch the read asked for."""

    # What the read found before fetching (too old, or nothing).
    previous: CopyT | None
    answer: CopyT
    # What the cache holds now: another read or a write may have stored a copy meanwhile.
    held: CopyT | None
    # Copies central produced before this revision may have missed a change (watch modes).
    floor_revision: int = 0


class Unreachable(NamedTuple, Generic[CopyT]):
    """Central could not be reached (after the upstream's retries)."""

    previous: CopyT | None
    cache_ttl_s: float
    now: float


Step = Looked[CopyT] | Answered[CopyT] | Unreachable[CopyT]


# -- the decisions --------------------------------------------------------------


class Serve(NamedTuple, Generic[CopyT]):
    """Answer the read from ``copy``."""

    copy: CopyT
    status: CacheStatus
    age_s: float
    # Also refresh the copy from central in the background (refresh-ahead).
    refresh: bool = False
    # Store ``copy`` in the cache (an answer worth keeping).
    keep: bool = False


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask central."""


@dataclass(frozen=True, slots=True)
class Fail:
    """Central is away and no copy may stand in for it."""


FETCH = Fetch()
FAIL = Fail()
Decision = Serve[CopyT] | Fetch | Fail


def decide(step: Step[CopyT], policy: CachePolicy) -> Decision[CopyT]:
    """What a read does next, given what it has seen so far."""
    match step:
        case Looked():
            return _after_lookup(step, policy)
        case Answered():
            return _after_answer(step)
        case Unreachable():
            return _after_failure(step, policy)
    raise TypeError(f"not a step of a read: {step!r}")


def _after_lookup(step: Looked[CopyT], policy: CachePolicy) -> Serve[CopyT] | Fetch:
    held = step.held
    if held is None or not step.access_known or not is_fresh(held, step.cache_ttl_s, step.now):
        return FETCH
    age_s = step.now - held.fetched_at
    refresh_from_s = step.cache_ttl_s * (1 - policy.refresh_fraction)
    refresh = policy.refresh_fraction > 0 and age_s >= refresh_from_s
    return Serve(held, CacheStatus.HIT, max(0.0, age_s), refresh=refresh)


def _after_answer(step: Answered[CopyT]) -> Serve[CopyT]:
    previous, answer = step.previous, step.answer
    if previous is None or _is_invalidated(previous):
        status = CacheStatus.MISS
    elif previous.same_content(answer):
        status = CacheStatus.REVALIDATED
    else:
        status = CacheStatus.EXPIRED
    keep = worth_keeping(answer, step.held, step.floor_revision)
    return Serve(answer, status, 0.0, keep=keep)


def _after_failure(step: Unreachable[CopyT], policy: CachePolicy) -> Serve[CopyT] | Fail:
    previous = step.previous
    if previous is None or _is_invalidated(previous):  # even with max_stale_s infinite
        return FAIL
    past_freshness_s = step.now - (previous.fetched_at + step.cache_ttl_s)
    if past_freshness_s > policy.max_stale_s:
        return FAIL
    return Serve(previous, CacheStatus.STALE, max(0.0, step.now - previous.fetched_at))


def _is_invalidated(copy: Copy) -> bool:
    """A copy a change invalidated (see :func:`invalidated`): no copy at all, to a read."""
    return copy.fetched_at == -math.inf


def is_fresh(copy: Copy, cache_ttl_s: float, now: float) -> bool:
    """May ``copy`` answer a read with this cacheTtl now, without asking central?"""
    if copy.expires_at is not None and now >= copy.expires_at:
        return False
    return now - copy.fetched_at < cache_ttl_s


def worth_keeping(answer: Copy, held: Copy | None, floor_revision: int = 0) -> bool:
    """Keep ``answer`` unless it may have missed a change, or the cache holds as late a copy.

    Copies are ordered by central's revision when it answered, then by the
    time it answered: an answer of the same revision but later renews an
    old copy's freshness (a REVALIDATED read), while the copy another reader
    of the same fetch kept already is not stored twice.
    """
    if answer.fetched_at_revision < floor_revision:
        return False
    if held is None:
        return True
    return (held.fetched_at_revision, held.fetched_at) < (
        answer.fetched_at_revision,
        answer.fetched_at,
    )
