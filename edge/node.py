"""The edge node: reads through the cache, writes through to central.

Theory of operation: the node carries out what the core's policy
(:func:`edgekv.core.cache.decide`) decides, and does the I/O the policy may
not do. It speaks core values only — keys, versions, pages, commits — and
leaves protobuf to the services and to :class:`~edge.upstream.Upstream`.

* **Read** (a value, or a page of a listing — the same path). Look the slot
  up, let the policy judge the copy against the reader's cacheTtl: a HIT
  answers from the copy (and may start a refresh-ahead in the background).
  Otherwise fetch from central — concurrent fetches of one slot share one
  upstream call (:class:`~edge.flights.SingleFlight`) — and answer MISS,
  EXPIRED or REVALIDATED, keeping the answer when the policy says so. If
  central cannot be reached after the upstream's retries, the policy says
  whether the old copy may be served as STALE; if not the read fails
  UNAVAILABLE. A bulk read asks central once for all its keys that miss.
* **Write.** Validate with the core (so bad input never costs an upstream
  call), send to central, and once central acknowledges, keep the new value
  (or "not found") as a copy, so the writing region reads its own write at
  once; the namespace's cached pages go.
* **Deadline.** Every read and write may carry a ``deadline`` — event-loop
  time (real seconds) by which the node must be done with central to answer
  its caller in time; the service derives it from the caller's gRPC deadline.
  The upstream's attempts share what is left of it, and a read that shares
  another's fetch stops waiting for it there; either way the read ends as if
  central had not answered (STALE or UNAVAILABLE) before its caller gives up.
* **Ordering.** A copy never replaces one that central produced later, so a
  slow read that started before a write cannot overwrite the write's copy.
* **Modes.** ``ttl`` (Workers KV: nobody tells an edge about writes made
  elsewhere), ``invalidate`` and ``push`` (a watcher per namespace applies
  central's Watch stream; see :mod:`edge.watcher`, which hooks in through
  ``on_namespace`` and ``revision_floor``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from edge.cache.base import CacheStore
from edge.flights import SingleFlight
from edge.pages import PageCache
from edge.upstream import Upstream
from edgekv.clock import Clock
from edgekv.control import EdgeCounters
from edgekv.core import limits
from edgekv.core.cache import (
    Answered,
    CachedPage,
    CachedValue,
    CachePolicy,
    CacheStatus,
    Copy,
    Looked,
    PageSlot,
    Serve,
    Unreachable,
    decide,
    worth_keeping,
)
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import ListPage, parse_list_request
from edgekv.core.model import Committed, Version
from edgekv.core.validation import (
    validate_delete,
    validate_namespace_id,
    validate_put,
    validate_read,
    validate_read_many,
)
from edgekv.topology import Mode

log = logging.getLogger(__name__)

ContentT = TypeVar("ContentT")
ContentT_co = TypeVar("ContentT_co", covariant=True)
CopyT = TypeVar("CopyT", bound=Copy)
SlotT = TypeVar("SlotT", tuple[str, str], PageSlot)
ValueSlot = tuple[str, str]
# The failures of reaching central: the link's, and the transport's.
REACHING_CENTRAL = frozenset(
    {
        ErrorKind.LINK_DOWN,
        ErrorKind.REQUEST_LOST,
        ErrorKind.RESPONSE_LOST,
        ErrorKind.UNAVAILABLE,
        ErrorKind.UNAVAILABLE_NOT_APPLIED,
        ErrorKind.DEADLINE_EXCEEDED,
    }
)


@dataclass(frozen=True, slots=True)
class EdgeIdentity:
    region: str
    node: str


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    mode: Mode = Mode.TTL
    # How long past its freshness a copy may still be served when central is away.
    max_stale_s: float = 0.0
    # Refresh a copy read in the last fraction of its TTL (0 = no refresh-ahead).
    refresh_fraction: float = 0.0

    @property
    def cache(self) -> CachePolicy:
        return CachePolicy(self.max_stale_s, self.refresh_fraction)


class Read(NamedTuple, Generic[ContentT]):
    """One answered read: what was served and how."""

    content: ContentT
    status: CacheStatus
    age_s: float
    fetched_at_revision: int


ValueRead = Read[Version | None]
PageRead = Read[ListPage]


def _log_failed_refresh(refreshing: asyncio.Future[Any]) -> None:
    """A refresh nobody waits for: its failure is only worth a line (a bug, an error)."""
    failure = None if refreshing.cancelled() else refreshing.exception()
    if isinstance(failure, KVError):
        log.debug("a background refresh failed: %s", failure.message)
    elif failure is not None:
        log.error("a background refresh failed on a bug", exc_info=failure)


class _Shelf(Protocol[SlotT, CopyT, ContentT_co]):
    """Where copies of one kind are looked up, fetched and kept."""

    flights: SingleFlight[SlotT, CopyT]

    def look(self, slot: SlotT) -> Awaitable[CopyT | None]: ...

    async def fetch(self, slot: SlotT, deadline: float | None) -> CopyT: ...

    async def keep(self, copy: CopyT, retention_s: float) -> None: ...

    def content(self, copy: CopyT, now: float) -> ContentT_co: ...

    def floor(self, namespace_id: str) -> int:
        """Copies central gave before this revision are out of date (beside a watch's floor)."""
        ...


class _Values:
    """Copies of values: in the cache store, fetched with central's Get."""

    def __init__(self, cache: CacheStore, upstream: Upstream) -> None:
        self.cache = cache
        self.upstream = upstream
        self.flights: SingleFlight[ValueSlot, CachedValue] = SingleFlight()

    def look(self, slot: ValueSlot) -> Awaitable[CachedValue | None]:
        return self.cache.get(*slot)  # the store's own awaitable: no extra coroutine per read

    async def fetch(self, slot: ValueSlot, deadline: float | None) -> CachedValue:
        return await self.upstream.get(*slot, deadline=deadline)

    async def keep(self, copy: CachedValue, retention_s: float) -> None:
        await self.cache.put(copy, retention_s)

    def content(self, copy: CachedValue, now: float) -> Version | None:
        return copy.served_version(now)

    def floor(self, namespace_id: str) -> int:
        return 0  # a value's own invalidated copy carries its floor (core.cache.invalidated)


class _Pages:
    """Copies of list pages: in the page cache, fetched with central's List."""

    def __init__(self, pages: PageCache, upstream: Upstream) -> None:
        self.pages = pages
        self.upstream = upstream
        self.flights: SingleFlight[PageSlot, CachedPage] = SingleFlight()

    async def look(self, slot: PageSlot) -> CachedPage | None:
        return self.pages.get(slot)

    async def fetch(self, slot: PageSlot, deadline: float | None) -> CachedPage:
        return await self.upstream.list(slot, deadline=deadline)

    async def keep(self, copy: CachedPage, retention_s: float) -> None:
        self.pages.put(copy)

    def content(self, copy: CachedPage, now: float) -> ListPage:
        return copy.page

    def floor(self, namespace_id: str) -> int:
        return self.pages.floor(namespace_id)


class EdgeNode:
    def __init__(
        self,
        identity: EdgeIdentity,
        policy: EdgePolicy,
        cache: CacheStore,
        pages: PageCache,
        upstream: Upstream,
        clock: Clock,
        counters: EdgeCounters,
    ) -> None:
        self.identity = identity
        self.policy = policy
        self.cache = cache
        self.pages = pages
        self.upstream = upstream
        self.clock = clock
        self.counters = counters
        self._cache_policy = policy.cache
        self._values = _Values(cache, upstream)
        self._pages = _Pages(pages, upstream)
        # The watchers hook in here (invalidate and push modes): they learn each
        # namespace the node serves, and say from which revision on they cover its
        # changes — a copy central produced before that may have missed one.
        self.on_namespace: Callable[[str], None] = lambda namespace_id: None
        self.revision_floor: Callable[[str], int] = lambda namespace_id: 0

    # -- reads ----------------------------------------------------------------

    async def get(
        self,
        namespace_id: str,
        raw_key: bytes,
        cache_ttl_s: float,
        deadline: float | None = None,
    ) -> ValueRead:
        namespace_id, key = validate_read(namespace_id, raw_key)
        slot = (self._serve_namespace(namespace_id), key)
        return await self._read_through(self._values, slot, cache_ttl_s, deadline)

    async def _read_through(
        self,
        shelf: _Shelf[SlotT, CopyT, ContentT],
        slot: SlotT,
        cache_ttl_s: float,
        deadline: float | None,
    ) -> Read[ContentT]:
        now = self.clock.now()
        held = await shelf.look(slot)
        decision = decide(Looked(held, cache_ttl_s, now), self._cache_policy)
        if isinstance(decision, Serve):
            self.counters.hits += 1
            if decision.refresh:
                self._refresh_in_background(shelf, slot, cache_ttl_s)
            return self._served(shelf, decision, now)
        try:
            answer = await shelf.flights.run(
                slot, lambda: self._fetched_and_kept(shelf, slot, deadline, cache_ttl_s), deadline
            )
        except KVError as failure:
            return self._served(shelf, self._unreachable(failure, held, cache_ttl_s, now), now)
        served = await self._answered(shelf, slot, held, answer, cache_ttl_s)
        return self._served(shelf, served, now)

    async def get_many(
        self,
        namespace_id: str,
        raw_keys: list[bytes],
        cache_ttl_s: float,
        deadline: float | None = None,
    ) -> list[ValueRead]:
        """Like ``get`` for each key, but the keys central must answer go in ONE call."""
        namespace_id, keys = validate_read_many(namespace_id, raw_keys)
        namespace_id = self._serve_namespace(namespace_id)
        shelf, now = self._values, self.clock.now()
        served: dict[str, Serve[CachedValue]] = {}
        held: dict[str, CachedValue | None] = {}
        for key in dict.fromkeys(keys):
            held[key] = await shelf.look((namespace_id, key))
            decision = decide(Looked(held[key], cache_ttl_s, now), self._cache_policy)
            if isinstance(decision, Serve):
                self.counters.hits += 1
                if decision.refresh:
                    self._refresh_in_background(shelf, (namespace_id, key), cache_ttl_s)
                served[key] = decision
        missing = [(namespace_id, key) for key in held if key not in served]
        if missing:
            try:
                answers = await shelf.flights.run_many(
                    missing,
                    lambda slots: self._fetched_many(slots, deadline, cache_ttl_s),
                    deadline,
                )
            except KVError as failure:
                for _, key in missing:
                    served[key] = self._unreachable(failure, held[key], cache_ttl_s, now)
            else:
                for slot, answer in answers.items():
                    served[slot[1]] = await self._answered(
                        shelf, slot, held[slot[1]], answer, cache_ttl_s
                    )
        return [self._served(shelf, served[key], now) for key in keys]

    async def _fetched_many(
        self, slots: list[ValueSlot], deadline: float | None, cache_ttl_s: float
    ) -> list[CachedValue]:
        """Central's answers for ``slots`` (ONE call), each kept as :meth:`_fetched_and_kept`."""
        namespace_id = slots[0][0]
        answers = await self.upstream.get_many(namespace_id, [key for _, key in slots], deadline)
        for slot, answer in zip(slots, answers, strict=True):
            await self._keep_if_worth(self._values, slot, answer, cache_ttl_s)
        return answers

    async def list(
        self,
        namespace_id: str,
        raw_prefix: bytes,
        limit: int,
        cursor: str,
        cache_ttl_s: float,
        deadline: float | None = None,
    ) -> PageRead:
        query = parse_list_request(namespace_id, raw_prefix, limit, cursor)
        slot: PageSlot = (
            self._serve_namespace(namespace_id),
            query.prefix,
            query.limit,
            cursor or None,
        )
        return await self._read_through(self._pages, slot, cache_ttl_s, deadline)

    async def _answered(
        self,
        shelf: _Shelf[SlotT, CopyT, ContentT],
        slot: SlotT,
        previous: CopyT | None,
        answer: CopyT,
        cache_ttl_s: float,
    ) -> Serve[CopyT]:
        """Central answered: the status to report, and the answer kept if (still) worth
        keeping — the fetch kept it already, unless it was dropped since."""
        step = Answered(previous, answer, await shelf.look(slot), self._floor(shelf, slot[0]))
        served = decide(step, self._cache_policy)
        assert isinstance(served, Serve)
        if served.keep:
            await shelf.keep(answer, self._cache_policy.retention_s(cache_ttl_s))
        self._count(served.status)
        return served

    async def _fetched_and_kept(
        self,
        shelf: _Shelf[SlotT, CopyT, ContentT],
        slot: SlotT,
        deadline: float | None,
        cache_ttl_s: float,
    ) -> CopyT:
        """Central's answer for ``slot``, kept if worth keeping by the fetch itself.

        A fetch runs in a task of its own (:mod:`edge.flights`): keeping its answer
        there, before its readers resume, leaves no moment in which the answer has
        arrived but is not yet weighed against the cache — a change the watcher
        applies in that moment would otherwise be undone by the keeping.
        """
        answer = await shelf.fetch(slot, deadline)
        await self._keep_if_worth(shelf, slot, answer, cache_ttl_s)
        return answer

    async def _keep_if_worth(
        self, shelf: _Shelf[SlotT, CopyT, ContentT], slot: SlotT, answer: CopyT, cache_ttl_s: float
    ) -> None:
        if worth_keeping(answer, await shelf.look(slot), self._floor(shelf, slot[0])):
            await shelf.keep(answer, self._cache_policy.retention_s(cache_ttl_s))

    def _unreachable(
        self, failure: KVError, previous: CopyT | None, cache_ttl_s: float, now: float
    ) -> Serve[CopyT]:
        """Central did not answer, or said it cannot now (its storage failed): STALE if
        the policy allows, else fail — in central's words when central said it."""
        if not failure.transient:
            raise failure
        decision = decide(Unreachable(previous, cache_ttl_s, now), self._cache_policy)
        if isinstance(decision, Serve):
            self.counters.stale_serves += 1
            return decision
        if failure.kind not in REACHING_CENTRAL:
            raise failure
        raise error(
            ErrorKind.UNAVAILABLE,
            detail=f"edge {self.identity.node} ({self.identity.region}) cannot reach the central "
            f"store and has no copy it may serve: {failure.message}",
        )

    def _served(
        self, shelf: _Shelf[SlotT, CopyT, ContentT], served: Serve[CopyT], now: float
    ) -> Read[ContentT]:
        return Read(
            shelf.content(served.copy, now),
            served.status,
            served.age_s,
            served.copy.fetched_at_revision,
        )

    def _refresh_in_background(
        self, shelf: _Shelf[SlotT, CopyT, ContentT], slot: SlotT, cache_ttl_s: float
    ) -> None:
        if shelf.flights.is_running(slot):
            return
        self.counters.refreshes += 1
        # Started (and registered) now, so the reads right after this one share it; the
        # fetch keeps its answer itself, and nobody waits for it (no deadline).
        refreshing = shelf.flights.start_one(
            slot, lambda: self._fetched_and_kept(shelf, slot, None, cache_ttl_s)
        )
        refreshing.add_done_callback(_log_failed_refresh)

    def is_fetching(self, namespace_id: str, key: str) -> bool:
        """Is a read of the key asking central right now (its answer not yet kept)?"""
        return self._values.flights.is_running((namespace_id, key))

    def _floor(self, shelf: _Shelf[SlotT, CopyT, ContentT], namespace_id: str) -> int:
        return max(self.revision_floor(namespace_id), shelf.floor(namespace_id))

    def _count(self, status: CacheStatus) -> None:
        if status is CacheStatus.MISS:
            self.counters.misses += 1
        elif status is CacheStatus.EXPIRED:
            self.counters.expired += 1
        elif status is CacheStatus.REVALIDATED:
            self.counters.revalidated += 1

    # -- writes -------------------------------------------------------------------

    async def put(
        self,
        namespace_id: str,
        raw_key: bytes,
        value: bytes,
        metadata_json: str | None = None,
        expiration: int | None = None,
        expiration_ttl: int | None = None,
        deadline: float | None = None,
    ) -> Committed:
        write = validate_put(
            namespace_id,
            raw_key,
            value,
            metadata_json,
            expiration,
            expiration_ttl,
            self.clock.now(),
        )
        self._serve_namespace(namespace_id)
        committed = await self._write_upstream(self.upstream.put(write, deadline))
        await self._keep_own_write(
            write.namespace_id, write.key, write.committed_version(committed), committed
        )
        return committed

    async def delete(
        self, namespace_id: str, raw_key: bytes, deadline: float | None = None
    ) -> Committed:
        write = validate_delete(namespace_id, raw_key)
        self._serve_namespace(namespace_id)
        committed = await self._write_upstream(self.upstream.delete(write, deadline))
        await self._keep_own_write(write.namespace_id, write.key, None, committed)
        return committed

    async def _write_upstream(self, call: Awaitable[Committed]) -> Committed:
        try:
            return await call
        except KVError as exc:
            # Central's own refusals (its storage failed, its file is gone) reach the
            # writer as central said them; only a failure to reach central is the edge's.
            if exc.kind not in REACHING_CENTRAL:
                raise
            outcome = "was not applied" if exc.definite else "may or may not have been applied"
            kind = ErrorKind.UNAVAILABLE_NOT_APPLIED if exc.definite else ErrorKind.UNAVAILABLE
            raise error(
                kind,
                detail=f"edge {self.identity.node} ({self.identity.region}) cannot reach the "
                f"central store; the write {outcome}: {exc.message}",
            ) from None

    async def _keep_own_write(
        self, namespace_id: str, key: str, version: Version | None, committed: Committed
    ) -> None:
        """The writing edge reads its own write: keep it as if fetched at the commit."""
        copy = CachedValue(
            namespace_id,
            key,
            version,
            fetched_at=committed.commit_time,
            fetched_at_revision=committed.revision,
        )
        held = await self.cache.get(namespace_id, key)
        if worth_keeping(copy, held, self.revision_floor(namespace_id)):
            retention_s = self._cache_policy.retention_s(limits.DEFAULT_CACHE_TTL_S)
            await self.cache.put(copy, retention_s)
        self.pages.flush(namespace_id, committed.revision)

    # -- namespaces and background work ----------------------------------------------

    def _serve_namespace(self, raw_id: str) -> str:
        namespace_id = validate_namespace_id(raw_id)
        self.on_namespace(namespace_id)
        return namespace_id

    async def flush(self, namespace_id: str | None) -> int:
        self.pages.flush(namespace_id)
        return await self.cache.flush(namespace_id)

    async def close(self) -> None:
        """Cancel the fetches still running (reads and background refreshes)."""
        await self._values.flights.close()
        await self._pages.flights.close()
