"""The store record: what central remembers of its store outside the store.

Theory of operation: a store that went missing, was replaced or went back
looks, from inside, like a store that is new, other or simply older. Only
something kept elsewhere can tell them apart, so:

* **Every store has an id**, a random hex string written when the store is
  created (SQLite: the ``identity`` table; Redis: the ``store_id`` key) and
  never changed.
* **Central keeps a record** of the store it serves: a small JSON file with the
  store's id and the highest revision central acknowledged from it. For
  ``sqlite:PATH`` it is ``PATH.record.json``, beside the database; for Redis,
  which has no "beside", it is the file ``--store-record`` names (without one,
  central cannot tell a flushed Redis from a new one when it starts).
* **A store must match its record** when central starts (:func:`check_store`):
  a store that is missing or empty while the record names one, a store with
  another id, or a store whose revision is below the record's, is refused with
  what to do; central never starts afresh over it. With no record, central
  adopts what it finds and records it.
* **The record follows the revision** (:class:`RecordKeeper`): it is written
  when central starts, about once a second while the revision moves, and when
  central stops; each write is atomic (a temporary file, fsynced, renamed over
  the record, and the folder fsynced). After a crash of central the recorded
  revision may lag by up to a second of writes: a store that went back by less
  than that while central was down passes. While central runs, the back-ends
  check on every write (and Redis on every reconnection) against the revision
  held in memory, which never lags.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgekv.private_files import open_private

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".record.json"
# How often, in real seconds, the record catches up with the revision: housekeeping
# I/O on the host's clock, not simulated time.
RECORD_INTERVAL_S = 1.0


class StoreMismatch(ValueError):
    """The store is not the one the record says central served: one line, what to do."""


def new_store_id() -> str:
    return secrets.token_hex(16)


def default_record_path(storage_url: str) -> Path | None:
    """Where central keeps its record for ``storage_url`` unless told: beside a SQLite file."""
    scheme, _, rest = storage_url.partition(":")
    if scheme == "sqlite" and rest:
        return Path(rest.removeprefix("//") + RECORD_SUFFIX)
    return None


@dataclass(frozen=True)
class StoreRecord:
    """The id of the store central served and the highest revision it acknowledged."""

    path: Path
    store_id: str
    revision: int

    @classmethod
    def read(cls, path: Path) -> StoreRecord | None:
        """The record in ``path``, None when there is none; StoreMismatch if unreadable."""
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, str(fields["store_id"]), int(fields["revision"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreMismatch(
                f"cannot read central's store record {path}: {exc}; restore it, or remove it "
                "to take the store as it is"
            ) from None

    def write(self) -> None:
        """Replace the record on disk atomically and durably."""
        text = json.dumps({"store_id": self.store_id, "revision": self.revision}) + "\n"
        temporary = self.path.with_name(self.path.name + ".tmp")
        with os.fdopen(open_private(temporary), "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def check_store(
    where: str, store_id: str | None, revision: int, record: StoreRecord | None
) -> None:
    """Raise StoreMismatch unless the store at ``where`` may be the one ``record`` names.

    ``store_id`` None means ``where`` holds no store at all.
    """
    if record is None:
        return
    start_afresh = f"or, to {{what}}, remove {record.path}"
    if store_id is None:
        raise StoreMismatch(
            f"{where} holds no edgekv store, but central served store {record.store_id} there "
            f"up to revision {record.revision} (its record {record.path}): the store was moved, "
            "deleted or flushed, and starting an empty one would hide that. Put it back; "
            + start_afresh.format(what="start a new, empty store")
        )
    if store_id != record.store_id:
        raise StoreMismatch(
            f"{where} holds store {store_id}, not store {record.store_id} that central served "
            f"there (its record {record.path}): another store was put in its place. Put the "
            "right one back; " + start_afresh.format(what="serve this one")
        )
    if revision < record.revision:
        raise StoreMismatch(
            f"{where} is at revision {revision}, below revision {record.revision} that central "
            f"already acknowledged from it (its record {record.path}): the store went back — "
            "restored from an older copy, or a Redis restarted from an older AOF or RDB file "
            "— and lost acknowledged writes. Restore its newest data; "
            + start_afresh.format(what="serve it as it is (its revisions will be given again)")
        )


class RecordedStore(Protocol):
    @property
    def store_id(self) -> str: ...

    @property
    def acknowledged_revision(self) -> int: ...


class RecordKeeper:
    """Writes a store's record now, about once a second while its revision moves, and at
    :meth:`close`; a failed write is retried at the next tick (the record only lags)."""

    def __init__(self, path: Path, store: RecordedStore) -> None:
        self._path = path
        self._store = store
        self._written: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Write the record (failing loudly if it cannot be), then keep it up to date."""
        await self._write()
        self._task = asyncio.create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._write()
        except OSError as exc:  # the record lags; the store itself is closed and whole
            log.warning("could not update the store record %s: %s", self._path, exc)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(RECORD_INTERVAL_S)
            with contextlib.suppress(OSError):  # a full disk, say: the next tick tries again
                await self._write()

    async def _write(self) -> None:
        revision = self._store.acknowledged_revision
        if revision == self._written:
            return
        record = StoreRecord(self._path, self._store.store_id, revision)
        await asyncio.to_thread(record.write)
        self._written = revision
