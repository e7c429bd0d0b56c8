"""The interface of an edge's cache store.

Theory of operation: a store maps (namespace id, key) to a
:class:`~edgekv.core.cache.CachedValue`. It does not judge freshness — the
core's policy does, from the copy's ``fetched_at`` — it only keeps copies,
within a bound: memory evicts least-recently-used entries beyond its byte
budget; Redis lets entries expire after ``retention_s`` (simulated seconds,
converted with the edge's clock) so that two edge processes of one region can
share copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edgekv.core.cache import CachedValue


@dataclass(frozen=True, slots=True)
class Occupancy:
    entries: int
    bytes_cached: int
    evictions: int


class CacheStore(Protocol):
    async def get(self, namespace_id: str, key: str) -> CachedValue | None: ...

    async def put(self, copy: CachedValue, retention_s: float) -> None:
        """Keep ``copy`` (replacing any older one) for at least ``retention_s`` if room allows."""
        ...

    async def delete(self, namespace_id: str, key: str) -> None: ...

    async def flush(self, namespace_id: str | None = None) -> int:
        """Drop every entry (of one namespace); return how many were dropped."""
        ...

    async def occupancy(self) -> Occupancy: ...

    async def close(self) -> None: ...
