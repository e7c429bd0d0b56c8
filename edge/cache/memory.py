"""``memory`` — the edge's copies in its own process, LRU-bounded by bytes.

Theory of operation: a :class:`~edge.cache.lru.ByteBoundedLRU` keyed by
(namespace, key). Sizes count keys, values, metadata and a fixed per-entry
overhead (:data:`edgekv.core.cache.ENTRY_OVERHEAD_BYTES`). Retention is by
space, not time: freshness is the policy's business, and an old copy kept
longer can still be served STALE or REVALIDATED.
"""

from __future__ import annotations

from edge.cache.base import Occupancy
from edge.cache.lru import ByteBoundedLRU
from edgekv.core.cache import CachedValue


def _size_of(copy: CachedValue) -> int:
    return copy.size_bytes


class MemoryCache:
    def __init__(self, max_bytes: int) -> None:
        self._lru: ByteBoundedLRU[tuple[str, str], CachedValue] = ByteBoundedLRU(
            max_bytes, _size_of
        )

    @property
    def max_bytes(self) -> int:
        return self._lru.max_bytes

    async def get(self, namespace_id: str, key: str) -> CachedValue | None:
        return self._lru.get((namespace_id, key))

    async def put(self, copy: CachedValue, retention_s: float) -> None:
        self._lru.put((copy.namespace_id, copy.key), copy)

    async def delete(self, namespace_id: str, key: str) -> None:
        self._lru.pop((namespace_id, key))

    async def flush(self, namespace_id: str | None = None) -> int:
        return self._lru.drop_where(lambda slot: namespace_id in (None, slot[0]))

    async def occupancy(self) -> Occupancy:
        return Occupancy(len(self._lru), self._lru.bytes_held, self._lru.evictions)

    async def close(self) -> None:
        self._lru.clear()
