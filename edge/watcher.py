"""Watch-driven modes: ``invalidate`` drops changed keys, ``push`` stores new values.

Theory of operation: the first time an edge serves a namespace it starts one
watcher for it. The watcher follows central's Watch stream (each message
delayed by the modelled link's one-way time) and applies every change to the
cache: in ``invalidate`` mode it marks the key's copy *invalidated*
(:func:`edgekv.core.cache.invalidated`) so that the next read fetches — a
mark rather than a deletion, so that a read central answered before the
change, arriving after it, cannot bring the old value back (a key neither
held nor being fetched needs no mark); in ``push`` mode it stores the new
version (or "not found") as a fresh copy, and marks the key when a change
comes without its value. Changes older than a copy already held are
ignored. When a watch
registers "from now", copies fetched before that revision may have missed a
change, so the namespace is flushed and such copies are not kept. When the
stream breaks — central restarted, the link is partitioned, the watcher fell
behind — it waits with capped, jittered backoff and resumes from the next
revision it has not applied; if central no longer has that revision, it
flushes the namespace's copies (they may be arbitrarily old) and starts over
from "now".

Only namespaces that exist are watched, and only so many. A watcher that has
not yet heard from central does not know its namespace exists: if its first
attempt fails — NOT_FOUND, or central out of reach — it stops, and the next
read of that namespace starts another. (An edge with central away would
otherwise keep a watcher, retrying forever, for every namespace id it was
ever asked for.) A watcher central has answered retries until central is
back, or until its namespace is deleted (NOT_FOUND: it stops). At most
``max_watchers`` run — by default MAX_WATCHERS, the most namespaces a store
holds, so that every namespace of a store can be watched at once; beyond
that the least recently served namespace's watcher stops, and its copies
live out their cacheTtl as in ``ttl`` mode until the namespace is served
again (its new watcher, registered from "now", flushes them).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict

from edge.node import EdgeNode
from edgekv.core import limits
from edgekv.core.cache import CachedValue, invalidated, worth_keeping
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.model import Change, ChangeKind
from edgekv.topology import Mode

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0
# Watchers an edge runs at most: as many as a store may hold namespaces.
MAX_WATCHERS = limits.MAX_NAMESPACES


class NamespaceWatchers:
    def __init__(
        self, node: EdgeNode, rng: random.Random, max_watchers: int = MAX_WATCHERS
    ) -> None:
        self._node = node
        self._rng = rng
        self._max_watchers = max_watchers
        # Least recently served first.
        self._tasks: OrderedDict[str, asyncio.Task[None]] = OrderedDict()
        # Per namespace, the revision from which the live watch covers every change.
        self._floors: dict[str, int] = {}

    def floor(self, namespace_id: str) -> int:
        """Copies central produced before this revision may have missed a change."""
        return self._floors.get(namespace_id, 0)

    def ensure(self, namespace_id: str) -> None:
        """The node serves ``namespace_id``: watch it, if it is not watched already."""
        running = self._tasks.get(namespace_id)
        if running is not None and not running.done():
            self._tasks.move_to_end(namespace_id)
            return
        self._tasks[namespace_id] = asyncio.ensure_future(self._follow(namespace_id))
        self._tasks.move_to_end(namespace_id)
        while len(self._tasks) > self._max_watchers:
            dropped, task = self._tasks.popitem(last=False)
            task.cancel()
            self._floors.pop(dropped, None)

    def watched(self) -> list[str]:
        """The namespaces being watched, least recently served first."""
        return [namespace_id for namespace_id, task in self._tasks.items() if not task.done()]

    def _stop(self, namespace_id: str) -> None:
        """Forget the calling watcher (and not a newer one of the same namespace)."""
        if self._tasks.get(namespace_id) is asyncio.current_task():
            del self._tasks[namespace_id]
        self._floors.pop(namespace_id, None)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _follow(self, namespace_id: str) -> None:
        node = self._node
        next_revision = 0  # 0: from now on
        failures = 0
        heard = False  # from central: the namespace exists
        while True:
            try:
                async for batch in node.upstream.watch(
                    namespace_id, next_revision, include_values=node.policy.mode is Mode.PUSH
                ):
                    if next_revision == 0:
                        # Registered "from now": changes before now were never seen, so
                        # older copies go, and copies still in flight are refused.
                        self._floors[namespace_id] = batch.revision
                        await self._forget(namespace_id)
                        next_revision = batch.revision + 1
                    failures, heard = 0, True
                    for change in batch.changes:
                        await self._apply(change)
                        next_revision = change.revision + 1
            except KVError as exc:
                if exc.kind is ErrorKind.NAMESPACE_NOT_FOUND:
                    log.info("namespace %s is gone; its watcher stops", namespace_id)
                    self._stop(namespace_id)
                    return
                if not heard:
                    # The namespace may not exist: the next read of it tries again.
                    log.debug(
                        "watch of %s failed before central answered (%s)", namespace_id, exc.message
                    )
                    self._stop(namespace_id)
                    return
                if exc.kind is ErrorKind.WATCH_COMPACTED:
                    await self._forget(namespace_id)
                    next_revision = 0
                failures += 1
                log.debug("watch of %s broke (%s); resuming", namespace_id, exc.message)
            delay_s = min(MAX_BACKOFF_S, 0.05 * 2**failures) * self._rng.uniform(0.5, 1.0)
            await node.clock.sleep(delay_s)

    async def _forget(self, namespace_id: str) -> None:
        """Drop a namespace's copies; they may be arbitrarily old now."""
        try:
            await self._node.flush(namespace_id)
        except KVError as exc:  # a shared cache that is down: its copies age out anyway
            log.warning("could not flush %s after a compacted watch: %s", namespace_id, exc.message)

    async def _apply(self, change: Change) -> None:
        node = self._node
        node.counters.watch_changes += 1
        node.pages.flush(change.namespace_id, change.revision)
        # Asked before looking: a fetch that ends while we look has kept its answer by then.
        fetching = node.is_fetching(change.namespace_id, change.key)
        held = await node.cache.get(change.namespace_id, change.key)
        if node.policy.mode is Mode.INVALIDATE or (
            change.kind is ChangeKind.PUT and change.version is None
        ):
            if held is None and not fetching:
                return  # nothing to invalidate, and no answer on its way that could need it
            # Not deleted: a read fetched before the change must not bring the old value back.
            copy = invalidated(change.namespace_id, change.key, change.revision)
        else:
            # A pushed value crossed the link from central as surely as a fetched one.
            node.counters.upstream_bytes += len(change.version.value) if change.version else 0
            copy = CachedValue(
                change.namespace_id,
                change.key,
                change.version,
                fetched_at=node.clock.now(),
                fetched_at_revision=change.revision,
            )
        if worth_keeping(copy, held):
            await node.cache.put(copy, node.policy.cache.retention_s(limits.DEFAULT_CACHE_TTL_S))
