"""Storage back-ends of the central store, chosen by URL.

``sqlite:PATH`` (default; durable, one file), ``memory:`` (tests, simulations;
not durable), ``redis://HOST:PORT/DB`` (a real Redis; durable as Redis is
configured). :func:`open_storage` is the one way to get one.
"""

from __future__ import annotations

from central.storage.base import Storage
from edgekv.core.errors import UsageError


class StorageURLError(UsageError):
    """A storage URL that names no back-end, or one that cannot be opened."""


async def open_storage(url: str) -> Storage:
    """Open the back-end named by ``url``; StorageURLError says why it cannot."""
    scheme, _, rest = url.partition(":")
    if scheme == "memory" and rest in ("", "//"):
        from central.storage.memory import MemoryStorage

        return MemoryStorage()
    if scheme == "sqlite" and rest:
        from central.storage.sqlite import SqliteStorage

        try:
            return await SqliteStorage.open(rest.removeprefix("//"))
        except ValueError as exc:
            raise StorageURLError(str(exc)) from None
    if scheme == "redis" and rest.startswith("//"):
        from central.storage.redis_store import RedisStorage

        try:
            return await RedisStorage.open(url)
        except (ValueError, ConnectionError, OSError) as exc:
            raise StorageURLError(str(exc)) from None
    raise StorageURLError(
        f"unknown storage URL {url!r}: use sqlite:PATH, memory: or redis://HOST:PORT/DB"
    )
