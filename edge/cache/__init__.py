"""Cache stores of an edge node, chosen by URL: ``memory`` (default) or ``redis://…``.

:func:`open_cache` is the one way to get one.
"""

from __future__ import annotations

from edge.cache.base import CacheStore
from edgekv.clock import Clock
from edgekv.core.errors import UsageError


class CacheURLError(UsageError):
    """A cache URL that names no store, or a store that cannot be reached."""


async def open_cache(url: str, max_bytes: int, clock: Clock, region: str) -> CacheStore:
    if url in ("memory", "memory:"):
        from edge.cache.memory import MemoryCache

        return MemoryCache(max_bytes)
    if url.startswith("redis://"):
        from edge.cache.redis_cache import RedisCache

        try:
            return await RedisCache.open(url, clock=clock, region=region)
        except (ValueError, ConnectionError, OSError) as exc:
            raise CacheURLError(str(exc)) from None
    raise CacheURLError(f"unknown cache URL {url!r}: use memory or redis://HOST:PORT/DB")
