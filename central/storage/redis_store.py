"""``redis://HOST:PORT/DB`` — the store kept in a real Redis (or ``redis+sentinel://``, the
primary Sentinel names: :mod:`central.storage.redis_connect`).

Theory of operation:

* **Layout** (Redis keys, records, the Lua scripts that change them): see
  :mod:`central.storage.redis_layout`.
* **Schema version.** Once the store is identified, :meth:`RedisStorage.open`
  runs the layout's migration script: a new store gets the current version,
  one from before accounts is migrated atomically, and one written by a newer
  edgekv is refused (ValueError) untouched.
* **Shared.** Several central processes may serve one Redis store at once
  (:class:`~central.storage.base.SharedStorage`): every script that changes
  what a central keeps in memory adds an event to the store's feed, in the
  same atomic call, and the one-write-per-second rule is judged in the commit
  script. :mod:`central.feed` reads the feed.
* **Revision.** :attr:`revision` is cached: read on open, then taken from each
  commit's answer and from the commits other centrals made (the feed). The
  guard's floor is the revision *this* central acknowledged only.
* **Durability** is Redis's: with ``appendonly yes`` and ``appendfsync
  always`` a commit survives ``kill -9``. With ``--durability local`` (the
  default) central checks those settings on every new connection, and every
  write script first checks that the store did not go back (lose writes
  central acknowledged): see :mod:`central.storage.redis_guard`. With
  ``--durability replicated`` a write is also on a replica before it is
  acknowledged (``WAIT`` at the end of each pipeline that writes): see
  :mod:`central.storage.redis_replication`.
* **Group commit.** Concurrent commits share one round trip: each caller
  queues its script call and one flusher sends everything queued as a
  pipeline (not a transaction: each script is atomic on its own and they run
  in queue order), then hands each caller its own answer — every caller,
  whatever one call raises; a write no store can hold is refused before it
  joins a pipeline (:func:`~central.storage.base.unstorable`). Under load this
  spares central the per-call cost of a Redis command, which is what limits
  write throughput in a one-core process.
* **Failures** are STORAGE_FAILED, not definite: a Redis out of reach, out of
  memory, read-only or unable to persist. A call whose connection broke is
  never sent again (:data:`NO_RETRIES`): Redis may have applied it already.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from central.storage import redis_connect, redis_guard, redis_replication
from central.storage import redis_layout as layout
from central.storage.base import (
    DEFAULT_CHANGE_LOG_ROWS,
    SCHEMA_VERSION,
    Durability,
    storage_failed,
    unstorable,
)
from central.storage.record import StoreRecord, check_store, new_store_id
from central.storage.stats import CommitStats
from edgekv.core.accounts import Token
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import ListQuery, ScanResult, scan_with_lookahead
from edgekv.core.model import (
    DEFAULT_ACCOUNT_ID,
    Change,
    Committed,
    FeedEvent,
    KeyInfo,
    Namespace,
    Put,
    Version,
    Write,
)
from edgekv.redis_urls import first_line, redacted

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_PREFIX = "edgekv:"
# About how many events the feed keeps (XADD MAXLEN ~): a central that falls further
# behind than this — down for a while — starts again from what the store holds now.
DEFAULT_FEED_LENGTH = 100_000
# A scan looks at up to limit + 1 + this many keys; past that it stops and
# hands back a cursor, so a page over many expired keys stays cheap.
DEFAULT_SCAN_SKIP_KEYS = 1000
CONNECT_TIMEOUT_SECONDS = 5.0
# redis-py would resend a command whose connection broke — by default three times,
# seconds apart. For a commit that is wrong: Redis may have applied it before the
# break, and a resent commit would apply again, to whatever Redis is there by then.
# A broken call fails (STORAGE_FAILED, not definite) and its caller decides. A pooled
# connection that died while idle is replaced when taken, not by a retry.
NO_RETRIES = Retry(NoBackoff(), 0)
# What a Redis call can fail with, for _kv_error to say what it means (a ResponseError
# that is not a refusal to write is a bug, and stays as it is).
_FAILURES = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ResponseError,
    redis_guard.Refused,
)


def _no_script(result: Any) -> bool:
    return isinstance(result, redis_errors.NoScriptError)


def _refusal(exc: BaseException) -> BaseException:
    """STORAGE_FAILED for a Redis that refuses writes; any other error as it is (a bug)."""
    refuses = isinstance(exc, redis_errors.OutOfMemoryError | redis_errors.ReadOnlyError) or (
        isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("MISCONF")
    )
    return storage_failed(exc) if refuses else exc


def _stream_id(text: str) -> tuple[int, int]:
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


# -- the back-end --------------------------------------------------------------


class RedisStorage:
    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS,
        *,
        prefix: str = DEFAULT_PREFIX,
        scan_skip_keys: int = DEFAULT_SCAN_SKIP_KEYS,
        durability: Durability = Durability.LOCAL,
    ) -> None:
        """Wrap a client; use :meth:`open`, which also checks Redis and loads the revision."""
        self._client = client
        self._url = redacted(url)
        self._change_log_rows = change_log_rows
        self._prefix = prefix
        self._scan_skip_keys = scan_skip_keys
        self._durability = durability
        # The highest revision acknowledged: a store found below it went back.
        self._revision = 0
        # The highest revision another central committed, heard of in the feed.
        self._observed_revision = 0
        # The one-write-per-second rule's interval, judged in the commit script (0: off).
        self._write_interval_s = 0.0
        self._feed_length = DEFAULT_FEED_LENGTH
        self._feed_client: aioredis.Redis | None = None
        self._store_id = ""
        # Once the store went back, the error every call gets until central restarts.
        self._went_back: KVError | None = None
        # Every connection redis-py makes, now or after a drop, is checked before use.
        client.connection_pool.connection_kwargs["redis_connect_func"] = self._connected
        # Commit script calls waiting for the flusher: (keys, args, the caller's future).
        self._queued_commits: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commit_stats = CommitStats()
        self._commit_script = client.register_script(redis_guard.GUARD_LUA + layout.COMMIT_LUA)
        self._scan_script = client.register_script(layout.SCAN_LUA)
        self._get_script = client.register_script(layout.GET_LUA)
        self._changes_script = client.register_script(layout.CHANGES_LUA)
        self._create_namespace_script = client.register_script(
            redis_guard.GUARD_LUA + layout.FEED_LUA + layout.CREATE_NAMESPACE_LUA
        )
        self._rename_namespace_script = client.register_script(
            redis_guard.GUARD_LUA + layout.RENAME_NAMESPACE_LUA
        )
        self._delete_namespace_script = client.register_script(
            redis_guard.GUARD_LUA + layout.FEED_LUA + layout.DELETE_NAMESPACE_LUA
        )
        self._create_token_script = client.register_script(
            redis_guard.GUARD_LUA + layout.FEED_LUA + layout.CREATE_TOKEN_LUA
        )
        self._revoke_token_script = client.register_script(
            redis_guard.GUARD_LUA + layout.FEED_LUA + layout.REVOKE_TOKEN_LUA
        )
        self._migrate_script = client.register_script(layout.MIGRATE_LUA)

    @classmethod
    async def open(
        cls,
        url: str,
        change_log_rows: int = DEFAULT_CHANGE_LOG_ROWS,
        *,
        prefix: str = DEFAULT_PREFIX,
        scan_skip_keys: int = DEFAULT_SCAN_SKIP_KEYS,
        record: StoreRecord | None = None,
        durability: Durability = Durability.LOCAL,
    ) -> RedisStorage:
        """Connect to ``url`` (``redis://HOST:PORT/DB``), check it, load the revision.

        Raises ValueError for a malformed URL, a Redis that refuses us (no such
        database, wrong password), one that may lose acknowledged writes while
        ``durability`` is local, a store that does not match central's
        ``record`` of it, or one written by a newer edgekv; and ConnectionError
        when Redis cannot be reached; each with a one-line message that says
        what to do.
        """
        shown = redacted(url)
        replicated = durability is Durability.REPLICATED
        client = await redis_connect.open_client(
            url,
            wait_for_replica=replicated,
            connect_timeout_s=CONNECT_TIMEOUT_SECONDS,
            retry=NO_RETRIES,
        )
        store = cls(
            client,
            url,
            change_log_rows,
            prefix=prefix,
            scan_skip_keys=scan_skip_keys,
            durability=durability,
        )
        try:
            await client.ping()
            if replicated:  # before anything is written
                await redis_replication.check_can_wait(client, shown)
            store._revision = await store._stored_revision()
            store._store_id = await store._identify(record)
            await store._migrate()
            if replicated:  # the floor just read must be on a replica too
                await redis_replication.wait_caught_up(client, shown)
        except ValueError:
            await client.aclose()
            raise
        except redis_guard.Refused as exc:
            await client.aclose()
            raise ValueError(exc.reason) from None
        except (redis_errors.ResponseError, redis_errors.AuthenticationError) as exc:
            await client.aclose()
            raise ValueError(f"cannot use Redis at {shown}: {first_line(exc)}") from None
        except (redis_errors.RedisError, OSError) as exc:
            await client.aclose()
            raise ConnectionError(f"cannot reach Redis at {shown}: {first_line(exc)}") from None
        return store

    # -- Redis key names ------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _namespace_key(self, namespace_id: str, part: str) -> str:
        return f"{self._prefix}ns:{namespace_id}:{part}"

    def _account_key(self, account_id: str) -> str:
        """The set of an account's namespace ids (the scripts spell it the same way)."""
        return f"{self._prefix}account:{account_id}:namespaces"

    def _keyspace_keys(self, namespace_id: str) -> list[str]:
        """The Redis keys that hold a namespace's entries: names, info, values."""
        return [self._namespace_key(namespace_id, part) for part in ("names", "info", "values")]

    def _directory_write(self, keys: list[str], args: list[Any]) -> tuple[list[str], list[Any]]:
        """A directory script's keys and arguments, with the feed's after its own."""
        return [*keys, self._key("feed")], [*args, self._feed_length]

    # -- plumbing ---------------------------------------------------------------

    async def _connected(self, connection: Any) -> None:
        """redis-py's hook for every new connection: its handshake, then central's checks."""
        await connection.on_connect()
        checks_persistence = self._durability in (Durability.LOCAL, Durability.REPLICATED)
        if checks_persistence and (
            problem := await redis_guard.persistence_problem(connection, self._url)
        ):
            raise redis_guard.Refused(error(ErrorKind.STORAGE_FAILED, detail=problem), problem)
        if not self._store_id:
            return  # still opening: _identify checks the store
        # The floor is taken before asking: commits on other connections may raise it
        # while this one waits, and the revision found here may predate them.
        floor = self._revision
        await connection.send_command("GET", self._key("store_id"))
        found_id = cast(bytes | None, await connection.read_response())
        await connection.send_command("GET", self._key("rev"))
        found_revision = int(cast(bytes | None, await connection.read_response()) or 0)
        found = None if found_id is None else found_id.decode()
        if detail := redis_guard.went_back(self._store_id, floor, found, found_revision):
            raise redis_guard.Refused(self._store_went_back(detail))

    def _store_went_back(self, detail: str) -> KVError:
        """Refuse every call from now on: the store lost writes central acknowledged."""
        if self._went_back is None:
            self._went_back = redis_guard.went_back_error(self._url, detail, self._revision)
            log.error("%s", self._went_back.message)
        return self._went_back

    def _kv_error(self, exc: BaseException) -> BaseException:
        """What a failed Redis call means to central's callers."""
        if isinstance(exc, redis_guard.Refused):
            return exc.kv_error
        if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
            return self._unavailable(exc)
        return _refusal(exc)

    async def _read(self, command: Callable[[], Awaitable[T]]) -> T:
        """Send a plain Redis command, unless the store went back."""
        if self._went_back is not None:
            raise self._went_back
        try:
            return await command()
        except _FAILURES as exc:
            raise self._kv_error(exc) from None

    async def _call(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a registered script; a lost connection, or a Redis that refuses to write (out
        of memory, read-only, cannot persist), becomes STORAGE_FAILED."""
        if self._went_back is not None:
            raise self._went_back
        try:
            return await script(keys=keys, args=args)
        except _FAILURES as exc:
            raise self._kv_error(exc) from None

    def _guard(self) -> tuple[list[str], list[Any]]:
        """The guard's keys and arguments, appended to those of every write script."""
        return [self._key("store_id"), self._key("rev")], [self._store_id, self._revision]

    async def _write(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a write script behind the guard; STORE_WENT_BACK when it refused."""
        guard_keys, guard_args = self._guard()
        answer = await self._call(script, keys + guard_keys, args + guard_args)
        if detail := redis_guard.script_went_back(answer, *guard_args):
            raise self._store_went_back(detail)
        return answer

    async def _group_commit(self, keys: list[str], args: list[Any]) -> Any:
        """Run the commit script in the next pipeline the flusher sends."""
        # Encoded here, in the caller's own call: an argument Redis cannot take fails
        # this caller alone, not the whole pipeline it would have joined.
        encoder = self._client.get_encoder()  # type: ignore[no-untyped-call]
        encoded = [encoder.encode(arg) for arg in args]
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued_commits.append((keys, encoded, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_commits())
        return await answer

    async def _flush_commits(self) -> None:
        """Send what is queued as pipelines until nothing is; answer every caller of each."""
        while self._queued_commits:
            batch, self._queued_commits = self._queued_commits, []
            try:
                results = await self._send_commits(batch)
                for (_, _, answer), result in zip(batch, results, strict=True):
                    if answer.done():  # the caller gave up (cancelled)
                        continue
                    if isinstance(result, BaseException):
                        answer.set_exception(self._kv_error(result))
                    else:
                        answer.set_result(result)
            finally:
                for _, _, answer in batch:  # whatever went wrong above, nobody waits forever
                    if not answer.done():
                        answer.set_exception(
                            error(ErrorKind.STORAGE_FAILED, detail="the Redis flusher stopped")
                        )

    async def _send_commits(self, batch: list[tuple[list[str], list[Any], Any]]) -> list[Any]:
        """One pipeline of the batch's script calls: each call's answer, or its error.

        The pipeline sends EVALSHA alone: redis-py's own script calls would first ask
        SCRIPT EXISTS, a round trip per pipeline. A Redis that does not know the script
        (restarted, or a replica promoted since it was loaded) answers NOSCRIPT and runs
        nothing, so those calls are sent again, once, after loading it."""
        results = await self._pipeline_commits(batch)
        unknown = [i for i, result in enumerate(results) if _no_script(result)]
        if unknown:
            try:
                await self._client.script_load(self._commit_script.script)
            except _FAILURES as exc:
                return [self._kv_error(exc)] * len(batch)
            again = await self._pipeline_commits([batch[i] for i in unknown])
            for i, result in zip(unknown, again, strict=True):
                results[i] = result
        return results

    async def _pipeline_commits(self, batch: list[tuple[list[str], list[Any], Any]]) -> list[Any]:
        sha = self._commit_script.sha
        # As a context manager, so that the pipeline gives its connection back however
        # execute() ends (a broken connection, a cancelled flusher).
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)  # queues, no I/O
            if replicated := self._durability is Durability.REPLICATED:
                redis_replication.queue_wait(pipe)  # on this connection: WAIT counts its writes
            started = time.perf_counter()
            try:
                results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # hand it to every caller rather than lose it here
                return [self._kv_error(exc)] * len(batch)
        if replicated:  # a batch no replica has fails, and raises no revision floor
            results = redis_replication.acknowledged(list(results), self._url)
        # A commit's arguments: 6 of the group, then 4 per write (see commit()), then the guard's 2.
        writes = sum((len(args) - 8) // 4 for _, args, _ in batch)
        self.commit_stats.record(len(batch), writes, time.perf_counter() - started)
        return list(results)

    def _unavailable(self, exc: Exception) -> KVError:
        """Redis out of reach: STORAGE_FAILED, so that callers (and an edge in between)
        tell central's storage being away from central itself being away."""
        return error(
            ErrorKind.STORAGE_FAILED, detail=f"Redis at {self._url} is out of reach ({exc})"
        )

    async def _stored_revision(self) -> int:
        raw = await self._client.get(self._key("rev"))
        return 0 if raw is None else int(cast(bytes, raw))

    async def _identify(self, record: StoreRecord | None) -> str:
        """The store's id, checked against ``record``; a Redis with none gets one unless
        the record says a store was here."""
        key = self._key("store_id")
        if record is None:
            await self._client.set(key, new_store_id(), nx=True)
        found = cast(bytes | None, await self._client.get(key))
        store_id = None if found is None else found.decode()
        check_store(f"Redis at {self._url}", store_id, self._revision, record)
        assert store_id is not None, "check_store refuses a missing store when recorded"
        return store_id

    async def _migrate(self) -> None:
        """Bring the store to SCHEMA_VERSION (one atomic script); ValueError for a store
        written by a newer edgekv, or one holding a record this edgekv cannot read.

        It runs without the guard: the store was identified a moment ago and central
        has acknowledged nothing from it yet.
        """
        keys = [self._key("schema_version"), self._key("namespaces"), self._key("titles")]
        args: list[Any] = [SCHEMA_VERSION, DEFAULT_ACCOUNT_ID, self._prefix]
        found, unreadable = cast(list[Any], await self._migrate_script(keys=keys, args=args))
        if unreadable:
            raise ValueError(
                f"Redis at {self._url} holds namespace {layout.text(unreadable)} in a record "
                f"edgekv cannot read (in {self._key('namespaces')}); nothing was migrated"
            )
        if found > SCHEMA_VERSION:
            raise ValueError(
                f"Redis at {self._url} holds a store written by a newer edgekv (schema version "
                f"{found}; this edgekv knows up to {SCHEMA_VERSION}): serve it with that edgekv "
                "or a newer one"
            )
        if found < SCHEMA_VERSION:
            log.info("Redis at %s: migrated from schema version %d", self._url, found)

    # -- Storage ----------------------------------------------------------------

    @property
    def revision(self) -> int:
        return max(self._revision, self._observed_revision)

    @property
    def acknowledged_revision(self) -> int:
        return self._revision

    def observe_revision(self, revision: int) -> None:
        self._observed_revision = max(self._observed_revision, revision)

    def judge_write_rate(self, interval_s: float) -> None:
        self._write_interval_s = interval_s

    async def feed_position(self) -> str:
        newest = await self._read(lambda: self._client.xrevrange(self._key("feed"), count=1))
        rows = cast(list[tuple[bytes, Any]], newest)
        return layout.text(rows[0][0]) if rows else "0-0"

    async def read_feed(
        self, after: str, count: int, block_ms: int
    ) -> tuple[list[tuple[str, FeedEvent]], bool]:
        feed = self._key("feed")

        if self._feed_client is None:
            # Its own connection, which a blocked read holds for up to ``block_ms``.
            self._feed_client = self._client.client()
        reader = self._feed_client
        block = block_ms if block_ms > 0 else None  # BLOCK 0 would wait forever
        answer = await self._read(lambda: reader.xread({feed: after}, count=count, block=block))
        streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], answer or [])
        entries = streams[0][1] if streams else []
        events = [
            (layout.text(id_), layout.parse_feed_event(fields.get(b"e", b"")))
            for id_, fields in entries
        ]
        # Trimming keeps about feed_length entries, so a reader whose position was trimmed
        # away is handed a full read: only then is the stream asked about (a reader keeping
        # up, most reads, costs one command).
        if len(events) < min(count, self._feed_length):
            return events, False
        info = cast(dict[str, Any], await self._read(lambda: self._client.xinfo_stream(feed)))
        if after == "0-0":
            # A reader that started on an empty feed has read nothing: anything trimmed since
            # (more added than the stream holds) was lost to it.
            return events, int(info["entries-added"]) > int(info["length"])
        # Else what followed ``after`` may be gone when the oldest entry is newer than it.
        first = info.get("first-entry")
        if not first:
            return events, False
        return events, _stream_id(layout.text(first[0])) > _stream_id(after)

    @property
    def store_id(self) -> str:
        return self._store_id

    @property
    def durability(self) -> Durability:
        return self._durability

    async def oldest_change_revision(self) -> int:
        oldest = await self._read(
            lambda: self._client.zrange(self._key("changes"), 0, 0, withscores=True)
        )
        rows = cast(list[tuple[bytes, float]], oldest)
        return int(rows[0][1]) if rows else self._revision + 1

    async def close(self) -> None:
        if self._feed_client is not None:
            await self._feed_client.aclose()
        await self._client.aclose()

    async def create_namespace(self, namespace: Namespace, max_namespaces: int) -> None:
        keys = [
            self._key("namespaces"),
            self._key("titles"),
            self._key("namespace_seq"),
            self._account_key(namespace.account_id),
        ]
        args = [
            namespace.id,
            namespace.account_id,
            namespace.title,
            layout.time_text(namespace.created_at),
            max_namespaces,
            self._prefix,
        ]
        keys += [*self._keyspace_keys(namespace.id), self._namespace_key(namespace.id, "written")]
        outcome = await self._write(
            self._create_namespace_script, *self._directory_write(keys, args)
        )
        if outcome == b"title":
            raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=namespace.title)
        if outcome == b"limit":
            raise error(ErrorKind.NAMESPACE_LIMIT, limit=max_namespaces)

    async def get_namespace(self, namespace_id: str) -> Namespace | None:
        record = await self._read(lambda: self._client.hget(self._key("namespaces"), namespace_id))
        return (
            None if record is None else layout.parse_namespace(namespace_id, cast(bytes, record))[1]
        )

    async def list_namespaces(self) -> list[Namespace]:
        """All namespaces, oldest first (the order memory: gives)."""
        records = await self._read(lambda: self._client.hgetall(self._key("namespaces")))
        parsed = [
            layout.parse_namespace(layout.text(namespace_id), record)
            for namespace_id, record in cast(dict[bytes, bytes], records).items()
        ]
        return [namespace for _, namespace in sorted(parsed, key=lambda pair: pair[0])]

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        keys = [self._key("namespaces"), self._key("titles")]
        answer = cast(
            list[bytes],
            await self._write(self._rename_namespace_script, keys, [namespace_id, title]),
        )
        if answer[0] == b"missing":
            raise error(
                ErrorKind.NAMESPACE_NOT_FOUND, operation="rename", namespace_id=namespace_id
            )
        if answer[0] == b"title":
            raise error(ErrorKind.NAMESPACE_TITLE_EXISTS, title=title)
        return layout.parse_namespace(namespace_id, answer[1])[1]

    async def delete_namespace(self, namespace_id: str) -> bool:
        keys = [
            self._key("namespaces"),
            self._key("titles"),
            *self._keyspace_keys(namespace_id),
            self._namespace_key(namespace_id, "written"),
        ]
        script_call = self._directory_write(keys, [namespace_id, self._prefix])
        return bool(await self._write(self._delete_namespace_script, *script_call))

    async def create_token(self, token: Token) -> None:
        args = [token.token_id, layout.token_record(token)]
        keys = [self._key("tokens")]
        await self._write(self._create_token_script, *self._directory_write(keys, args))

    async def list_tokens(self) -> list[Token]:
        records = await self._read(lambda: self._client.hgetall(self._key("tokens")))
        return [
            layout.parse_token(layout.text(token_id), record)
            for token_id, record in cast(dict[bytes, bytes], records).items()
        ]

    async def revoke_token(self, token_id: str) -> bool:
        script_call = self._directory_write([self._key("tokens")], [token_id])
        return bool(await self._write(self._revoke_token_script, *script_call))

    async def get_token(self, token_id: str) -> Token | None:
        record = await self._read(lambda: self._client.hget(self._key("tokens"), token_id))
        return None if record is None else layout.parse_token(token_id, cast(bytes, record))

    async def get(self, namespace_id: str, key: str) -> Version | None:
        [version] = await self.get_many(namespace_id, [key])
        return version

    async def get_many(self, namespace_id: str, keys: Sequence[str]) -> list[Version | None]:
        if not keys:
            return []
        _, info_key, values_key = self._keyspace_keys(namespace_id)
        fields = [key.encode() for key in keys]
        answer = await self._call(self._get_script, [info_key, values_key], fields)
        infos, values = cast(tuple[list[bytes | None], list[bytes | None]], answer)
        return [
            None if info is None or value is None else layout.Info.parse(info).version(key, value)
            for key, info, value in zip(keys, infos, values, strict=True)
        ]

    async def commit(self, writes: Sequence[Write], now: float) -> list[Committed]:
        """Apply ``writes`` (all of one namespace) in one atomic script call."""
        if not writes:
            return []
        namespace_id = writes[0].namespace_id
        if any(write.namespace_id != namespace_id for write in writes):
            raise ValueError("a commit group must write to one namespace")
        if refusal := unstorable(writes):
            raise refusal
        if self._went_back is not None:
            raise self._went_back
        names_key, info_key, values_key = self._keyspace_keys(namespace_id)
        keys = [
            self._key("namespaces"),
            self._key("rev"),
            names_key,
            info_key,
            values_key,
            self._namespace_key(namespace_id, "changes"),
            self._key("changes"),
            self._namespace_key(namespace_id, "written"),
            self._key("feed"),
        ]
        args: list[Any] = [
            namespace_id,
            layout.time_text(now),
            self._change_log_rows,
            self._prefix,
            layout.time_text(self._write_interval_s),
            self._feed_length,
        ]
        for write in writes:
            if isinstance(write, Put):
                args += [b"p", write.key.encode(), layout.info_tail(write, now), write.value]
            else:
                args += [b"d", write.key.encode(), b"", b""]
        guard_keys, guard_args = self._guard()
        answer = cast(list[int], await self._group_commit(keys + guard_keys, args + guard_args))
        if detail := redis_guard.script_went_back(answer, *guard_args):
            raise self._store_went_back(detail)
        missing = answer[0]
        if missing:
            raise error(ErrorKind.NAMESPACE_NOT_FOUND, operation="write", namespace_id=namespace_id)
        outcomes = answer[2:]
        # Only revisions this commit made: the store's final revision may be another
        # central's commit, which this one never acknowledged (nor waited for a replica of).
        made = [
            revision
            for revision, outcome in zip(outcomes[0::2], outcomes[1::2], strict=True)
            if outcome == 1
        ]
        if made:
            self._revision = max(self._revision, *made)
        return [
            Committed(revision, now, changed=outcome == 1, rate_limited=outcome == 2)
            for revision, outcome in zip(outcomes[0::2], outcomes[1::2], strict=True)
        ]

    async def scan(self, query: ListQuery, now: float) -> ScanResult:
        names_key, info_key, _ = self._keyspace_keys(query.namespace_id)
        lower, upper = layout.lex_range(query)
        max_keys_looked_at = query.limit + 1 + self._scan_skip_keys
        args = [lower, upper, query.limit, max_keys_looked_at, layout.time_text(now)]
        answer = cast(list[Any], await self._call(self._scan_script, [names_key, info_key], args))
        status, last_looked_at, found = int(answer[0]), cast(bytes, answer[1]), answer[2:]
        live_keys = [
            self._key_info(name, info) for name, info in zip(found[0::2], found[1::2], strict=True)
        ]
        if status == 1:
            return ScanResult(live_keys, resume_after=layout.text(last_looked_at))
        return scan_with_lookahead(query, live_keys)

    @staticmethod
    def _key_info(name: bytes, info: bytes) -> KeyInfo:
        parsed = layout.Info.parse(info)
        return KeyInfo(layout.text(name), parsed.expiration, parsed.metadata_json)

    async def changes_after(self, namespace_id: str, revision: int, limit: int) -> list[Change]:
        if limit <= 0:
            return []
        _, info_key, values_key = self._keyspace_keys(namespace_id)
        keys = [self._namespace_key(namespace_id, "changes"), info_key, values_key]
        answer = cast(list[bytes], await self._call(self._changes_script, keys, [revision, limit]))
        return [
            layout.parse_change(namespace_id, entry, info, value)
            for entry, info, value in zip(answer[0::3], answer[1::3], answer[2::3], strict=True)
        ]
