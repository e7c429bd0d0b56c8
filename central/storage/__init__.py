"""Storage back-ends of the central store, chosen by URL.

``sqlite:PATH`` (default; durable, one file), ``memory:`` (tests, simulations;
not durable), ``redis://HOST:PORT/DB`` (a real Redis, checked to be durable).
:func:`open_storage` is the one way to get one: it also settles what the store
promises of an acknowledged write (:class:`~central.storage.base.Durability`)
and checks the store against central's record of it
(:mod:`central.storage.record`).
"""

from __future__ import annotations

from pathlib import Path

from central.storage.base import Durability, Storage
from central.storage.record import StoreRecord
from edgekv.core.errors import UsageError


class StorageURLError(UsageError):
    """A storage URL that names no back-end, or one that cannot be opened."""


async def open_storage(
    url: str, *, durability: Durability | None = None, record_path: Path | None = None
) -> Storage:
    """Open the back-end named by ``url``; StorageURLError says why it cannot.

    ``durability`` None means the back-end's own: ``local`` for SQLite and Redis,
    ``none`` for memory (which refuses ``local``). ``record_path`` is central's
    record of the store (none for memory, which keeps nothing across restarts).
    """
    scheme, _, rest = url.partition(":")
    try:
        record = StoreRecord.read(record_path) if record_path is not None else None
    except ValueError as exc:
        raise StorageURLError(str(exc)) from None
    if scheme == "memory" and rest in ("", "//"):
        from central.storage.memory import MemoryStorage

        _memory_keeps_nothing(durability, record_path)
        return MemoryStorage()
    if scheme == "sqlite" and rest:
        from central.storage.sqlite import SqliteStorage

        try:
            return await SqliteStorage.open(
                rest.removeprefix("//"),
                durability=durability or Durability.LOCAL,
                record=record,
            )
        except ValueError as exc:
            raise StorageURLError(str(exc)) from None
    if scheme == "redis" and rest.startswith("//"):
        from central.storage.redis_store import RedisStorage

        try:
            return await RedisStorage.open(
                url, record=record, durability=durability or Durability.LOCAL
            )
        except (ValueError, ConnectionError, OSError) as exc:
            raise StorageURLError(str(exc)) from None
    raise StorageURLError(
        f"unknown storage URL {url!r}: use sqlite:PATH, memory: or redis://HOST:PORT/DB"
    )


def _memory_keeps_nothing(durability: Durability | None, record_path: Path | None) -> None:
    if durability is Durability.LOCAL:
        raise StorageURLError(
            "memory: keeps nothing on disk, so it cannot give --durability local; "
            "use --durability none, or leave --durability out"
        )
    if record_path is not None:
        raise StorageURLError(
            "memory: keeps no store across restarts, so there is nothing for --store-record "
            "to record; leave it out"
        )
