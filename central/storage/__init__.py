"""Storage back-ends of the central store, chosen by URL.

``sqlite:PATH`` (default; durable, one file), ``memory:`` (tests, simulations;
not durable), ``redis://HOST:PORT/DB`` (a real Redis, checked to be durable), or
``redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`` (the Redis primary
that Sentinel names, followed across failovers: :mod:`central.storage.redis_connect`).
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
from edgekv.redis_urls import SENTINEL_SCHEME


class StorageURLError(UsageError):
    """A storage URL that names no back-end, or one that cannot be opened."""


async def open_storage(
    url: str, *, durability: Durability | None = None, record_path: Path | None = None
) -> Storage:
    """Open the back-end named by ``url``; StorageURLError says why it cannot.

    ``durability`` None means the back-end's own: ``local`` for SQLite and Redis,
    ``none`` for memory (which refuses ``local``); only Redis gives ``replicated``.
    ``record_path`` is central's record of the store (none for memory, which keeps
    nothing across restarts).
    """
    check_durability(url, durability)
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
    if scheme in ("redis", SENTINEL_SCHEME) and rest.startswith("//"):
        from central.storage.redis_store import RedisStorage

        try:
            return await RedisStorage.open(
                url, record=record, durability=durability or Durability.LOCAL
            )
        except (ValueError, ConnectionError, OSError) as exc:
            raise StorageURLError(str(exc)) from None
    raise StorageURLError(
        f"unknown storage URL {url!r}: use sqlite:PATH, memory:, redis://HOST:PORT/DB or "
        "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"
    )


def check_durability(url: str, durability: Durability | None) -> None:
    """Refuse ``--durability replicated`` for a back-end without replicas, before anything
    is opened or made (a SQLite file, an operator token beside it)."""
    scheme = url.partition(":")[0]
    if durability is Durability.REPLICATED and scheme in ("sqlite", "memory"):
        raise StorageURLError(
            f"{scheme}: has no replica, so it cannot give --durability replicated; use a Redis "
            "with a replica (redis:// or redis+sentinel://), or --durability "
            + ("local" if scheme == "sqlite" else "none")
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
