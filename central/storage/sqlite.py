"""``sqlite:PATH`` — one SQLite file in WAL mode; the default back-end.

Theory of operation:

* **Durability.** ``local`` (the default): ``synchronous=FULL`` in WAL mode,
  so a commit returns only after the WAL is fsynced and an acknowledged write
  survives ``kill -9`` and power loss. ``none``: ``synchronous=OFF``, nothing
  is fsynced.
* **The file.** The database file must stay where central opened it (see
  :mod:`central.storage.sqlite_file`): after every commit the writer checks
  that the name still names the file it opened. Once it does not, every write
  is refused (STORE_FILE_GONE) and reads go on from the open file. And a store
  does not start empty where the file is missing but its write-ahead log is
  there, or where central's record says a store was (see
  :mod:`central.storage.record`); the store's id is in its ``identity`` table.
* **Group commit.** Writes are queued; one writer thread takes everything
  queued, applies it in ONE transaction (one fsync), and completes each
  caller's future. While a batch is on disk the next one gathers, so under
  load many writes share one fsync and durability does not cost throughput.
  Each caller's group is a savepoint, so a group that fails (its namespace was
  deleted meanwhile, or it holds what SQLite cannot store) rolls back alone and
  its caller gets the error; the others commit. Whatever happens, every caller
  of a batch is answered. A simulation runs the writer *inline*, on the event
  loop (``inline_writer``): a batch then holds what was queued when the writer
  got its turn, which the virtual-time loop decides alone, where a thread's
  batches would depend on how the host scheduled it.
* **Reads** run on the event loop with a second connection: WAL lets them see
  the last committed state while the writer works, and a point read is a few
  microseconds — cheaper than a thread hop.
* **Layout.** Keys are BLOBs of their UTF-8 bytes, so SQLite's ``memcmp``
  order is UTF-8 byte order and prefixes are matched as byte ranges (no LIKE,
  so ``%``, ``_`` and ``\\`` are ordinary). The value column is last, so
  reading a key's expiration never walks a 25 MiB value's overflow pages.
  Namespaces carry their account; ``UNIQUE (account_id, title)`` keeps titles
  unique per account and its index counts an account's namespaces. Tokens
  are rows of ``tokens`` (the digest, never the token).
* **Schema version.** ``meta`` records it (``schema_version``). Opening is
  one transaction: it checks the store against central's record, then
  brings it to :data:`~central.storage.base.SCHEMA_VERSION`. A new file is
  created at it; a file with namespaces but no version row is version 1,
  from before accounts, and is migrated (its namespaces table rebuilt, every
  namespace in the default account); a file at the current version is left
  as it is; a newer one, or one that is not the recorded store, is refused
  untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from central.storage import sqlite_file
from central.storage.base import (
    DEFAULT_CHANGE_LOG_ROWS,
    SCHEMA_VERSION,
    Durability,
    storage_failed,
)
from central.storage.record import StoreRecord, check_store, new_store_id
from central.storage.stats import CommitStats
from edgekv.core.accounts import Token
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import ListQuery, ScanResult, prefix_upper_bound, scan_with_lookahead
from edgekv.core.model import (
    DEFAULT_ACCOUNT_ID,
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
log = logging.getLogger(__name__)

# The tables alike in every version that has them, so made with IF NOT EXISTS at every
# open: a store from before store ids has no identity table yet, one from before
# accounts no tokens table.
_COMMON_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0)",
    "CREATE TABLE IF NOT EXISTS identity (store_id TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
        namespace_id TEXT NOT NULL,
        key BLOB NOT NULL,
        expiration INTEGER,
        revision INTEGER NOT NULL,
        commit_time REAL NOT NULL,
        metadata_json TEXT,
        value BLOB NOT NULL,
        PRIMARY KEY (namespace_id, key)
    )""",
    """CREATE TABLE IF NOT EXISTS changes (
        revision INTEGER PRIMARY KEY,
        namespace_id TEXT NOT NULL,
        key BLOB NOT NULL,
        kind TEXT NOT NULL,
        commit_time REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS changes_by_namespace ON changes (namespace_id, revision)",
    # New in version 2. namespace_ids: a JSON array of ids, empty for every namespace.
    """CREATE TABLE IF NOT EXISTS tokens (
        token_id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        read_only INTEGER NOT NULL,
        namespace_ids TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
)

# Version 2's namespaces: titles unique per account, whose index also serves the count
# of an account's namespaces. (Version 1's had no account_id and ``title UNIQUE``.)
_NAMESPACES_TABLE = """CREATE TABLE {name} (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (account_id, title)
)"""

_NAMESPACE_COLUMNS = "id, title, created_at, account_id"  # Namespace's own order
_TOKEN_COLUMNS = "token_id, digest, account_id, read_only, namespace_ids, created_at"

_VERSION_COLUMNS = "key, value, metadata_json, expiration, revision, commit_time"


def _version(row: tuple[bytes, bytes, str | None, int | None, int, float]) -> Version:
    key, value, metadata_json, expiration, revision, commit_time = row
    return Version(key.decode("utf-8"), value, metadata_json, expiration, revision, commit_time)


def _token(row: tuple[str, str, str, int, str, float]) -> Token:
    token_id, digest, account_id, read_only, namespace_ids, created_at = row
    return Token(
        token_id, digest, account_id, bool(read_only), tuple(json.loads(namespace_ids)), created_at
    )


_SYNCHRONOUS = {Durability.LOCAL: "FULL", Durability.NONE: "OFF"}


def _connect(path: Path, durability: Durability) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def _open_store(db: sqlite3.Connection, path: Path, record: StoreRecord | None) -> str:
    """Check the store and bring it to :data:`SCHEMA_VERSION`, in ONE transaction; its id.

    A crash halfway leaves the store as it was, and so does a refusal
    (ValueError): a store written by a newer edgekv, or one that is not the
    store central's ``record`` names — checked before anything is migrated, so
    that central changes only a store it will serve.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(db)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"sqlite:{path} was written by a newer edgekv (schema version {version}; this "
                f"edgekv knows up to {SCHEMA_VERSION}): serve it with that edgekv or a newer one"
            )
        for statement in _COMMON_TABLES:
            db.execute(statement)
        store_id = _store_id(db)
        (revision,) = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        check_store(f"sqlite:{path}", store_id, revision, record)
        _bring_up_to_date(db, version)
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
    if version == 1:
        log.info("sqlite:%s: migrated from schema version 1 to %d", path, SCHEMA_VERSION)
    return store_id


def _bring_up_to_date(db: sqlite3.Connection, version: int) -> None:
    """Make the tables of a new database, or migrate an older one; a current one is left
    as it is (a second open writes nothing)."""
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        db.execute(_NAMESPACES_TABLE.format(name="namespaces"))
    elif version == 1:
        _migrate_1_to_2(db)
    db.execute(
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?)",
        (SCHEMA_VERSION,),
    )


def _schema_version(db: sqlite3.Connection) -> int:
    """The version ``meta`` records; 1 for a store from before versions were recorded
    (it has namespaces, no record); 0 for a new, empty database."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is not None:
            return int(row[0])
    return 1 if "namespaces" in tables else 0


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Version 1 to 2, inside the caller's transaction: every namespace joins the default
    account and titles become unique per account. SQLite cannot drop a column's UNIQUE
    constraint, so the table is rebuilt as SQLite's documentation does it: make the new
    table, copy, drop the old one, give the new one its name."""
    db.execute(_NAMESPACES_TABLE.format(name="namespaces_v2"))
    db.execute(
        "INSERT INTO namespaces_v2 (id, account_id, title, created_at)"
        " SELECT id, ?, title, created_at FROM namespaces",
        (DEFAULT_ACCOUNT_ID,),
    )
    db.execute("DROP TABLE namespaces")
    db.execute("ALTER TABLE namespaces_v2 RENAME TO namespaces")


def _store_id(db: sqlite3.Connection) -> str:
    """The store's id; a store made before ids existed gets one now."""
    db.execute(
        "INSERT INTO identity (store_id) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM identity)",
        (new_store_id(),),
    )
    (store_id,) = db.execute("SELECT store_id FROM identity").fetchone()
    return str(store_id)


def _refuse_to_start_empty(path: Path, record: StoreRecord | None) -> None:
    """Raise ValueError when ``path`` is missing but a store was there, else return."""
    wal = Path(f"{path}-wal")
    rescued = list(path.parent.glob(path.name + sqlite_file.RESCUE_SUFFIX + "*"))
    evidence = []
    if wal.exists() and wal.stat().st_size > 0:
        evidence.append(f"its write-ahead log {wal} is there")
    if record is not None:
        evidence.append(f"central's record {record.path} names store {record.store_id}")
    if not evidence:
        return
    newest_rescue = max(rescued, key=lambda copy: copy.stat().st_mtime, default=None)
    put_back = (
        f"move {newest_rescue} (a copy central saved) to {path}"
        if newest_rescue
        else f"put the file back at {path} (renamed: rename it back)"
    )
    leftovers = [wal] if wal.exists() else []
    leftovers += [record.path] if record is not None else []
    remove = " and ".join(map(str, leftovers))
    raise ValueError(
        f"sqlite:{path} is missing, but {' and '.join(evidence)}: the database was moved or "
        f"removed, and starting an empty store would lose what it held. To keep it, {put_back}; "
        f"to start a new, empty store instead, remove {remove}"
    )


@dataclass
class _Pending:
    writes: Sequence[Write]
    now: float
    future: asyncio.Future[list[Committed]] = field(repr=False)


def _internal(exc: BaseException) -> KVError:
    return error(ErrorKind.INTERNAL, detail=f"the SQLite writer failed: {exc!r}")


def _refusal(exc: Exception) -> KVError:
    """What a group that raised answers its caller: a KVError as it is, else INTERNAL."""
    if isinstance(exc, KVError):
        return exc
    # A group the core should have refused (an integer SQLite cannot bind, say): a bug.
    log.error("the SQLite writer refused a group on a bug", exc_info=exc)
    return _internal(exc)


def _answer(batch: list[_Pending], outcomes: list[list[Committed] | KVError]) -> None:
    for pending, outcome in zip(batch, outcomes, strict=True):
        if pending.future.done():  # the caller gave up (cancelled)
            continue
        if isinstance(outcome, KVError):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)


def _fail_unanswered(batch: list[_Pending]) -> None:
    """Answer whoever in ``batch`` is still waiting: never leave a caller hanging."""
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(
                error(ErrorKind.STORAGE_FAILED, detail="the SQLite writer stopped before answering")
            )


class SqliteStorage:
    def __init__(
        self,
        path: Path,
        change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS,
        durability: Durability = Durability.LOCAL,
        inline_writer: bool = False,
        record: StoreRecord | None = None,
    ) -> None:
        """Open, check against ``record`` and bring up to date; use :meth:`open`."""
        self.path = path
        self._change_log_rows = change_log_rows
        self._durability = durability
        self._writer = _connect(path, durability)
        try:
            self._store_id = _open_store(self._writer, path, record)
        except BaseException:
            self._writer.close()
            raise
        self._reader = _connect(path, durability)
        self._revision: int = self._reader.execute(
            "SELECT value FROM meta WHERE name = 'revision'"
        ).fetchone()[0]
        # The file opened, by (device, inode): the name must keep naming it.
        self._file = sqlite_file.identity(path)
        # Once the file is gone, the error every write gets (set on the writer thread).
        self._gone: KVError | None = None
        # One thread owns the writer connection; it runs one batch at a time (None: the
        # event loop's thread does, inline).
        self._executor = (
            None
            if inline_writer
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        )
        self._queue: list[_Pending] = []
        self._draining: asyncio.Task[None] | None = None
        self.commit_stats = CommitStats()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS,
        *,
        durability: Durability = Durability.LOCAL,
        record: StoreRecord | None = None,
        inline_writer: bool = False,
    ) -> SqliteStorage:
        """Open (or create) the database at ``path``; ValueError says why it cannot.

        ``record`` is central's record of the store it served there, if any: a
        missing file, another store or an older one is refused rather than served.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise ValueError(f"cannot open sqlite:{path}: folder {path.parent} does not exist")
        if not path.exists():
            _refuse_to_start_empty(path, record)
        try:
            create_private(path)  # readable by its owner only, and so its -wal and -shm
            return cls(path, change_log_rows, durability, inline_writer, record)
        except OSError as exc:
            raise ValueError(f"cannot open sqlite:{path}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise ValueError(f"cannot open sqlite:{path}: {exc}") from None

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
        return self._durability

    async def oldest_change_revision(self) -> int:
        [row] = self._select("SELECT MIN(revision) FROM changes")
        return int(row[0]) if row[0] is not None else self._revision + 1

    async def close(self) -> None:
        if self._draining is not None:
            await self._draining
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._reader.close()
        self._writer.close()

    def _select(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        """Rows of a query on the reader; SQLite failing (an I/O error, a damaged file)
        is STORAGE_FAILED, as for writes."""
        try:
            return self._reader.execute(sql, parameters).fetchall()
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # our query or our use of the connection is wrong: a bug, not the storage
        except sqlite3.Error as exc:
            raise storage_failed(exc) from None

    async def _run_in_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the writer thread, inside one transaction; a failure of SQLite
        itself (``database or disk is full``) rolls it back and raises STORAGE_FAILED."""
        if self._gone is not None:
            raise self._gone

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
            if gone := self._file_gone():
                raise gone
            return result

        return await self._on_writer(transaction)

    async def _on_writer(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the writer thread, or inline when there is none."""
        if self._executor is None:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    # -- namespaces (rare; they go through the writer thread, in order) -----

    async def create_namespace(self, namespace: Namespace, max_namespaces: int) -> None:
        def create(db: sqlite3.Connection) -> None:
            account_id = namespace.account_id
            taken = db.execute(
                "SELECT 1 FROM namespaces WHERE account_id = ? AND title = ?",
                (account_id, namespace.title),
            ).fetchone()
            if taken:
                raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=namespace.title)
            (count,) = db.execute(
                "SELECT COUNT(*) FROM namespaces WHERE account_id = ?", (account_id,)
            ).fetchone()
            if count >= max_namespaces:
                raise error(ErrorKind.NAMESPACE_LIMIT, limit=max_namespaces)
            db.execute(
                "INSERT INTO namespaces (id, account_id, title, created_at) VALUES (?, ?, ?, ?)",
                (namespace.id, account_id, namespace.title, namespace.created_at),
            )

        await self._run_in_writer(create)

    async def get_namespace(self, namespace_id: str) -> Namespace | None:
        rows = self._select(
            f"SELECT {_NAMESPACE_COLUMNS} FROM namespaces WHERE id = ?", (namespace_id,)
        )
        return Namespace(*rows[0]) if rows else None

    async def list_namespaces(self) -> list[Namespace]:
        rows = self._select(f"SELECT {_NAMESPACE_COLUMNS} FROM namespaces")
        return [Namespace(*row) for row in rows]

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        def rename(db: sqlite3.Connection) -> Namespace:
            row = db.execute(
                f"SELECT {_NAMESPACE_COLUMNS} FROM namespaces WHERE id = ?", (namespace_id,)
            ).fetchone()
            if row is None:
                raise error(
                    ErrorKind.NAMESPACE_NOT_FOUND, operation="rename", namespace_id=namespace_id
                )
            current = Namespace(*row)
            taken = db.execute(
                "SELECT 1 FROM namespaces WHERE account_id = ? AND title = ? AND id != ?",
                (current.account_id, title, namespace_id),
            ).fetchone()
            if taken:
                raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=title)
            db.execute("UPDATE namespaces SET title = ? WHERE id = ?", (title, namespace_id))
            return replace(current, title=title)

        return await self._run_in_writer(rename)

    async def delete_namespace(self, namespace_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM entries WHERE namespace_id = ?", (namespace_id,))
            return db.execute("DELETE FROM namespaces WHERE id = ?", (namespace_id,)).rowcount > 0

        return await self._run_in_writer(delete)

    # -- API tokens (rare, like namespaces: through the writer thread) ----------

    async def create_token(self, token: Token) -> None:
        def create(db: sqlite3.Connection) -> None:
            # OR REPLACE: the same id again replaces the token, as MemoryStorage does.
            db.execute(
                f"INSERT OR REPLACE INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    token.token_id,
                    token.digest,
                    token.account_id,
                    int(token.read_only),
                    json.dumps(list(token.namespace_ids)),
                    token.created_at,
                ),
            )

        await self._run_in_writer(create)

    async def list_tokens(self) -> list[Token]:
        rows = self._select(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, token_id")
        return [_token(row) for row in rows]

    async def revoke_token(self, token_id: str) -> bool:
        def revoke(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM tokens WHERE token_id = ?", (token_id,)).rowcount > 0

        return await self._run_in_writer(revoke)

    # -- reads ----------------------------------------------------------------

    async def get(self, namespace_id: str, key: str) -> Version | None:
        rows = self._select(
            f"SELECT {_VERSION_COLUMNS} FROM entries WHERE namespace_id = ? AND key = ?",
            (namespace_id, key.encode("utf-8")),
        )
        return _version(rows[0]) if rows else None

    async def get_many(self, namespace_id: str, keys: Sequence[str]) -> list[Version | None]:
        unique = list(dict.fromkeys(keys))
        placeholders = ",".join("?" * len(unique))
        rows = self._select(
            f"SELECT {_VERSION_COLUMNS} FROM entries"
            f" WHERE namespace_id = ? AND key IN ({placeholders})",
            (namespace_id, *(key.encode("utf-8") for key in unique)),
        )
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
        rows = self._select(
            sql, (query.namespace_id, lower, start_after, *bounds, now, query.limit + 1)
        )
        keys = [KeyInfo(key.decode("utf-8"), expiration, meta) for key, expiration, meta in rows]
        return scan_with_lookahead(query, keys)

    async def changes_after(self, namespace_id: str, revision: int, limit: int) -> list[Change]:
        rows = self._select(
            "SELECT c.revision, c.kind, c.key, c.commit_time, e.value, e.metadata_json,"
            " e.expiration FROM changes AS c LEFT JOIN entries AS e"
            " ON e.namespace_id = c.namespace_id AND e.key = c.key AND e.revision = c.revision"
            " WHERE c.namespace_id = ? AND c.revision > ? ORDER BY c.revision LIMIT ?",
            (namespace_id, revision, limit),
        )
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
        if self._gone is not None:
            raise self._gone
        future: asyncio.Future[list[Committed]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(writes, now, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Commit queued groups, one transaction per round, until the queue is empty.

        Every caller of a batch is answered, whatever happens: a group that
        raised fails alone (inside :meth:`_commit_batch`), a batch the store
        could not commit fails as a whole, and a caller left unanswered by
        anything else (a bug, a cancellation) gets an error rather than a wait
        that never ends.
        """
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                started = time.perf_counter()
                try:
                    _answer(batch, await self._commit_or_fail(batch))
                    writes = sum(len(pending.writes) for pending in batch)
                    self.commit_stats.record(len(batch), writes, time.perf_counter() - started)
                finally:
                    _fail_unanswered(batch)
        finally:
            self._draining = None

    async def _commit_or_fail(self, batch: list[_Pending]) -> list[list[Committed] | KVError]:
        """Each group's commit, or the one error of a batch that could not commit."""
        try:
            outcomes, self._revision = await self._on_writer(self._commit_batch, batch)
        except sqlite3.Error as exc:  # the store failed (a full disk), not one group
            return [storage_failed(exc)] * len(batch)
        except Exception as exc:
            log.exception("the SQLite writer failed on a bug; its batch was rolled back")
            return [_internal(exc)] * len(batch)
        return outcomes

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
                except sqlite3.Error:
                    raise  # the store failed, not this group: the whole batch fails
                except Exception as exc:
                    # This group alone is refused (its namespace is gone, or it holds
                    # what SQLite cannot store); its revisions were never used, so the
                    # next group reuses them.
                    db.execute("ROLLBACK TO grp")
                    outcomes.append(_refusal(exc))
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
        if gone := self._file_gone():
            # Committed, but to a file a restart will not find: acknowledge none of it.
            return [gone] * len(batch), revision
        return outcomes, revision

    def _file_gone(self) -> KVError | None:
        """On the writer thread, after a commit: the error every write gets from now on
        if the database file is no longer at its path (rescuing its content first)."""
        if self._gone is None and sqlite_file.identity(self.path) != self._file:
            self._gone = self._lost_file_error()
            log.error("%s", self._gone.message)
        return self._gone

    def _lost_file_error(self) -> KVError:
        assert self._file is not None, "the file was there when the store opened"
        loss = sqlite_file.describe_loss(self.path, self._file)
        if loss.renamed_to is not None:
            return sqlite_file.gone_error(self.path, loss, rescued=None)
        try:
            rescued = sqlite_file.rescue(self._writer, self.path)
        except (sqlite3.Error, OSError) as exc:
            return sqlite_file.gone_error(self.path, loss, rescued=None, why_not=str(exc))
        return sqlite_file.gone_error(self.path, loss, rescued)

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
