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
* One central process owns a SQLite file or a memory store: ``revision`` is
  cached in memory. A Redis store is a :class:`SharedStorage`: several central
  processes serve it at once, each learning what the others did from its feed
  (:mod:`central.feed`).
* Every caller of :meth:`Storage.commit` is answered, whatever a write
  raises: a group that cannot be stored fails alone (INTERNAL, nothing of it
  written, no revision used) and the groups committed beside it succeed.
* Titles are unique, and namespaces counted against the limit, per account
  (:attr:`~edgekv.core.model.Namespace.account_id`).
* Stores made before accounts existed are migrated when opened: their
  namespaces join the default account. A store records its schema version
  (:data:`SCHEMA_VERSION`), so that later changes can migrate too; a store
  newer than this code is refused.
* A failure of the storage itself (a full disk, an I/O error, a Redis out of
  memory) is raised as :func:`storage_failed` says, whatever the operation.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from central.storage.stats import CommitStats
from edgekv.core.accounts import Token
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import ListQuery, ScanResult
from edgekv.core.model import Change, Committed, FeedEvent, Namespace, Put, Version, Write

# The layout every durable back-end writes. 1: before accounts and tokens (recorded as
# no version at all); 2: namespaces belong to accounts, tokens are kept.
SCHEMA_VERSION = 2

# How many change-log rows a back-end keeps for watchers that resume.
DEFAULT_CHANGE_LOG_ROWS = 100_000


class Durability(enum.StrEnum):
    """What a back-end promises of an acknowledged write (``edgekv central --durability``)."""

    # It is on the local disk, fsynced, before it is acknowledged: it survives kill -9
    # of central and of Redis, and the machine's crash.
    LOCAL = "local"
    # LOCAL, and a replica has it too (Redis WAIT) before it is acknowledged: a failover
    # to that replica keeps it. Redis replication stays asynchronous, and WAIT does not
    # make it strongly consistent: a failover may still, rarely, lose it (redis_replication).
    REPLICATED = "replicated"
    # Nothing: a crash may lose it (memory: always; SQLite without fsync; a Redis that
    # central did not, or could not, check).
    NONE = "none"


# The widest integer every back-end and the wire hold: SQLite's INTEGER and protobuf's
# int64. The core keeps expirations far below it (limits.MAX_EXPIRATION_S).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def unstorable(writes: Sequence[Write]) -> KVError | None:
    """INTERNAL for a group holding a write no back-end can keep, else None.

    The core refuses such writes long before they get here; this is the
    back-ends' own guard, so that a caller's bug fails its one group instead
    of poisoning a group commit, or being accepted and then failing every
    read of the key (and every list of its namespace). Memory and Redis ask
    it; SQLite finds out by itself when it binds the value (OverflowError).
    """
    for write in writes:
        expiration = write.expiration if isinstance(write, Put) else None
        if expiration is not None and not INT64_MIN <= expiration <= INT64_MAX:
            return error(
                ErrorKind.INTERNAL,
                detail=f"cannot store key {write.key!r}: its expiration "
                f"{expiration} does not fit a 64-bit integer",
            )
    return None


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

    @property
    def acknowledged_revision(self) -> int:
        """The newest revision *this* central acknowledged: what its record of the store
        keeps. Over a shared store, :attr:`revision` also counts other centrals' commits,
        which a failover may lose if they were never acknowledged."""
        ...

    @property
    def store_id(self) -> str:
        """The store's random id, made when the store was (see central.storage.record)."""
        ...

    @property
    def durability(self) -> Durability:
        """What this store promises of an acknowledged write."""
        ...

    async def oldest_change_revision(self) -> int:
        """The oldest revision still in the change log (revision + 1 when it is empty)."""
        ...

    async def close(self) -> None: ...

    async def create_namespace(self, namespace: Namespace, max_namespaces: int) -> None:
        """Raise NAMESPACE_TITLE_EXISTS (its account has the title) or NAMESPACE_LIMIT (its
        account has ``max_namespaces``) instead of creating it."""
        ...

    async def get_namespace(self, namespace_id: str) -> Namespace | None: ...

    async def list_namespaces(self) -> list[Namespace]: ...

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        """Raise NAMESPACE_NOT_FOUND, or NAMESPACE_TITLE_EXISTS (another namespace of its
        account has the title), instead of renaming."""
        ...

    async def delete_namespace(self, namespace_id: str) -> bool:
        """Delete the namespace and all its keys; False when it did not exist."""
        ...

    async def create_token(self, token: Token) -> None:
        """Keep ``token`` (its digest, never the secret), durably before returning."""
        ...

    async def list_tokens(self) -> list[Token]: ...

    async def revoke_token(self, token_id: str) -> bool:
        """Forget the token; False when no token has that id."""
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


@runtime_checkable
class SharedStorage(Storage, Protocol):
    """A store several central processes serve at once (Redis).

    Nothing a central keeps in memory is the truth: every change that matters to
    another central is also an event in the store's feed, in commit order, and the
    one-write-per-second rule is judged by the store, atomically with the commit.
    """

    def judge_write_rate(self, interval_s: float) -> None:
        """Refuse, in :meth:`commit`, a write to a key written less than ``interval_s``
        ago (``Committed.rate_limited``); 0 turns the rule off (the default)."""
        ...

    def observe_revision(self, revision: int) -> None:
        """A revision another central committed (heard of in the feed): :attr:`revision`
        is at least that from now on."""
        ...

    async def feed_position(self) -> str:
        """The id of the feed's newest event ("0-0" when it has none)."""
        ...

    async def read_feed(
        self, after: str, count: int, block_ms: int
    ) -> tuple[list[tuple[str, FeedEvent]], bool]:
        """Up to ``count`` events after ``after``, waiting up to ``block_ms`` (> 0) for one;
        and whether events after ``after`` were trimmed away before they were read."""
        ...

    async def get_token(self, token_id: str) -> Token | None: ...
