"""The storage interface every back-end implements, and what they share.

Theory of operation: a back-end stores namespaces, the current version of each
key, a store-wide revision counter and a bounded change log. It knows nothing
of validation or gRPC: the service validates with :mod:`edgekv.core` and hands
the back-end finished :class:`~edgekv.core.model.Write` values.

Rules every back-end keeps (one test suite checks all of them):

* :meth:`Storage.commit` applies a group of writes atomically and durably
  before it returns, gives each write the next store-wide revision, appends
  one change-log row per write, and refuses the whole group with
  NAMESPACE_NOT_FOUND when the namespace does not exist at commit time.
* A delete of a missing key writes nothing (``changed=False``).
* :meth:`Storage.scan` returns only keys live at ``now``, in UTF-8 byte order.
* Reads return versions even when expired; the service filters by ``now``.
* One central process owns a store: ``revision`` is cached in memory.
* A failure of the storage itself (a full disk, an I/O error, a Redis out of
  memory) is raised as :func:`storage_failed` says, whatever the operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from central.storage.stats import CommitStats
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import ListQuery, ScanResult
from edgekv.core.model import Change, Committed, Namespace, Version, Write

# How many change-log rows a back-end keeps for watchers that resume.
DEFAULT_CHANGE_LOG_ROWS = 100_000


def storage_failed(exc: BaseException) -> KVError:
    """What a caller is told when the storage itself refused or failed (a full disk, an
    I/O error, a Redis out of memory): STORAGE_FAILED, in the back-end's own words, on
    one line — never an UNKNOWN, never a traceback. Every back-end raises it this way."""
    words = str(exc).strip().splitlines()
    return error(ErrorKind.STORAGE_FAILED, detail=words[0] if words else type(exc).__name__)


class Storage(Protocol):
    # Each storage transaction of the group commit, for the central's metrics.
    commit_stats: CommitStats

    @property
    def revision(self) -> int:
        """The newest committed revision (0 for an empty store)."""
        ...

    async def oldest_change_revision(self) -> int:
        """The oldest revision still in the change log (revision + 1 when it is empty)."""
        ...

    async def close(self) -> None: ...

    async def create_namespace(self, namespace: Namespace, max_namespaces: int) -> None:
        """Raise NAMESPACE_TITLE_EXISTS or NAMESPACE_LIMIT instead of creating it."""
        ...

    async def get_namespace(self, namespace_id: str) -> Namespace | None: ...

    async def list_namespaces(self) -> list[Namespace]: ...

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        """Raise NAMESPACE_NOT_FOUND or NAMESPACE_TITLE_EXISTS instead of renaming."""
        ...

    async def delete_namespace(self, namespace_id: str) -> bool:
        """Delete the namespace and all its keys; False when it did not exist."""
        ...

    async def get(self, namespace_id: str, key: str) -> Version | None: ...

    async def get_many(self, namespace_id: str, keys: Sequence[str]) -> list[Version | None]: ...

    async def commit(self, writes: Sequence[Write], now: float) -> list[Committed]: ...

    async def scan(self, query: ListQuery, now: float) -> ScanResult: ...

    async def changes_after(self, namespace_id: str, revision: int, limit: int) -> list[Change]:
        """Up to ``limit`` logged changes of a namespace with revision > ``revision``.

        A replayed put carries its version only while that put is still the
        key's current version.
        """
        ...
