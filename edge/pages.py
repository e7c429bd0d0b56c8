"""The edge's cache of list pages.

Theory of operation: Workers KV's list results are eventually consistent
like values (cached up to the reader's cacheTtl), so an edge keeps each page
(:class:`~edgekv.core.cache.CachedPage`) under its request — namespace,
prefix, limit, cursor — in an LRU bounded by bytes, and the core's policy
judges a page as it judges a value (a page stops being fresh when its first
key expires). A change to a namespace cannot patch a page, so a write
through this edge, and in ``invalidate`` and ``push`` modes any change
central reports, drops the namespace's pages.
"""

from __future__ import annotations

from collections import OrderedDict

from edge.cache.lru import ByteBoundedLRU
from edgekv.core.cache import CachedPage, PageSlot

# Namespaces whose page floor is kept on its own (a floor is a few dozen bytes).
MAX_FLOORS = 4096


def _size_of(page: CachedPage) -> int:
    return page.size_bytes


class PageCache:
    """Cached pages by (namespace, prefix, limit, cursor), LRU-bounded by bytes.

    Dropping a namespace's pages because of a change records the change's
    revision as that namespace's *floor*: a page central gave before it (a
    list that was in flight) is not kept when it arrives (see
    :func:`edgekv.core.cache.worth_keeping`). Floors are kept for the
    ``max_floors`` namespaces changed last; an older one is folded into one
    floor for every namespace without its own — revisions are store-wide, so
    that floor outdates only pages central gave before it, which are those
    that were in flight when it was folded.
    """

    def __init__(self, max_bytes: int, max_floors: int = MAX_FLOORS) -> None:
        self._lru: ByteBoundedLRU[PageSlot, CachedPage] = ByteBoundedLRU(max_bytes, _size_of)
        self._floors: OrderedDict[str, int] = OrderedDict()
        self._max_floors = max_floors
        self._folded_floor = 0

    def get(self, slot: PageSlot) -> CachedPage | None:
        return self._lru.get(slot)

    def put(self, page: CachedPage) -> None:
        self._lru.put(page.slot, page)

    def floor(self, namespace_id: str) -> int:
        """Pages of the namespace central gave before this revision are out of date."""
        return self._floors.get(namespace_id, self._folded_floor)

    def flush(self, namespace_id: str | None = None, revision: int = 0) -> int:
        """Drop every page (of one namespace): a change at ``revision`` outdates them."""
        if namespace_id is not None and revision > self.floor(namespace_id):
            self._floors[namespace_id] = revision
            self._floors.move_to_end(namespace_id)
            if len(self._floors) > self._max_floors:
                _, oldest = self._floors.popitem(last=False)
                self._folded_floor = max(self._folded_floor, oldest)
        return self._lru.drop_where(lambda slot: namespace_id in (None, slot[0]))

    @property
    def bytes_cached(self) -> int:
        return self._lru.bytes_held

    def __len__(self) -> int:
        return len(self._lru)
