"""The edge's cache of list pages.

Theory of operation: Workers KV's list results are eventually consistent
like values (cached up to the reader's cacheTtl), so an edge caches each page
under (namespace, prefix, limit, cursor) in an LRU bounded by bytes, judged by
the same policy as values. A page is clamped by the earliest expiration among
its keys. In ``invalidate`` and ``push`` modes a change to a namespace drops
its pages (a page cannot be patched from one change).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

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


class PageCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[PageSlot, CachedPage] = OrderedDict()
        self._bytes = 0

    def get(self, slot: PageSlot) -> CachedPage | None:
        page = self._pages.get(slot)
        if page is not None:
            self._pages.move_to_end(slot)
        return page

    def put(self, slot: PageSlot, page: CachedPage) -> None:
        self._drop(slot)
        if page.size_bytes > self.max_bytes:
            return
        self._pages[slot] = page
        self._bytes += page.size_bytes
        while self._bytes > self.max_bytes:
            _, evicted = self._pages.popitem(last=False)
            self._bytes -= evicted.size_bytes

    def _drop(self, slot: PageSlot) -> None:
        previous = self._pages.pop(slot, None)
        if previous is not None:
            self._bytes -= previous.size_bytes

    def flush(self, namespace_id: str | None = None) -> int:
        doomed = [slot for slot in self._pages if namespace_id in (None, slot[0])]
        for slot in doomed:
            self._drop(slot)
        return len(doomed)

    @property
    def bytes_cached(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._pages)
