"""The data the store is made of, as plain frozen values.

Theory of operation: keys are ``str`` once validated (valid UTF-8 is checked at
the edge of the core). Python orders ``str`` by code point, which is exactly the
order of their UTF-8 bytes, so sorting names sorts them the way Workers KV
lists them. Times are simulated Unix seconds (``float``); expirations are whole
Unix seconds (``int``) or ``None`` for "never".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

# The account of namespaces made without an API token (edgekv.core.accounts says more).
DEFAULT_ACCOUNT_ID = "0" * 32


@dataclass(frozen=True, slots=True)
class Namespace:
    id: str
    title: str
    created_at: float
    # Titles are unique, and namespaces counted against their limit, per account.
    account_id: str = DEFAULT_ACCOUNT_ID


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of one key: what a read returns when the key exists."""

    key: str
    value: bytes
    metadata_json: str | None
    expiration: int | None
    revision: int
    commit_time: float

    def is_live(self, now: float) -> bool:
        """A key is gone from the moment its expiration is reached."""
        return self.expiration is None or now < self.expiration


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as ``list`` returns it."""

    name: str
    expiration: int | None
    metadata_json: str | None


@dataclass(frozen=True, slots=True)
class Put:
    """A validated write of one key; ``expiration`` already resolved from any TTL."""

    namespace_id: str
    key: str
    value: bytes
    metadata_json: str | None
    expiration: int | None
    # The TTL the writer gave, if any. An edge forwards it as given, so that
    # central counts it from its own commit time.
    expiration_ttl: int | None = None

    def committed_version(self, committed: Committed) -> Version:
        """The version this put became: a TTL counts from the commit's whole second."""
        expiration = self.expiration
        if self.expiration_ttl is not None:
            expiration = math.floor(committed.commit_time) + self.expiration_ttl
        return Version(
            self.key,
            self.value,
            self.metadata_json,
            expiration,
            committed.revision,
            committed.commit_time,
        )


@dataclass(frozen=True, slots=True)
class Delete:
    namespace_id: str
    key: str


Write = Put | Delete


@dataclass(frozen=True, slots=True)
class Committed:
    """What storage reports for one applied write."""

    revision: int
    commit_time: float
    # False for a delete of a key that did not exist: nothing was written and
    # ``revision`` is the store's revision at that moment.
    changed: bool = True
    # True for a write a shared store refused under the one-write-per-second rule, which
    # it judges itself (central.feed): nothing was written.
    rate_limited: bool = False


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """What a shared store tells every central serving it, in commit order.

    ``kind``: ``c`` a commit in namespace ``subject`` made revisions
    ``first_revision`` to ``last_revision``; ``n+`` / ``n-`` namespace ``subject``
    (of ``account_id``) was created / deleted; ``t+`` / ``t-`` API token
    ``subject`` was created / revoked.
    """

    kind: str
    subject: str
    account_id: str = ""
    first_revision: int = 0
    last_revision: int = 0


class ChangeKind(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change, as a watcher sees it.

    ``version`` carries the new value of a put when it is known (always for live
    changes; for replayed ones only while the put is still the key's current
    version).
    """

    revision: int
    kind: ChangeKind
    namespace_id: str
    key: str
    commit_time: float
    version: Version | None = None


def change_of(write: Write, committed: Committed) -> Change:
    """The change a committed write produced, for the watchers."""
    if isinstance(write, Put):
        return Change(
            committed.revision,
            ChangeKind.PUT,
            write.namespace_id,
            write.key,
            committed.commit_time,
            write.committed_version(committed),
        )
    return Change(
        committed.revision,
        ChangeKind.DELETE,
        write.namespace_id,
        write.key,
        committed.commit_time,
    )


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One message of central's change stream: its revision then, and the changes it carries."""

    revision: int
    changes: list[Change]
