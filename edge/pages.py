"""The edge's cache of list pages.

Theory of operation: Workers KV's list results are eventually consistent
like values (cached up to the reader's cacheTtl), so an edge caches each page
under (namespace, prefix, limit, cursor) in an LRU bounded by bytes, judged by
the same policy as values. A page is clamped by the earliest expiration among
its keys. In ``invalidate`` and ``push`` modes a change to a namespace drops
its pages (a page cannot be patched from one change).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.cache.lru import ByteBoundedLRU
from edgekv.core.cache import ENTRY_OVERHEAD_BYTES
from edgekv.v1 import central_pb2 as pb

PageSlot = tuple[str, bytes, int, str]


@dataclass(frozen=True, slots=True)
class CachedPage:
    page: pb.ListResponse
    fetched_at: float
    fetched_at_revision: int
    expires_at: float | None
    size_bytes: int

    @classmethod
    def of(cls, page: pb.ListResponse, fetched_at: float) -> CachedPage:
        expirations = [key.expiration for key in page.keys if key.expiration]
        return cls(
            page=page,
            fetched_at=fetched_at,
            fetched_at_revision=page.header.revision,
            expires_at=min(expirations) if expirations else None,
            size_bytes=ENTRY_OVERHEAD_BYTES + page.ByteSize(),
        )

    def same_content(self, other: CachedPage) -> bool:
        mine, theirs = self.page, other.page
        return (
            list(mine.keys) == list(theirs.keys)
            and mine.list_complete == theirs.list_complete
            and mine.cursor == theirs.cursor
        )


def _size_of(page: CachedPage) -> int:
    return page.size_bytes


class PageCache:
    """Cached pages by (namespace, prefix, limit, cursor), LRU-bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._lru: ByteBoundedLRU[PageSlot, CachedPage] = ByteBoundedLRU(max_bytes, _size_of)

    def get(self, slot: PageSlot) -> CachedPage | None:
        return self._lru.get(slot)

    def put(self, slot: PageSlot, page: CachedPage) -> None:
        self._lru.put(slot, page)

    def flush(self, namespace_id: str | None = None) -> int:
        return self._lru.drop_where(lambda slot: namespace_id in (None, slot[0]))

    @property
    def bytes_cached(self) -> int:
        return self._lru.bytes_held

    def __len__(self) -> int:
        return len(self._lru)
