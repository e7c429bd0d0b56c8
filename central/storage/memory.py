"""``memory:`` — everything in dictionaries; gone when the process ends.

Theory of operation: per namespace a dict of key → :class:`Version` and a
sorted list of key names (``bisect``) for listing in byte order. Commits are
applied synchronously between two awaits, so they are atomic with respect to
every other coroutine. Useful for tests and simulations; not durable.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from central.storage.base import DEFAULT_CHANGE_LOG_ROWS, Durability, unstorable
from central.storage.record import new_store_id
from central.storage.stats import CommitStats
from edgekv.core.accounts import Token
from edgekv.core.errors import ErrorKind, error
from edgekv.core.listing import ListQuery, ScanResult, scan_with_lookahead
from edgekv.core.model import (
    Change,
    ChangeKind,
    Committed,
    KeyInfo,
    Namespace,
    Put,
    Version,
    Write,
)


class _Keyspace:
    def __init__(self) -> None:
        self.versions: dict[str, Version] = {}
        self.names: list[str] = []

    def put(self, version: Version) -> None:
        if version.key not in self.versions:
            bisect.insort(self.names, version.key)
        self.versions[version.key] = version

    def delete(self, key: str) -> bool:
        if self.versions.pop(key, None) is None:
            return False
        del self.names[bisect.bisect_left(self.names, key)]
        return True


class MemoryStorage:
    def __init__(self, change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS) -> None:
        self._namespaces: dict[str, Namespace] = {}
        self._tokens: dict[str, Token] = {}
        self._keyspaces: dict[str, _Keyspace] = {}
        self._changes: deque[Change] = deque(maxlen=change_log_rows)
        self._revision = 0
        self._store_id = new_store_id()
        self.commit_stats = CommitStats()

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def acknowledged_revision(self) -> int:
        return self._revision  # the only writer of its store: every revision is its own

    @property
    def store_id(self) -> str:
        return self._store_id

    @property
    def durability(self) -> Durability:
        return Durability.NONE

    async def oldest_change_revision(self) -> int:
        return self._changes[0].revision if self._changes else self._revision + 1

    async def close(self) -> None:
        return None

    def _of_account(self, account_id: str) -> list[Namespace]:
        return [ns for ns in self._namespaces.values() if ns.account_id == account_id]

    async def create_namespace(self, namespace: Namespace, max_namespaces: int) -> None:
        siblings = self._of_account(namespace.account_id)
        if any(ns.title == namespace.title for ns in siblings):
            raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=namespace.title)
        if len(siblings) >= max_namespaces:
            raise error(ErrorKind.NAMESPACE_LIMIT, limit=max_namespaces)
        self._namespaces[namespace.id] = namespace
        self._keyspaces[namespace.id] = _Keyspace()

    async def get_namespace(self, namespace_id: str) -> Namespace | None:
        return self._namespaces.get(namespace_id)

    async def list_namespaces(self) -> list[Namespace]:
        return list(self._namespaces.values())

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        current = self._namespaces.get(namespace_id)
        if current is None:
            raise error(
                ErrorKind.NAMESPACE_NOT_FOUND, operation="rename", namespace_id=namespace_id
            )
        if any(
            ns.title == title and ns.id != namespace_id
            for ns in self._of_account(current.account_id)
        ):
            raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=title)
        renamed = replace(current, title=title)
        self._namespaces[namespace_id] = renamed
        return renamed

    async def delete_namespace(self, namespace_id: str) -> bool:
        self._keyspaces.pop(namespace_id, None)
        return self._namespaces.pop(namespace_id, None) is not None

    # -- API tokens ------------------------------------------------------------

    async def create_token(self, token: Token) -> None:
        self._tokens[token.token_id] = token

    async def list_tokens(self) -> list[Token]:
        return list(self._tokens.values())

    async def revoke_token(self, token_id: str) -> bool:
        return self._tokens.pop(token_id, None) is not None

    async def get(self, namespace_id: str, key: str) -> Version | None:
        keyspace = self._keyspaces.get(namespace_id)
        return None if keyspace is None else keyspace.versions.get(key)

    async def get_many(self, namespace_id: str, keys: Sequence[str]) -> list[Version | None]:
        keyspace = self._keyspaces.get(namespace_id)
        if keyspace is None:
            return [None] * len(keys)
        return [keyspace.versions.get(key) for key in keys]

    async def commit(self, writes: Sequence[Write], now: float) -> list[Committed]:
        if not writes:
            return []
        namespace_id = writes[0].namespace_id
        keyspace = self._keyspaces.get(namespace_id)
        if keyspace is None:
            raise error(ErrorKind.NAMESPACE_NOT_FOUND, operation="write", namespace_id=namespace_id)
        # Checked before anything is applied: a group is all or nothing.
        if refusal := unstorable(writes):
            raise refusal
        started = time.perf_counter()
        committed = [self._apply(keyspace, write, now) for write in writes]
        self.commit_stats.record(1, len(writes), time.perf_counter() - started)  # no batching
        return committed

    def _apply(self, keyspace: _Keyspace, write: Write, now: float) -> Committed:
        if isinstance(write, Put):
            self._revision += 1
            keyspace.put(
                Version(
                    write.key,
                    write.value,
                    write.metadata_json,
                    write.expiration,
                    self._revision,
                    now,
                )
            )
            kind = ChangeKind.PUT
        elif keyspace.delete(write.key):
            self._revision += 1
            kind = ChangeKind.DELETE
        else:
            return Committed(self._revision, now, changed=False)
        self._changes.append(Change(self._revision, kind, write.namespace_id, write.key, now))
        return Committed(self._revision, now)

    async def scan(self, query: ListQuery, now: float) -> ScanResult:
        keyspace = self._keyspaces.get(query.namespace_id)
        if keyspace is None:
            return ScanResult([], resume_after=None)
        names = keyspace.names
        lower = query.prefix if query.start_after is None else max(query.prefix, query.start_after)
        index = bisect.bisect_left(names, lower)
        found: list[KeyInfo] = []
        while index < len(names) and len(found) <= query.limit:
            name = names[index]
            index += 1
            if not name.startswith(query.prefix):
                break
            version = keyspace.versions[name]
            if query.matches(name) and version.is_live(now):
                found.append(KeyInfo(name, version.expiration, version.metadata_json))
        return scan_with_lookahead(query, found)

    async def changes_after(self, namespace_id: str, revision: int, limit: int) -> list[Change]:
        keyspace = self._keyspaces.get(namespace_id)
        selected: list[Change] = []
        for change in self._changes:
            if len(selected) >= limit:
                break
            if change.revision <= revision or change.namespace_id != namespace_id:
                continue
            current = None if keyspace is None else keyspace.versions.get(change.key)
            if change.kind is ChangeKind.PUT and current and current.revision == change.revision:
                change = replace(change, version=current)
            selected.append(change)
        return selected
