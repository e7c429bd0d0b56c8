"""``sqlite:PATH`` — one SQLite file in WAL mode; the default back-end.

Theory of operation:

* **Durability.** ``synchronous=FULL`` in WAL mode: a commit returns only
  after the WAL is fsynced, so an acknowledged write survives ``kill -9`` (and
  power loss).
* **Group commit.** Writes are queued; one writer thread takes everything
  queued, applies it in ONE transaction (one fsync), and completes each
  caller's future. While a batch is on disk the next one gathers, so under
  load many writes share one fsync and durability does not cost throughput.
  Each caller's group is a savepoint, so a group that fails (its namespace was
  deleted meanwhile) rolls back alone.
* **Reads** run on the event loop with a second connection: WAL lets them see
  the last committed state while the writer works, and a point read is a few
  microseconds — cheaper than a thread hop.
* **Layout.** Keys are BLOBs of their UTF-8 bytes, so SQLite's ``memcmp``
  order is UTF-8 byte order and prefixes are matched as byte ranges (no LIKE,
  so ``%``, ``_`` and ``\\`` are ordinary). The value column is last, so
  reading a key's expiration never walks a 25 MiB value's overflow pages.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from central.storage.base import DEFAULT_CHANGE_LOG_ROWS, storage_failed
from central.storage.stats import CommitStats
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import ListQuery, ScanResult, prefix_upper_bound, scan_with_lookahead
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
from edgekv.private_files import create_private

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS namespaces (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    namespace_id TEXT NOT NULL,
    key BLOB NOT NULL,
    expiration INTEGER,
    revision INTEGER NOT NULL,
    commit_time REAL NOT NULL,
    metadata_json TEXT,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace_id, key)
);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    key BLOB NOT NULL,
    kind TEXT NOT NULL,
    commit_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_namespace ON changes (namespace_id, revision);
"""

_VERSION_COLUMNS = "key, value, metadata_json, expiration, revision, commit_time"


def _version(row: tuple[bytes, bytes, str | None, int | None, int, float]) -> Version:
    key, value, metadata_json, expiration, revision, commit_time = row
    return Version(key.decode("utf-8"), value, metadata_json, expiration, revision, commit_time)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


@dataclass
class _Pending:
    writes: Sequence[Write]
    now: float
    future: asyncio.Future[list[Committed]] = field(repr=False)


class SqliteStorage:
    def __init__(self, path: Path, change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS) -> None:
        self.path = path
        self._change_log_rows = change_log_rows
        self._writer = _connect(path)
        self._writer.executescript(SCHEMA)
        self._reader = _connect(path)
        self._revision: int = self._reader.execute(
            "SELECT value FROM meta WHERE name = 'revision'"
        ).fetchone()[0]
        # One thread owns the writer connection; it runs one batch at a time.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._queue: list[_Pending] = []
        self._draining: asyncio.Task[None] | None = None
        self.commit_stats = CommitStats()

    @classmethod
    async def open(
        cls, path: str | Path, change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS
    ) -> SqliteStorage:
        path = Path(path)
        if not path.parent.is_dir():
            raise ValueError(f"cannot open sqlite:{path}: folder {path.parent} does not exist")
        try:
            create_private(path)  # readable by its owner only, and so its -wal and -shm
            return cls(path, change_log_rows)
        except OSError as exc:
            raise ValueError(f"cannot open sqlite:{path}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise ValueError(f"cannot open sqlite:{path}: {exc}") from None

    @property
    def revision(self) -> int:
        return self._revision

    async def oldest_change_revision(self) -> int:
        row = self._reader.execute("SELECT MIN(revision) FROM changes").fetchone()
        return int(row[0]) if row[0] is not None else self._revision + 1

    async def close(self) -> None:
        if self._draining is not None:
            await self._draining
        self._executor.shutdown(wait=True)
        self._reader.close()
        self._writer.close()

    async def _run_in_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the writer thread, inside one transaction; a failure of SQLite
        itself (``database or disk is full``) rolls it back and raises STORAGE_FAILED."""

        def transaction() -> T:
            db = self._writer
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                finally:
                    # A COMMIT that fails (SQLITE_FULL, an I/O error) may leave the
                    # transaction open, and every later BEGIN would fail: end it here.
                    if db.in_transaction:
                        db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise storage_failed(exc) from None
            return result

        return await asyncio.get_running_loop().run_in_executor(self._executor, transaction)

    # -- namespaces (rare; they go through the writer thread, in order) -----

    async def create_namespace(self, namespace: Namespace, max_namespaces: int) -> None:
        def create(db: sqlite3.Connection) -> None:
            taken = db.execute(
                "SELECT 1 FROM namespaces WHERE title = ?", (namespace.title,)
            ).fetchone()
            if taken:
                raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=namespace.title)
            (count,) = db.execute("SELECT COUNT(*) FROM namespaces").fetchone()
            if count >= max_namespaces:
                raise error(ErrorKind.NAMESPACE_LIMIT, limit=max_namespaces)
            db.execute(
                "INSERT INTO namespaces (id, title, created_at) VALUES (?, ?, ?)",
                (namespace.id, namespace.title, namespace.created_at),
            )

        await self._run_in_writer(create)

    async def get_namespace(self, namespace_id: str) -> Namespace | None:
        row = self._reader.execute(
            "SELECT id, title, created_at FROM namespaces WHERE id = ?", (namespace_id,)
        ).fetchone()
        return None if row is None else Namespace(*row)

    async def list_namespaces(self) -> list[Namespace]:
        rows = self._reader.execute("SELECT id, title, created_at FROM namespaces").fetchall()
        return [Namespace(*row) for row in rows]

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        def rename(db: sqlite3.Connection) -> Namespace:
            row = db.execute(
                "SELECT id, title, created_at FROM namespaces WHERE id = ?", (namespace_id,)
            ).fetchone()
            if row is None:
                raise error(
                    ErrorKind.NAMESPACE_NOT_FOUND, operation="rename", namespace_id=namespace_id
                )
            taken = db.execute(
                "SELECT 1 FROM namespaces WHERE title = ? AND id != ?", (title, namespace_id)
            ).fetchone()
            if taken:
                raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=title)
            db.execute("UPDATE namespaces SET title = ? WHERE id = ?", (title, namespace_id))
            return Namespace(namespace_id, title, row[2])

        return await self._run_in_writer(rename)

    async def delete_namespace(self, namespace_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM entries WHERE namespace_id = ?", (namespace_id,))
            return db.execute("DELETE FROM namespaces WHERE id = ?", (namespace_id,)).rowcount > 0

        return await self._run_in_writer(delete)

    # -- reads ----------------------------------------------------------------

    async def get(self, namespace_id: str, key: str) -> Version | None:
        row = self._reader.execute(
            f"SELECT {_VERSION_COLUMNS} FROM entries WHERE namespace_id = ? AND key = ?",
            (namespace_id, key.encode("utf-8")),
        ).fetchone()
        return None if row is None else _version(row)

    async def get_many(self, namespace_id: str, keys: Sequence[str]) -> list[Version | None]:
        unique = list(dict.fromkeys(keys))
        placeholders = ",".join("?" * len(unique))
        rows = self._reader.execute(
            f"SELECT {_VERSION_COLUMNS} FROM entries"
            f" WHERE namespace_id = ? AND key IN ({placeholders})",
            (namespace_id, *(key.encode("utf-8") for key in unique)),
        ).fetchall()
        found = {version.key: version for version in map(_version, rows)}
        return [found.get(key) for key in keys]

    async def scan(self, query: ListQuery, now: float) -> ScanResult:
        prefix = query.prefix.encode("utf-8")
        lower = prefix if query.start_after is None else max(prefix, query.start_after.encode())
        upper = prefix_upper_bound(prefix)
        sql = (
            "SELECT key, expiration, metadata_json FROM entries"
            " WHERE namespace_id = ? AND key >= ? AND key != ?"
            + (" AND key < ?" if upper is not None else "")
            + " AND (expiration IS NULL OR expiration > ?)"
            " ORDER BY key LIMIT ?"
        )
        start_after = b"" if query.start_after is None else query.start_after.encode("utf-8")
        bounds = (upper,) if upper is not None else ()
        rows = self._reader.execute(
            sql, (query.namespace_id, lower, start_after, *bounds, now, query.limit + 1)
        ).fetchall()
        keys = [KeyInfo(key.decode("utf-8"), expiration, meta) for key, expiration, meta in rows]
        return scan_with_lookahead(query, keys)

    async def changes_after(self, namespace_id: str, revision: int, limit: int) -> list[Change]:
        rows = self._reader.execute(
            "SELECT c.revision, c.kind, c.key, c.commit_time, e.value, e.metadata_json,"
            " e.expiration FROM changes AS c LEFT JOIN entries AS e"
            " ON e.namespace_id = c.namespace_id AND e.key = c.key AND e.revision = c.revision"
            " WHERE c.namespace_id = ? AND c.revision > ? ORDER BY c.revision LIMIT ?",
            (namespace_id, revision, limit),
        ).fetchall()
        changes = []
        for rev, kind, raw_key, commit_time, value, metadata_json, expiration in rows:
            key = raw_key.decode("utf-8")
            version = None
            if value is not None:
                version = Version(key, value, metadata_json, expiration, rev, commit_time)
            changes.append(Change(rev, ChangeKind(kind), namespace_id, key, commit_time, version))
        return changes

    # -- writes: group commit -------------------------------------------------

    async def commit(self, writes: Sequence[Write], now: float) -> list[Committed]:
        if not writes:
            return []
        future: asyncio.Future[list[Committed]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(writes, now, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Commit queued groups, one transaction per round, until the queue is empty."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                started = time.perf_counter()
                try:
                    outcomes, self._revision = await loop.run_in_executor(
                        self._executor, self._commit_batch, batch
                    )
                    writes = sum(len(pending.writes) for pending in batch)
                    self.commit_stats.record(len(batch), writes, time.perf_counter() - started)
                except sqlite3.Error as exc:
                    failure = storage_failed(exc)
                    outcomes = [failure] * len(batch)
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(outcome, KVError):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
        finally:
            self._draining = None

    def _commit_batch(self, batch: list[_Pending]) -> tuple[list[list[Committed] | KVError], int]:
        """On the writer thread: apply every group in one transaction, one fsync."""
        db = self._writer
        revision = self._revision
        outcomes: list[list[Committed] | KVError] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for pending in batch:
                db.execute("SAVEPOINT grp")
                try:
                    committed, revision = self._apply_group(db, pending, revision)
                except KVError as exc:
                    # The group's revisions were never used: the next group reuses them.
                    db.execute("ROLLBACK TO grp")
                    outcomes.append(exc)
                else:
                    outcomes.append(committed)
                db.execute("RELEASE grp")
            db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
            db.execute(
                "DELETE FROM changes WHERE revision <= ?", (revision - self._change_log_rows,)
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes, revision

    @staticmethod
    def _apply_group(
        db: sqlite3.Connection, pending: _Pending, revision: int
    ) -> tuple[list[Committed], int]:
        namespace_id = pending.writes[0].namespace_id
        if db.execute("SELECT 1 FROM namespaces WHERE id = ?", (namespace_id,)).fetchone() is None:
            raise error(ErrorKind.NAMESPACE_NOT_FOUND, operation="write", namespace_id=namespace_id)
        committed = []
        for write in pending.writes:
            raw_key = write.key.encode("utf-8")
            if isinstance(write, Put):
                revision += 1
                db.execute(
                    "INSERT OR REPLACE INTO entries (namespace_id, key, expiration, revision,"
                    " commit_time, metadata_json, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        namespace_id,
                        raw_key,
                        write.expiration,
                        revision,
                        pending.now,
                        write.metadata_json,
                        write.value,
                    ),
                )
                kind = ChangeKind.PUT
            else:
                deleted = db.execute(
                    "DELETE FROM entries WHERE namespace_id = ? AND key = ?",
                    (namespace_id, raw_key),
                ).rowcount
                if not deleted:
                    committed.append(Committed(revision, pending.now, changed=False))
                    continue
                revision += 1
                kind = ChangeKind.DELETE
            db.execute(
                "INSERT INTO changes (revision, namespace_id, key, kind, commit_time)"
                " VALUES (?, ?, ?, ?, ?)",
                (revision, namespace_id, raw_key, kind.value, pending.now),
            )
            committed.append(Committed(revision, pending.now))
        return committed, revision
