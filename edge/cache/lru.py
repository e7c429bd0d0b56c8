"""A least-recently-used map bounded by bytes: the memory behind an edge's caches.

Theory of operation: an ``OrderedDict`` in recency order; ``get`` moves an
entry to the end, ``put`` adds its size and evicts from the front until the
total is within ``max_bytes``. An entry bigger than the whole budget is not
kept (and replaces, i.e. drops, what the key held).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from edgekv.core.errors import UsageError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteBoundedLRU(Generic[K, V]):
    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        if max_bytes <= 0:
            raise UsageError(f"the cache needs a positive size, got {max_bytes} bytes")
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[K, V] = OrderedDict()
        self.bytes_held = 0
        self.evictions = 0

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.pop(key)
        size = self._size_of(value)
        if size > self.max_bytes:
            return
        self._entries[key] = value
        self.bytes_held += size
        while self.bytes_held > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes_held -= self._size_of(evicted)
            self.evictions += 1

    def pop(self, key: K) -> V | None:
        value = self._entries.pop(key, None)
        if value is not None:
            self.bytes_held -= self._size_of(value)
        return value

    def drop_where(self, doomed: Callable[[K], bool]) -> int:
        keys = [key for key in self._entries if doomed(key)]
        for key in keys:
            self.pop(key)
        return len(keys)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes_held = 0

    def __len__(self) -> int:
        return len(self._entries)
