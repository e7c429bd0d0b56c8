"""The ``CentralStore`` gRPC service: a thin shell around the core and a back-end.

Theory of operation: each handler (1) reads the request into plain values,
(2) validates them with :mod:`edgekv.core` (nothing is written when that
fails), (3) asks the storage back-end, (4) tells the watch hub about what was
committed, and (5) answers with a header carrying the store's revision and
time. Errors are :class:`~edgekv.core.errors.KVError` everywhere below this
layer; the boundary every server installs (:class:`edgekv.rpc.ErrorBoundary`)
converts them to gRPC statuses.

Namespaces are few and read on every call, so the service keeps each existing
namespace's account in memory, and so with API tokens (by their SHA-256). That
map, like all the service's state (the watch hub, the write-rate limiter),
changes only after the storage has committed: a storage that fails (a full
disk, a Redis that is down) leaves every namespace answering as its data says.
Over a SQLite file or memory this central is the store's only writer. Over a
store several centrals share (Redis) it is one of many: it learns what every
central committed — itself included — from the store's feed, in commit order
(:mod:`central.feed`), publishes commits to its watchers from there, asks the
feed to catch up before it calls a namespace or token unknown, and leaves the
one-write-per-second rule to the store, which judges it atomically at commit
(``Committed.rate_limited``).

Every call acts for a :class:`~edgekv.core.accounts.Principal`: the account of
the API token in its ``authorization`` metadata, or the operator when it has
none (refused with TOKEN_MISSING when central requires tokens, ``--auth``). A
namespace the caller may not see answers NAMESPACE_NOT_FOUND, exactly as one
that does not exist, so that ids do not leak between accounts; only then is a
read-only token's write refused. The same class serves ``TokenAdmin``, the
operator's calls that make, list and revoke tokens.

A delete that changes nothing — of a key that holds no value — is not a write
to the one-write-per-second rule: it is never refused with 429 and leaves the
key's second free for a real write (Workers KV documents deleting a missing
key as a success). Central looks the key up only when the rule would refuse.

:class:`CentralSettings` is what may differ between two central stores over the
same kind of storage; :mod:`central.server` passes it through unchanged.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from central.feed import FeedFollower
from central.storage.base import SharedStorage, Storage
from central.watch import DEFAULT_BACKLOG_BYTES, WatchHub
from edgekv.clock import Clock
from edgekv.core import limits
from edgekv.core.accounts import (
    OPERATOR,
    Principal,
    Token,
    bearer_token,
    principal_of,
    sorted_tokens,
    token_digest,
    validate_account_id,
)
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.listing import make_page, parse_list_request
from edgekv.core.model import (
    Change,
    Committed,
    Delete,
    FeedEvent,
    Namespace,
    Version,
    Write,
    change_of,
)
from edgekv.core.namespaces import page_namespaces
from edgekv.core.ratelimit import KeyWriteLimiter
from edgekv.core.validation import (
    validate_bulk_shape,
    validate_delete,
    validate_key,
    validate_namespace_id,
    validate_put,
    validate_read,
    validate_read_many,
    validate_title,
)
from edgekv.rpc import Context, authorization_of
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc, kv_pb2
from edgekv.wire import (
    change_to_pb,
    entry_to_pb,
    fill_entry,
    key_info_to_pb,
    namespace_to_pb,
    put_arguments,
)

log = logging.getLogger(__name__)


DEFAULT_WATCH_BACKLOG = 10_000
# Over a shared store, this central's own commits kept for its watchers until the feed
# brings them (values included): at most this many.
MAX_OWN_COMMITS = 10_000
# Changes replayed from the log per batch, while a watcher catches up.
REPLAY_BATCH = 1000


def random_namespace_id() -> str:
    return secrets.token_hex(16)


def random_token() -> str:
    """A new API token: 240 random bits as 40 URL-safe characters, as Cloudflare's are."""
    return secrets.token_urlsafe(30)


def _valid_keys(raw_keys: Sequence[bytes]) -> list[str]:
    """The keys of ``raw_keys`` that are valid (the others are refused one by one later)."""
    keys = []
    for raw in raw_keys:
        try:
            keys.append(validate_key(raw))
        except KVError:
            continue
    return keys


@dataclass(frozen=True)
class CentralSettings:
    """How a central store behaves, whatever storage it has and however it is served."""

    # One write per second per key, as Workers KV; experiments and benchmarks turn it off.
    write_rate_limit: bool = True
    # Changes a watcher may fall behind by before its stream ends (WATCH_LAGGING).
    watch_backlog: int = DEFAULT_WATCH_BACKLOG
    # ... and bytes of changes (values included for a watcher that asked for them).
    watch_backlog_bytes: int = DEFAULT_BACKLOG_BYTES
    # Where a new namespace's id comes from (tests make ids predictable); a token's id too.
    new_namespace_id: Callable[[], str] = random_namespace_id
    # Where a new API token comes from.
    new_token: Callable[[], str] = random_token
    # Refuse calls without an API token (``edgekv central --auth``).
    require_auth: bool = False
    # The SHA-256 of the operator's token (edgekv.operator_token), which acts as the operator.
    operator_digest: str | None = None


class CentralStoreService(
    central_pb2_grpc.CentralStoreServicer, central_pb2_grpc.TokenAdminServicer
):
    def __init__(self, storage: Storage, clock: Clock, settings: CentralSettings) -> None:
        self._storage = storage
        self._clock = clock
        self._settings = settings
        # A store several centrals share judges the write rate itself, and tells each of
        # them what the others did (central.feed); this process then keeps no limiter.
        self._shared = storage if isinstance(storage, SharedStorage) else None
        self._limiter = KeyWriteLimiter(enabled=settings.write_rate_limit and self._shared is None)
        if self._shared is not None and settings.write_rate_limit:
            self._shared.judge_write_rate(limits.WRITES_PER_KEY_INTERVAL_S)
        self._feed: FeedFollower | None = None
        # Over a shared store: the newest revision the feed has brought, and this central's
        # own commits to watched namespaces, with their values, by first revision, until
        # the feed reaches them (the change log keeps a put's value only while it is the
        # key's current one; these keep it for the watchers, as one central always did).
        self._feed_revision = 0
        self._own_changes: dict[int, list[Change]] = {}
        # Writes handed to storage and not yet committed, per (namespace, key): a key with
        # one may hold a value in a moment, whatever storage says now.
        self._committing: Counter[tuple[str, str]] = Counter()
        self._hub = WatchHub()
        # namespace id → its account
        self._accounts: dict[str, str] = {}
        # token digest → token
        self._tokens: dict[str, Token] = {}

    async def load(self) -> None:
        """Learn which namespaces and tokens exist — and, over a shared store, start
        following what the other centrals do; call once before serving."""
        if self._shared is not None:
            self._feed = FeedFollower(self._shared, self._apply_event, self._resync)
            await self._feed.mark()  # before loading: nothing committed meanwhile is missed
        await self._load_directory()
        if self._feed is not None:
            self._feed.start()

    async def close(self) -> None:
        """Stop following the shared store's feed (if any)."""
        if self._feed is not None:
            await self._feed.stop()

    async def _load_directory(self) -> None:
        self._accounts = {ns.id: ns.account_id for ns in await self._storage.list_namespaces()}
        self._tokens = {token.digest: token for token in await self._storage.list_tokens()}

    # -- a shared store's feed (central.feed) ---------------------------------

    async def _apply_event(self, event: FeedEvent) -> None:
        """Apply what some central (this one too) committed to a shared store."""
        match event.kind:
            case "c":
                await self._apply_commit(event)
            case "n+":
                self._accounts[event.subject] = event.account_id
            case "n-":
                self._accounts.pop(event.subject, None)
                self._hub.end_namespace(event.subject)
            case "t+":
                assert self._shared is not None, "only a shared store has a feed"
                token = await self._shared.get_token(event.subject)
                if token is not None:
                    self._tokens[token.digest] = token
            case "t-":
                self._tokens = {
                    digest: token
                    for digest, token in self._tokens.items()
                    if token.token_id != event.subject
                }
            case _:  # an entry this central cannot read: what it meant is unknown
                log.warning("unreadable feed event %r: reloading from the store", event.subject)
                await self._resync()

    async def _apply_commit(self, event: FeedEvent) -> None:
        assert self._shared is not None, "only a shared store has a feed"
        if event.first_revision <= self._feed_revision:
            # Revisions given again: the store lost commits (a failover lost writes no
            # replica had: acknowledged by none, but heard of here). Watchers may have been
            # sent changes that are gone: they start again from the change log.
            log.warning(
                "the feed gave revision %d again (after %d): the store lost commits",
                event.first_revision,
                self._feed_revision,
            )
            await self._resync()
            self._feed_revision = event.first_revision - 1
        own = self._own_changes.get(event.first_revision)
        if self._hub.watched(event.subject):
            await self._publish_commit(event, own)
        # Only once published: a failed read of the log is tried again, with the values,
        # and is not taken for revisions given again.
        self._shared.observe_revision(event.last_revision)
        self._feed_revision = event.last_revision
        self._own_changes.pop(event.first_revision, None)
        if self._own_changes:  # left by watchers gone, or a commit the feed lost
            for first in [first for first in self._own_changes if first <= event.last_revision]:
                del self._own_changes[first]

    async def _publish_commit(self, event: FeedEvent, own: list[Change] | None) -> None:
        """Hand a commit's changes to the watchers: this central's ``own``, or those read
        back from the change log (a put overwritten since has no value there)."""
        if own is not None:
            self._hub.publish(own)
            return
        expected = event.last_revision - event.first_revision + 1
        changes = await self._storage.changes_after(
            event.subject, event.first_revision - 1, expected
        )
        # Deletes that changed nothing use no revision, so a commit's are contiguous; one
        # trimmed from the log before it was read cannot be sent: its watchers resume.
        if not changes or changes[0].revision != event.first_revision:
            self._hub.lag(event.subject, "what the change log keeps")
            return
        self._hub.publish(change for change in changes if change.revision <= event.last_revision)

    async def _caught_up_account(self, namespace_id: str) -> str | None:
        """The account of a namespace this central had not heard of: made through another
        central a moment ago? The feed is caught up with first; if that took too long (a
        follower behind or retrying), the store itself is asked."""
        assert self._feed is not None, "only over a shared store"
        await self._feed.catch_up()
        account_id = self._accounts.get(namespace_id)
        if account_id is None:
            namespace = await self._storage.get_namespace(namespace_id)
            account_id = None if namespace is None else namespace.account_id
        return account_id

    async def _resync(self) -> None:
        """The feed lost events this central had not read: start again from the store."""
        self._own_changes.clear()
        await self._load_directory()
        self._hub.lag(None, "what the store's feed keeps")

    def watch_backlog(self) -> tuple[int, int]:
        """Watchers, and the bytes of changes they have not been sent (for metrics)."""
        return self._hub.backlog()

    def _header(self) -> kv_pb2.ResponseHeader:
        """Central's revision and time. A read takes it *before* reading: its answer then
        reflects at least that revision, which is what an edge relies on when it weighs
        the answer against a change it has heard of (core.cache.worth_keeping)."""
        return kv_pb2.ResponseHeader(revision=self._storage.revision, server_time=self._clock.now())

    async def _principal(self, context: Context) -> Principal:
        """Who makes the call: its token's account, or the operator without a token."""
        authorization = authorization_of(context)
        if authorization is None:
            if self._settings.require_auth:
                raise error(ErrorKind.TOKEN_MISSING)
            return OPERATOR
        digest = token_digest(bearer_token(authorization))
        if digest == self._settings.operator_digest:
            return OPERATOR
        token = self._tokens.get(digest)
        if token is None and self._feed is not None:
            await self._feed.catch_up()  # made through another central a moment ago?
            token = self._tokens.get(digest)
        if token is None:
            raise error(ErrorKind.TOKEN_INVALID)
        return principal_of(token)

    async def _require_namespace(
        self, raw_id: str, operation: str, context: Context, *, write: bool
    ) -> str:
        """The namespace id, if well formed and the caller may reach the namespace; check
        the rest of a request in between (see :mod:`edgekv.core.validation` on the order)."""
        return await self._require_known(
            validate_namespace_id(raw_id), operation, context, write=write
        )

    async def _require_known(
        self, namespace_id: str, operation: str, context: Context, *, write: bool
    ) -> str:
        """``namespace_id`` (validated already, with the request), if the namespace exists
        and the caller may see it — and, for a write, may write."""
        return await self._reachable(
            await self._principal(context), namespace_id, operation, write=write
        )

    async def _reachable(
        self, principal: Principal, namespace_id: str, operation: str, *, write: bool
    ) -> str:
        account_id = self._accounts.get(namespace_id)
        if account_id is None and self._feed is not None:
            account_id = await self._caught_up_account(namespace_id)
        if account_id is None or not principal.may_see(namespace_id, account_id):
            raise error(
                ErrorKind.NAMESPACE_NOT_FOUND, operation=operation, namespace_id=namespace_id
            )
        if write:
            principal.require_writer()
        return namespace_id

    async def _commit(self, writes: list[Write], now: float) -> list[Committed]:
        slots = Counter((write.namespace_id, write.key) for write in writes)
        self._committing += slots
        try:
            committed = await self._storage.commit(writes, now)
        finally:
            self._committing -= slots  # a Counter keeps only what is still above zero
        changes = [
            change_of(write, outcome)
            for write, outcome in zip(writes, committed, strict=True)
            if outcome.changed
        ]
        if self._shared is None:
            self._hub.publish(changes)
        # Else its watchers hear of it from the feed, in order with other centrals' commits:
        # kept for them unless the feed has brought it already (then it went out without).
        elif (
            changes
            and self._hub.watched(changes[0].namespace_id)
            and changes[0].revision > self._feed_revision
            and len(self._own_changes) < MAX_OWN_COMMITS  # a feed stuck: sent from the log
        ):
            self._own_changes[changes[0].revision] = changes
        return committed

    async def _commit_or_forget(
        self, writes: list[Write], recorded: list[bool], now: float
    ) -> list[Committed]:
        """Commit ``writes``; ``recorded[i]`` says the rate limiter recorded write i. If the
        commit fails, the writes never happened, so the limiter forgets those it recorded —
        as it forgets a recorded delete that changed nothing."""
        try:
            committed = await self._commit(writes, now)
        except BaseException:
            for write, mine in zip(writes, recorded, strict=True):
                if mine:
                    self._limiter.forget(write.namespace_id, write.key, now)
            raise
        for write, mine, outcome in zip(writes, recorded, committed, strict=True):
            if mine and not outcome.changed:
                self._limiter.forget(write.namespace_id, write.key, now)
        return committed

    async def _absent_among_limited(
        self, namespace_id: str, keys: list[str], now: float
    ) -> set[str]:
        """Of ``keys``, those the rate limiter would refuse but which hold no value, nor
        will once the writes now committing land: a delete of them changes nothing, so
        the limiter is not asked (see the module docstring)."""
        limited = [
            key
            for key in keys
            if self._limiter.is_limited(namespace_id, key, now)
            and (namespace_id, key) not in self._committing
        ]
        if not limited:
            return set()
        versions = await self._storage.get_many(namespace_id, limited)
        return {key for key, version in zip(limited, versions, strict=True) if version is None}

    def _live(self, version: Version | None, now: float) -> Version | None:
        return version if version is not None and version.is_live(now) else None

    # -- namespaces ---------------------------------------------------------

    async def CreateNamespace(
        self, request: pb.CreateNamespaceRequest, context: Context
    ) -> pb.NamespaceResponse:
        principal = await self._principal(context)
        title = validate_title(request.title)
        principal.require_writer()
        namespace = Namespace(
            self._settings.new_namespace_id(), title, self._clock.now(), principal.account_id
        )
        await self._storage.create_namespace(namespace, limits.MAX_NAMESPACES)
        self._accounts[namespace.id] = namespace.account_id
        return pb.NamespaceResponse(header=self._header(), namespace=namespace_to_pb(namespace))

    async def ListNamespaces(
        self, request: pb.ListNamespacesRequest, context: Context
    ) -> pb.ListNamespacesResponse:
        principal = await self._principal(context)
        page = page_namespaces(
            [
                ns
                for ns in await self._storage.list_namespaces()
                if principal.lists(ns.id, ns.account_id)
            ],
            page=request.page,
            per_page=request.per_page,
            order_by_title=request.order == pb.NAMESPACE_ORDER_TITLE,
            descending=request.descending,
        )
        return pb.ListNamespacesResponse(
            header=self._header(),
            namespaces=[namespace_to_pb(ns) for ns in page.namespaces],
            total_count=page.total_count,
        )

    async def GetNamespace(
        self, request: pb.GetNamespaceRequest, context: Context
    ) -> pb.NamespaceResponse:
        namespace_id = await self._require_namespace(
            request.namespace_id, "get", context, write=False
        )
        namespace = await self._storage.get_namespace(namespace_id)
        if namespace is None:
            raise error(ErrorKind.NAMESPACE_NOT_FOUND, operation="get", namespace_id=namespace_id)
        return pb.NamespaceResponse(header=self._header(), namespace=namespace_to_pb(namespace))

    async def RenameNamespace(
        self, request: pb.RenameNamespaceRequest, context: Context
    ) -> pb.NamespaceResponse:
        title = validate_title(request.title)
        namespace_id = await self._require_namespace(
            request.namespace_id, "rename", context, write=True
        )
        namespace = await self._storage.rename_namespace(namespace_id, title)
        return pb.NamespaceResponse(header=self._header(), namespace=namespace_to_pb(namespace))

    async def DeleteNamespace(
        self, request: pb.DeleteNamespaceRequest, context: Context
    ) -> pb.DeleteNamespaceResponse:
        namespace_id = await self._require_namespace(
            request.namespace_id, "delete namespace", context, write=True
        )
        await self._storage.delete_namespace(namespace_id)
        # Only now that its deletion is committed: had it failed, the namespace and its
        # data would still be there, and must go on answering.
        self._accounts.pop(namespace_id, None)
        self._hub.end_namespace(namespace_id)
        return pb.DeleteNamespaceResponse(header=self._header())

    # -- keys ---------------------------------------------------------------

    async def Get(self, request: pb.GetRequest, context: Context) -> pb.GetResponse:
        namespace_id, key = validate_read(request.namespace_id, request.key)
        await self._require_known(namespace_id, "get", context, write=False)
        header = self._header()  # before the read: see _header
        version = await self._storage.get(namespace_id, key)
        response = pb.GetResponse(header=header)
        fill_entry(response.entry, request.key, self._live(version, self._clock.now()))
        return response

    async def GetMany(self, request: pb.GetManyRequest, context: Context) -> pb.GetManyResponse:
        namespace_id, keys = validate_read_many(request.namespace_id, request.keys)
        await self._require_known(namespace_id, "bulk get keys", context, write=False)
        header = self._header()  # before the read: see _header
        versions = await self._storage.get_many(namespace_id, keys)
        now = self._clock.now()
        return pb.GetManyResponse(
            header=header,
            entries=[
                entry_to_pb(raw, self._live(version, now))
                for raw, version in zip(request.keys, versions, strict=True)
            ],
        )

    async def Put(self, request: pb.PutRequest, context: Context) -> pb.WriteResponse:
        now = self._clock.now()
        write = validate_put(request.namespace_id, *put_arguments(request), now)
        return await self._write_one(write, now, "put", context)

    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.WriteResponse:
        now = self._clock.now()
        write = validate_delete(request.namespace_id, request.key)
        return await self._write_one(write, now, "remove key", context)

    async def _write_one(
        self, write: Write, now: float, operation: str, context: Context
    ) -> pb.WriteResponse:
        """Commit one validated write, if its namespace exists and its key may be written now."""
        await self._require_known(write.namespace_id, operation, context, write=True)
        changes_nothing = isinstance(write, Delete) and await self._absent_among_limited(
            write.namespace_id, [write.key], now
        )
        if not changes_nothing:
            self._limiter.check(write.namespace_id, write.key, now)
        [committed] = await self._commit_or_forget([write], [not changes_nothing], now)
        if committed.rate_limited:
            raise error(ErrorKind.WRITE_RATE_LIMITED)
        return pb.WriteResponse(
            header=self._header(), revision=committed.revision, commit_time=committed.commit_time
        )

    async def BulkPut(self, request: pb.BulkPutRequest, context: Context) -> pb.BulkWriteResponse:
        total_bytes = sum(
            len(entry.key) + len(entry.value) + len(entry.metadata_json.encode("utf-8"))
            for entry in request.entries
        )
        validate_bulk_shape(len(request.entries), total_bytes)
        namespace_id = await self._require_namespace(
            request.namespace_id, "bulk put", context, write=True
        )
        now = self._clock.now()

        def validate(entry: pb.BulkPutEntry) -> tuple[Write, bool]:
            write = validate_put(namespace_id, *put_arguments(entry), now)
            self._limiter.check(namespace_id, write.key, now)
            return write, True

        return await self._bulk_write([(e.key, e) for e in request.entries], validate, now)

    async def BulkDelete(
        self, request: pb.BulkDeleteRequest, context: Context
    ) -> pb.BulkWriteResponse:
        validate_bulk_shape(len(request.keys), sum(len(key) for key in request.keys))
        namespace_id = await self._require_namespace(
            request.namespace_id, "bulk delete", context, write=True
        )
        now = self._clock.now()
        # Deletes that change nothing are not limited: of keys that hold no value, and of
        # keys an earlier entry of this request deletes already.
        unchanged = await self._absent_among_limited(namespace_id, _valid_keys(request.keys), now)

        def validate(raw_key: bytes) -> tuple[Write, bool]:
            write = validate_delete(namespace_id, raw_key)
            if write.key in unchanged:
                return write, False
            self._limiter.check(namespace_id, write.key, now)
            unchanged.add(write.key)
            return write, True

        return await self._bulk_write([(key, key) for key in request.keys], validate, now)

    async def _bulk_write(
        self,
        items: list[tuple[bytes, Any]],
        validate: Callable[[Any], tuple[Write, bool]],
        now: float,
    ) -> pb.BulkWriteResponse:
        """Validate each entry on its own (``validate`` gives its write and whether the rate
        limiter recorded it); commit the valid ones together."""
        results: list[pb.BulkResult] = []
        valid: list[tuple[pb.BulkResult, Write, bool]] = []
        for raw_key, item in items:
            result = pb.BulkResult(key=raw_key)
            results.append(result)
            try:
                valid.append((result, *validate(item)))
            except KVError as exc:
                result.error_kind = exc.kind.value
                result.error_message = exc.message
        writes = [write for _, write, _ in valid]
        recorded = [mine for _, _, mine in valid]
        committed = await self._commit_or_forget(writes, recorded, now) if valid else []
        successful = 0
        for (result, _, _), outcome in zip(valid, committed, strict=True):
            if outcome.rate_limited:  # judged by a shared store, at commit
                refusal = error(ErrorKind.WRITE_RATE_LIMITED)
                result.error_kind = refusal.kind.value
                result.error_message = refusal.message
                continue
            result.ok = True
            result.revision = outcome.revision
            successful += 1
        return pb.BulkWriteResponse(
            header=self._header(), successful_key_count=successful, results=results
        )

    async def List(self, request: pb.ListRequest, context: Context) -> pb.ListResponse:
        query = parse_list_request(
            request.namespace_id, request.prefix, request.limit, request.cursor
        )
        await self._require_known(query.namespace_id, "list keys", context, write=False)
        header = self._header()  # before the read: see _header
        page = make_page(await self._storage.scan(query, self._clock.now()))
        return pb.ListResponse(
            header=header,
            keys=[key_info_to_pb(info) for info in page.keys],
            list_complete=page.list_complete,
            cursor=page.cursor or "",
        )

    # -- watch --------------------------------------------------------------

    async def Watch(
        self, request: pb.WatchRequest, context: Context
    ) -> AsyncIterator[pb.WatchResponse]:
        namespace_id = await self._require_namespace(
            request.namespace_id, "watch", context, write=False
        )
        # Subscribe before replaying, so nothing committed meanwhile is missed;
        # revisions already replayed are skipped when the live batches arrive.
        subscription = self._hub.subscribe(
            namespace_id,
            self._settings.watch_backlog,
            self._settings.watch_backlog_bytes,
            include_values=request.include_values,
        )
        try:
            start = request.start_revision
            last_sent = self._storage.revision if start <= 0 else start - 1
            yield pb.WatchResponse(header=self._header())
            if start > 0:
                async for batch in self._replay(namespace_id, start):
                    last_sent = batch[-1].revision
                    yield self._watch_response(batch, request.include_values)
            while True:
                batch = await subscription.next_batch(last_sent)
                last_sent = batch[-1].revision
                yield self._watch_response(batch, request.include_values)
        finally:
            self._hub.unsubscribe(subscription)

    async def _replay(self, namespace_id: str, start_revision: int) -> AsyncIterator[list[Change]]:
        oldest = await self._storage.oldest_change_revision()
        if start_revision < oldest and start_revision <= self._storage.revision:
            raise error(ErrorKind.WATCH_COMPACTED, revision=start_revision, oldest=oldest)
        after = start_revision - 1
        while batch := await self._storage.changes_after(namespace_id, after, REPLAY_BATCH):
            yield batch
            after = batch[-1].revision

    def _watch_response(self, batch: list[Change], include_values: bool) -> pb.WatchResponse:
        return pb.WatchResponse(
            header=self._header(),
            changes=[change_to_pb(change, include_values) for change in batch],
        )

    # -- access -------------------------------------------------------------

    async def Authorize(
        self, request: pb.AuthorizeRequest, context: Context
    ) -> pb.AuthorizeResponse:
        principal = await self._principal(context)
        if request.namespace_id:  # the caller is resolved once, above
            namespace_id = validate_namespace_id(request.namespace_id)
            await self._reachable(principal, namespace_id, "get", write=request.write)
        return pb.AuthorizeResponse(
            header=self._header(),
            token_id=principal.token_id,
            account_id=principal.account_id,
            read_only=principal.read_only,
            operator=principal.operator,
            store_id=self._storage.store_id,
        )

    # -- API tokens (the TokenAdmin service) ----------------------------------

    async def _require_operator(self, context: Context, operation: str) -> None:
        if not (await self._principal(context)).operator:
            raise error(ErrorKind.OPERATOR_ONLY, operation=operation)

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: Context
    ) -> pb.CreateTokenResponse:
        await self._require_operator(context, "creating a token")
        account_id = validate_account_id(request.account_id)
        namespace_ids = tuple(
            dict.fromkeys(validate_namespace_id(ns) for ns in request.namespace_ids)
        )
        secret = self._settings.new_token()
        token = Token(
            token_id=self._settings.new_namespace_id(),
            digest=token_digest(secret),
            account_id=account_id,
            read_only=request.read_only,
            namespace_ids=namespace_ids,
            created_at=self._clock.now(),
        )
        await self._storage.create_token(token)
        self._tokens[token.digest] = token
        return pb.CreateTokenResponse(header=self._header(), token=secret, info=_token_info(token))

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: Context
    ) -> pb.ListTokensResponse:
        await self._require_operator(context, "listing tokens")
        return pb.ListTokensResponse(
            header=self._header(),
            # From the store: with several centrals, this one may not have heard of all yet.
            tokens=[
                _token_info(token) for token in sorted_tokens(await self._storage.list_tokens())
            ],
        )

    def _token_by_id(self, token_id: str) -> Token | None:
        return next((token for token in self._tokens.values() if token.token_id == token_id), None)

    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: Context
    ) -> pb.RevokeTokenResponse:
        await self._require_operator(context, "revoking a token")
        found = self._token_by_id(request.token_id)
        if found is None and self._feed is not None:
            await self._feed.catch_up()  # made through another central a moment ago?
            found = self._token_by_id(request.token_id)
        if found is None or not await self._storage.revoke_token(request.token_id):
            raise error(ErrorKind.TOKEN_NOT_FOUND, token_id=request.token_id)
        # Only once storage forgot it: a revoke that failed leaves the token working. (The
        # feed may have told this central already.)
        self._tokens.pop(found.digest, None)
        return pb.RevokeTokenResponse(header=self._header())


def _token_info(token: Token) -> pb.TokenInfo:
    return pb.TokenInfo(
        token_id=token.token_id,
        account_id=token.account_id,
        read_only=token.read_only,
        namespace_ids=list(token.namespace_ids),
        created_at=token.created_at,
    )
