"""The edge node's logic: reads through the cache, writes through to central.

Theory of operation (the policy itself is :mod:`edgekv.core.cache`):

* **Read.** Look the key up in the cache store and let the policy judge the
  copy against the reader's cacheTtl. A fresh copy is a HIT (and may start a
  background refresh-ahead). Otherwise fetch from central — concurrent misses
  of one key share one upstream call — store the answer, "not found"
  included, and report MISS, EXPIRED or REVALIDATED. If central cannot be
  reached after the upstream's retries, serve the old copy as STALE when the
  policy allows, else fail UNAVAILABLE.
* **Write.** Validate with the core (so bad input never costs an upstream
  call), send to central, and once central acknowledges, cache the new value
  (or "not found") so the writing region reads its own write at once.
* **Ordering.** A copy never replaces one that central produced later
  (``fetched_at_revision``), so a slow read that started before a write
  cannot overwrite the write's copy.
* **Modes.** ``ttl`` (Workers KV: nobody tells an edge about writes made
  elsewhere), ``invalidate`` and ``push`` (a watcher per namespace applies
  central's Watch stream; see :mod:`edge.watcher`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from edge.cache.base import CacheStore
from edge.pages import CachedPage, PageCache, PageSlot
from edge.stats import EdgeCounters
from edge.upstream import Upstream
from edgekv.clock import Clock
from edgekv.core.cache import (
    CachedValue,
    CacheStatus,
    Freshness,
    judge,
    may_serve_stale,
    retention_s,
    status_after_fetch,
)
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import parse_list_request
from edgekv.core.model import Version
from edgekv.core.validation import (
    validate_delete,
    validate_get_many_keys,
    validate_key,
    validate_namespace_id,
    validate_put,
)
from edgekv.topology import Mode as Mode  # defined once, beside the topology's modes
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import kv_pb2
from edgekv.wire import entry_from_pb

log = logging.getLogger(__name__)
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class Read:
    """One answered read: what was served and how."""

    version: Version | None
    status: CacheStatus
    age_s: float
    fetched_at_revision: int


@dataclass(frozen=True, slots=True)
class PageRead:
    page: pb.ListResponse
    status: CacheStatus
    age_s: float
    fetched_at_revision: int


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
        self._inflight: dict[tuple[str, str], asyncio.Future[CachedValue]] = {}
        self._background: set[asyncio.Task[object]] = set()
        # The watchers hook in here (invalidate and push modes): they learn each
        # namespace the node serves, and say from which revision on they cover its
        # changes — a copy central produced before that may have missed one.
        self.on_namespace: Callable[[str], None] = lambda namespace_id: None
        self.revision_floor: Callable[[str], int] = lambda namespace_id: 0

    # -- reads ----------------------------------------------------------------

    async def get(self, namespace_id: str, raw_key: bytes, cache_ttl_s: int) -> Read:
        key = validate_key(raw_key)
        namespace_id = self._serve_namespace(namespace_id)
        now = self.clock.now()
        copy = await self.cache.get(namespace_id, key)
        hit = self._hit(namespace_id, key, copy, cache_ttl_s, now)
        if hit is not None:
            return hit
        try:
            fetched = await self._fetch(namespace_id, key, cache_ttl_s)
        except KVError as exc:
            return self._stale_or_raise(exc, copy, cache_ttl_s, now)
        return self._fetched(copy, fetched)

    async def get_many(
        self, namespace_id: str, raw_keys: list[bytes], cache_ttl_s: int
    ) -> list[Read]:
        """Like ``get`` for each key, but the keys central must answer go in ONE call."""
        keys = validate_get_many_keys(raw_keys)
        namespace_id = self._serve_namespace(namespace_id)
        now = self.clock.now()
        answers: dict[str, Read] = {}
        copies: dict[str, CachedValue | None] = {}
        for key in dict.fromkeys(keys):
            copy = copies[key] = await self.cache.get(namespace_id, key)
            hit = self._hit(namespace_id, key, copy, cache_ttl_s, now)
            if hit is not None:
                answers[key] = hit
        missing = [key for key in copies if key not in answers]
        if missing:
            try:
                fetched = await self._fetch_many(namespace_id, missing, cache_ttl_s)
            except KVError as exc:
                for key in missing:
                    answers[key] = self._stale_or_raise(exc, copies[key], cache_ttl_s, now)
            else:
                for key in missing:
                    answers[key] = self._fetched(copies[key], fetched[key])
        return [answers[key] for key in keys]

    def _hit(
        self,
        namespace_id: str,
        key: str,
        copy: CachedValue | None,
        cache_ttl_s: int,
        now: float,
    ) -> Read | None:
        """The HIT a fresh copy gives (starting a refresh-ahead when due), or None."""
        if copy is None:
            return None
        freshness = judge(
            copy.fetched_at, copy.expires_at, cache_ttl_s, now, self.policy.refresh_fraction
        )
        if freshness is Freshness.TOO_OLD:
            return None
        self.counters.hits += 1
        if freshness is Freshness.FRESH_REFRESH:
            self._refresh_in_background(namespace_id, key, cache_ttl_s)
        return Read(copy.version, CacheStatus.HIT, copy.age_s(now), copy.fetched_at_revision)

    def _fetched(self, previous: CachedValue | None, fetched: CachedValue) -> Read:
        status = status_after_fetch(
            None if previous is None else previous.revision, fetched.revision
        )
        self._count(status)
        return Read(fetched.version, status, 0.0, fetched.fetched_at_revision)

    def _stale_or_raise(
        self, failure: KVError, copy: CachedValue | None, cache_ttl_s: int, now: float
    ) -> Read:
        if not failure.transient:
            raise failure
        if copy is not None and may_serve_stale(
            copy.fetched_at, cache_ttl_s, now, self.policy.max_stale_s
        ):
            self.counters.stale_serves += 1
            return Read(
                copy.served_version(now),
                CacheStatus.STALE,
                copy.age_s(now),
                copy.fetched_at_revision,
            )
        raise error(
            ErrorKind.UNAVAILABLE,
            detail=f"edge {self.identity.node} ({self.identity.region}) cannot reach the central "
            f"store and has no copy it may serve: {failure.message}",
        )

    async def _fetch(self, namespace_id: str, key: str, cache_ttl_s: int) -> CachedValue:
        """One upstream read per key at a time; concurrent callers share its answer."""
        slot = (namespace_id, key)
        running = self._inflight.get(slot)
        if running is not None:
            return await asyncio.shield(running)
        shared: asyncio.Future[CachedValue] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = shared
        try:
            copy = await self._fetch_from_central(namespace_id, key, cache_ttl_s)
        except BaseException as exc:
            shared.set_exception(exc)
            shared.exception()  # retrieved here, so lone failures log no warning
            raise
        else:
            shared.set_result(copy)
            return copy
        finally:
            del self._inflight[slot]

    async def _fetch_from_central(
        self, namespace_id: str, key: str, cache_ttl_s: int
    ) -> CachedValue:
        response = await self.upstream.read(
            self.upstream.stub.Get,
            pb.GetRequest(namespace_id=namespace_id, key=key.encode("utf-8")),
        )
        copy = self._copy_of(namespace_id, key, response.entry, response.header)
        await self._keep(copy, cache_ttl_s)
        return copy

    def _copy_of(
        self, namespace_id: str, key: str, entry: kv_pb2.Entry, header: kv_pb2.ResponseHeader
    ) -> CachedValue:
        """What central answered, stamped with when (its time and revision) it answered."""
        self.counters.upstream_bytes += len(entry.value)
        return CachedValue(
            namespace_id,
            key,
            entry_from_pb(entry),
            fetched_at=header.server_time,
            fetched_at_revision=header.revision,
        )

    async def _fetch_many(
        self, namespace_id: str, keys: list[str], cache_ttl_s: int
    ) -> dict[str, CachedValue]:
        """One upstream GetMany for the keys nobody is fetching; share the others' answers."""
        shared = {
            key: self._inflight[(namespace_id, key)]
            for key in keys
            if (namespace_id, key) in self._inflight
        }
        mine = [key for key in keys if key not in shared]
        loop = asyncio.get_running_loop()
        promised: dict[str, asyncio.Future[CachedValue]] = {}
        for key in mine:
            promised[key] = self._inflight[(namespace_id, key)] = loop.create_future()
        copies: dict[str, CachedValue] = {}
        try:
            if mine:
                response = await self.upstream.read(
                    self.upstream.stub.GetMany,
                    pb.GetManyRequest(
                        namespace_id=namespace_id, keys=[key.encode("utf-8") for key in mine]
                    ),
                )
                for key, entry in zip(mine, response.entries, strict=True):
                    copy = self._copy_of(namespace_id, key, entry, response.header)
                    await self._keep(copy, cache_ttl_s)
                    copies[key] = copy
                    promised[key].set_result(copy)
        except BaseException as exc:
            for future in promised.values():
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved here, so lone failures log no warning
            raise
        finally:
            for key in mine:
                del self._inflight[(namespace_id, key)]
        for key, running in shared.items():
            copies[key] = await asyncio.shield(running)
        return copies

    async def _keep(self, copy: CachedValue, cache_ttl_s: float) -> None:
        """Cache ``copy`` unless the cache already holds something central produced later."""
        if copy.fetched_at_revision < self.revision_floor(copy.namespace_id):
            return
        held = await self.cache.get(copy.namespace_id, copy.key)
        if held is not None and held.fetched_at_revision > copy.fetched_at_revision:
            return
        await self.cache.put(copy, retention_s(cache_ttl_s, self.policy.max_stale_s))

    def _refresh_in_background(self, namespace_id: str, key: str, cache_ttl_s: int) -> None:
        if (namespace_id, key) in self._inflight:
            return
        self.counters.refreshes += 1
        self._spawn(self._fetch(namespace_id, key, cache_ttl_s))

    def _spawn(self, work: Awaitable[object]) -> None:
        async def guarded() -> object:
            try:
                return await work
            except KVError as exc:
                log.debug("background work failed: %s", exc.message)
                return None

        task = asyncio.ensure_future(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _count(self, status: CacheStatus) -> None:
        if status is CacheStatus.MISS:
            self.counters.misses += 1
        elif status is CacheStatus.EXPIRED:
            self.counters.expired += 1
        elif status is CacheStatus.REVALIDATED:
            self.counters.revalidated += 1

    # -- lists ------------------------------------------------------------------

    async def list(self, request: pb.ListRequest, cache_ttl_s: int) -> PageRead:
        parse_list_request(request.namespace_id, request.prefix, request.limit, request.cursor)
        namespace_id = self._serve_namespace(request.namespace_id)
        slot: PageSlot = (namespace_id, request.prefix, request.limit, request.cursor)
        now = self.clock.now()
        cached = self.pages.get(slot)
        if cached is not None:
            freshness = judge(cached.fetched_at, cached.expires_at, cache_ttl_s, now)
            if freshness is not Freshness.TOO_OLD:
                self.counters.hits += 1
                return PageRead(
                    cached.page,
                    CacheStatus.HIT,
                    now - cached.fetched_at,
                    cached.fetched_at_revision,
                )
        try:
            response = await self.upstream.read(self.upstream.stub.List, request)
        except KVError as exc:
            if (
                not exc.transient
                or cached is None
                or not may_serve_stale(cached.fetched_at, cache_ttl_s, now, self.policy.max_stale_s)
            ):
                raise
            self.counters.stale_serves += 1
            return PageRead(
                cached.page, CacheStatus.STALE, now - cached.fetched_at, cached.fetched_at_revision
            )
        fresh = CachedPage.of(response, response.header.server_time)
        self.pages.put(slot, fresh)
        if cached is None:
            status = CacheStatus.MISS
        else:
            same = cached.same_content(fresh)
            status = CacheStatus.REVALIDATED if same else CacheStatus.EXPIRED
        self._count(status)
        return PageRead(response, status, 0.0, fresh.fetched_at_revision)

    # -- writes -------------------------------------------------------------------

    async def put(self, request: pb.PutRequest) -> pb.WriteResponse:
        write = validate_put(
            request.namespace_id,
            request.key,
            request.value,
            request.metadata_json if request.HasField("metadata_json") else None,
            request.expiration if request.HasField("expiration") else None,
            request.expiration_ttl if request.HasField("expiration_ttl") else None,
            self.clock.now(),
        )
        self._serve_namespace(request.namespace_id)
        response = await self._write_upstream(self.upstream.stub.Put, request)
        # Central resolved any TTL against its own commit time; do the same.
        expiration = write.expiration
        if request.HasField("expiration_ttl"):
            expiration = math.floor(response.commit_time) + request.expiration_ttl
        version = Version(
            write.key,
            write.value,
            write.metadata_json,
            expiration,
            response.revision,
            response.commit_time,
        )
        await self._keep_own_write(write.namespace_id, write.key, version, response)
        return response

    async def delete(self, request: pb.DeleteRequest) -> pb.WriteResponse:
        write = validate_delete(request.namespace_id, request.key)
        self._serve_namespace(request.namespace_id)
        response = await self._write_upstream(self.upstream.stub.Delete, request)
        await self._keep_own_write(write.namespace_id, write.key, None, response)
        return response

    async def _write_upstream(
        self, method: Callable[..., Awaitable[pb.WriteResponse]], request: object
    ) -> pb.WriteResponse:
        try:
            return await self.upstream.write(method, request)
        except KVError as exc:
            if not exc.transient:
                raise
            outcome = "was not applied" if exc.definite else "may or may not have been applied"
            kind = ErrorKind.UNAVAILABLE_NOT_APPLIED if exc.definite else ErrorKind.UNAVAILABLE
            raise error(
                kind,
                detail=f"edge {self.identity.node} ({self.identity.region}) cannot reach the "
                f"central store; the write {outcome}: {exc.message}",
            ) from None

    async def _keep_own_write(
        self,
        namespace_id: str,
        key: str,
        version: Version | None,
        response: pb.WriteResponse,
    ) -> None:
        """The writing edge reads its own write: cache it as fetched at the commit."""
        copy = CachedValue(
            namespace_id,
            key,
            version,
            fetched_at=response.commit_time,
            fetched_at_revision=response.revision,
        )
        await self._keep(copy, cache_ttl_s=60)
        self.pages.flush(namespace_id)

    # -- namespaces and background work ----------------------------------------------

    def _serve_namespace(self, raw_id: str) -> str:
        namespace_id = validate_namespace_id(raw_id)
        self.on_namespace(namespace_id)
        return namespace_id

    async def flush(self, namespace_id: str | None) -> int:
        self.pages.flush(namespace_id)
        return await self.cache.flush(namespace_id)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
