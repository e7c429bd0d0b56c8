"""``memory`` — an LRU cache bounded by bytes, in the edge process.

Theory of operation: an ``OrderedDict`` in recency order; a read moves the
entry to the end, a put adds its size and evicts from the front until the
total is within ``max_bytes``. An entry bigger than the whole budget is not
kept. Sizes count keys, values, metadata and a fixed per-entry overhead
(:data:`edgekv.core.cache.ENTRY_OVERHEAD_BYTES`). Retention is by space, not
time: freshness is the policy's business, and an old copy kept longer can
still be served STALE or REVALIDATED.
"""

from __future__ import annotations

from collections import OrderedDict

from edge.cache.base import Occupancy
from edgekv.core.cache import CachedValue


class MemoryCache:
    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"the cache needs a positive size, got {max_bytes} bytes")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], CachedValue] = OrderedDict()
        self._bytes = 0
        self._evictions = 0

    async def get(self, namespace_id: str, key: str) -> CachedValue | None:
        slot = (namespace_id, key)
        copy = self._entries.get(slot)
        if copy is not None:
            self._entries.move_to_end(slot)
        return copy

    async def put(self, copy: CachedValue, retention_s: float) -> None:
        slot = (copy.namespace_id, copy.key)
        self._drop(slot)
        if copy.size_bytes > self.max_bytes:
            return
        self._entries[slot] = copy
        self._bytes += copy.size_bytes
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size_bytes
            self._evictions += 1

    async def delete(self, namespace_id: str, key: str) -> None:
        self._drop((namespace_id, key))

    def _drop(self, slot: tuple[str, str]) -> None:
        previous = self._entries.pop(slot, None)
        if previous is not None:
            self._bytes -= previous.size_bytes

    async def flush(self, namespace_id: str | None = None) -> int:
        doomed = [slot for slot in self._entries if namespace_id in (None, slot[0])]
        for slot in doomed:
            self._drop(slot)
        return len(doomed)

    async def occupancy(self) -> Occupancy:
        return Occupancy(len(self._entries), self._bytes, self._evictions)

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0
