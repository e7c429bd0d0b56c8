"""Watch-driven modes: ``invalidate`` drops changed keys, ``push`` stores new values.

Theory of operation: the first time an edge serves a namespace it starts one
watcher for it. The watcher follows central's Watch stream (each message
delayed by the modelled link's one-way time) and applies every change to the
cache: in ``invalidate`` mode it deletes the key's copy, so the next read
fetches; in ``push`` mode it stores the new version (or "not found") as a
fresh copy. Changes older than a copy already held are ignored. When a watch
registers "from now", copies fetched before that revision may have missed a
change, so the namespace is flushed and such copies are not kept. When the
stream breaks — central restarted, the link is partitioned, the watcher fell
behind — it waits with capped, jittered backoff and resumes from the next
revision it has not applied; if central no longer has that revision, it
flushes the namespace's copies (they may be arbitrarily old) and starts over
from "now".
"""

from __future__ import annotations

import asyncio
import logging
import random

from edge.node import EdgeNode
from edgekv.core import limits
from edgekv.core.cache import CachedValue
from edgekv.core.errors import ErrorKind, KVError
from edgekv.core.model import Change, ChangeKind
from edgekv.topology import Mode

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0


class NamespaceWatchers:
    def __init__(self, node: EdgeNode, rng: random.Random) -> None:
        self._node = node
        self._rng = rng
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Per namespace, the revision from which the live watch covers every change.
        self._floors: dict[str, int] = {}

    def floor(self, namespace_id: str) -> int:
        """Copies central produced before this revision may have missed a change."""
        return self._floors.get(namespace_id, 0)

    def ensure(self, namespace_id: str) -> None:
        running = self._tasks.get(namespace_id)
        if running is None or running.done():
            self._tasks[namespace_id] = asyncio.ensure_future(self._follow(namespace_id))

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _follow(self, namespace_id: str) -> None:
        node = self._node
        next_revision = 0  # 0: from now on
        failures = 0
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
                    failures = 0
                    for change in batch.changes:
                        await self._apply(change)
                        next_revision = change.revision + 1
            except KVError as exc:
                if exc.kind is ErrorKind.NAMESPACE_NOT_FOUND:
                    log.info("namespace %s is gone; its watcher stops", namespace_id)
                    del self._tasks[namespace_id]
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
        node.pages.flush(change.namespace_id)
        held = await node.cache.get(change.namespace_id, change.key)
        if held is not None and held.fetched_at_revision >= change.revision:
            return
        if node.policy.mode is Mode.INVALIDATE or (
            change.kind is ChangeKind.PUT and change.version is None
        ):
            await node.cache.delete(change.namespace_id, change.key)
            return
        # A pushed value crossed the link from central as surely as a fetched one.
        node.counters.upstream_bytes += len(change.version.value) if change.version else 0
        copy = CachedValue(
            change.namespace_id,
            change.key,
            change.version,
            fetched_at=node.clock.now(),
            fetched_at_revision=change.revision,
        )
        await node.cache.put(copy, node.policy.cache.retention_s(limits.DEFAULT_CACHE_TTL_S))
