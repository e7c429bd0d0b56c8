"""The Python client: ``edgekv.Client`` and the Workers-style ``KVNamespace``.

Theory of operation: a :class:`Client` owns one gRPC channel to the central
store. ``client.namespace(id)`` returns a :class:`KVNamespace` whose methods
mirror a Worker's KV binding (``get``, ``get_with_metadata``, ``put``,
``delete``, ``list``), with Python types: ``type="bytes"`` for
``arrayBuffer``, ``None`` for ``null``. It reports errors as a Worker's binding
does (:func:`~edgekv.core.errors.binding_error`): ``KV PUT failed: 400
Invalid expiration_ttl of 0. …``, or — for what the binding refuses itself,
before any request — a bare message in an exception that is both a
:class:`~edgekv.core.errors.KVError` and a ``TypeError`` (an empty key, a
number out of int32's range, an unknown type, an argument of the wrong Python
type). Numbers are taken as the binding takes them: int32s, a fraction
dropped (``cache_ttl=30.5`` reads with 30, at central and at an edge alike).
Text is written as WTF-8 and read back leniently (:mod:`edgekv.core.text`),
and a value's type is looked at only once a value is found. Bulk writes are
the REST API's, and keep central's bare messages. Reads are retried
(bounded, with jittered backoff) on UNAVAILABLE and DEADLINE_EXCEEDED; writes
are never retried on those, since a retry could apply them twice.

A write refused by the one-write-per-second rule (429, ``WRITE_RATE_LIMITED``)
surely did not happen, so retrying it is safe. By default the
:class:`~edgekv.core.errors.RateLimitedError` reaches the caller, as it does in
a Worker; ``Client(retry_rate_limited=True)`` (what ``edgekv kv`` uses, like
the official SDKs) waits at least a second, with jitter, and writes again, a
bounded number of times — for a bulk write, only the entries that were refused.

Each channel has at most ``max_in_flight`` calls in flight; a burst of more
waits its turn (:mod:`edgekv.inflight` says why a burst must not be started
all at once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Literal, TypeVar, overload

import grpc

from edgekv.channels import Target, open_channel, parse_target
from edgekv.closing import AsyncClosing
from edgekv.core import limits
from edgekv.core.errors import (
    REGISTRY,
    ErrorKind,
    KVError,
    RateLimitedError,
    binding_error,
    error,
)
from edgekv.core.model import Change, Namespace
from edgekv.core.text import decode_text, encode_text, lenient_key, well_formed_json
from edgekv.core.validation import parse_json, validate_cache_ttl, validate_value
from edgekv.inflight import DEFAULT_MAX_IN_FLIGHT, BoundedChannel
from edgekv.locate import locate_central, locate_edge, locate_tls_ca
from edgekv.retry import RetrySchedule, backoff_s, call_with_retries
from edgekv.rpc import AUTHORIZATION_METADATA_KEY, error_from_rpc
from edgekv.tls import read_ca
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc, edge_pb2, edge_pb2_grpc, kv_pb2
from edgekv.wire import change_from_pb, namespace_from_pb

log = logging.getLogger(__name__)

T = TypeVar("T")
ValueType = Literal["text", "json", "bytes", "arrayBuffer", "stream"]
PutValue = str | bytes | bytearray | memoryview | IO[bytes] | AsyncIterable[bytes]

# The types a bulk read takes (its server refuses the others, with 400).
_BULK_VALUE_TYPES = ("text", "json")
STREAM_CHUNK_BYTES = 64 * 1024
# The numbers the wire carries (protobuf int64s; a list's limit is an int32).
_WIRE_INT_MIN, _WIRE_INT_MAX = -(2**63), 2**63 - 1
_PUT_VALUE_TYPES = "str, bytes, bytearray, memoryview, a binary file or an async iterator of bytes"


@dataclass(frozen=True, slots=True)
class ReadInfo:
    """Where and how a read was served."""

    revision: int
    commit_time: float
    age_s: float
    region: str
    node: str
    cache_status: str | None


@dataclass(frozen=True, slots=True)
class ValueWithMetadata:
    value: Any
    metadata: Any
    cache_status: str | None
    info: ReadInfo


@dataclass(frozen=True, slots=True)
class ListedKey:
    name: str
    expiration: int | None
    metadata: Any


@dataclass(frozen=True, slots=True)
class ListResult:
    keys: list[ListedKey]
    list_complete: bool
    cursor: str | None
    cache_status: str | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    revision: int
    commit_time: float


@dataclass(frozen=True, slots=True)
class BulkEntryResult:
    key: str
    ok: bool
    revision: int
    error_kind: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class BulkResult:
    successful_key_count: int
    results: list[BulkEntryResult]

    @property
    def unsuccessful_keys(self) -> list[str]:
        return [result.key for result in self.results if not result.ok]


@dataclass(frozen=True, slots=True)
class BulkPutEntry:
    """One entry of :meth:`KVNamespace.bulk_put` (the REST bulk-write fields)."""

    key: str
    value: bytes | str
    expiration: int | None = None
    expiration_ttl: int | None = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class RetryPolicy(RetrySchedule):
    """Bounded retries of reads: attempts, exponential backoff, jitter seeded by ``seed``."""

    seed: int | None = None
    # Each call tried once — for benchmarks, experiments and tests, where a retry would
    # hide what they measure or check.
    NONE: ClassVar[RetryPolicy]


RetryPolicy.NONE = RetryPolicy(attempts=1)

# Writes refused by the one-write-per-second rule, when retried: the rule is one write
# per second, so every wait is at least a second; five attempts wait 4-11.5 s in all.
RATE_LIMITED_RETRY = RetrySchedule(
    attempts=5, initial_backoff_s=0.5, max_backoff_s=4.0, min_backoff_s=1.0
)


def _with_status(exc: KVError) -> str:
    """``exc``'s bare message after its HTTP status: ``429 Too Many Requests``."""
    return f"{REGISTRY[exc.kind].http_status} {exc.message}"


def _wrong_type(method: str, argument: str, expected: str, value: object) -> KVError:
    return error(
        ErrorKind.ARGUMENT_TYPE,
        method=method,
        argument=argument,
        expected=expected,
        actual=type(value).__name__,
    )


def _whole(method: str, argument: str, value: object) -> int | None:
    """A number as Workers' binding converts it: a fraction dropped, NaN and ±Infinity as 0.

    None means "not given". Anything but an int or a float is refused by name,
    rather than sent to fail deep inside protobuf.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(method, argument, "an int", value)
    number = (
        (math.trunc(value) if math.isfinite(value) else 0) if isinstance(value, float) else value
    )
    if not _WIRE_INT_MIN <= number <= _WIRE_INT_MAX:  # the wire's int64, or protobuf raises
        raise error(ErrorKind.VALUE_OUT_OF_RANGE, minimum=_WIRE_INT_MIN, maximum=_WIRE_INT_MAX)
    return number


def _int32(method: str, argument: str, value: object) -> int | None:
    """A number as Workers' binding takes it (:func:`_whole`), which must fit an int32:
    past that it is a TypeError there, so here too."""
    number = _whole(method, argument, value)
    if number is not None and not limits.BINDING_INT_MIN <= number <= limits.BINDING_INT_MAX:
        raise error(
            ErrorKind.VALUE_OUT_OF_RANGE,
            minimum=limits.BINDING_INT_MIN,
            maximum=limits.BINDING_INT_MAX,
        )
    return number


def _encode_key(key: object, method: str) -> bytes:
    """A key as the bytes a Worker's binding sends in a URL's path: WTF-8. A key with a
    lone surrogate is so not UTF-8, and the server refuses it, as Workers' does."""
    if not isinstance(key, str):
        raise _wrong_type(method, "key", "a str", key)
    return encode_text(key)


def _single_key(key: object, method: str) -> bytes:
    """The key of a single-key call, refused here when Workers' binding refuses it itself,
    before any request and before any other argument (empty, ``.`` or ``..``)."""
    raw = _encode_key(key, method)
    if not raw:
        raise error(ErrorKind.KEY_EMPTY)
    if key in limits.RESERVED_KEYS:
        raise error(ErrorKind.KEY_RESERVED, key=key)
    return raw


def _keys_of(key: object, method: str) -> list[str] | None:
    """The keys of a bulk read, or None when ``key`` is one key."""
    if isinstance(key, str):
        return None
    if isinstance(key, Sequence) and not isinstance(key, bytes | bytearray):
        keys = list(key)
        for item in keys:
            if not isinstance(item, str):
                raise _wrong_type(method, "key", "a str or a sequence of str", item)
        return keys
    raise _wrong_type(method, "key", "a str or a sequence of str", key)


def _as_javascript_numbers(value: Any) -> Any:
    """``value`` with its numbers as JSON.stringify writes them: NaN and ±Infinity as None
    (null), and a whole float below 1e21 as an int (``1`` for ``1.0``, as JavaScript has
    one number type). Python and JavaScript then differ only for floats below 1e-4 in
    magnitude (``1e-05`` against ``0.00001``), which are left as Python writes them."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, Mapping):
        return {name: _as_javascript_numbers(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_javascript_numbers(item) for item in value]
    return value


def _metadata_json(metadata: Any, method: str = "put") -> str | None:
    """Metadata as a Worker's binding serialises it: JSON.stringify's text, non-finite
    numbers as null and lone surrogates escaped (docs/design.md, "Limits and messages")."""
    if metadata is None:
        return None
    try:
        text = json.dumps(
            _as_javascript_numbers(metadata),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError, RecursionError):  # a set, an object, a cycle
        raise _wrong_type(method, "metadata", "JSON-serialisable", metadata) from None
    return well_formed_json(text)


def _decode(raw_key: bytes, value: bytes, value_type: str, in_bulk: bool = False) -> Any:
    """A found value as ``value_type`` (the type is looked at only now, as in Workers).

    ``in_bulk``: read in a bulk read, whose values Workers' server decodes, dropping a
    leading byte order mark (:mod:`edgekv.core.text`).
    """
    if value_type == "text":
        return decode_text(value, drop_bom=in_bulk)
    if value_type == "json":
        try:
            # As a Worker reads it: text first (leniently), then JSON.parse — no NaN, no
            # Infinity, no byte order mark.
            return parse_json(decode_text(value, drop_bom=in_bulk))
        except ValueError as exc:
            raise error(ErrorKind.VALUE_NOT_JSON, key=_shown(raw_key), detail=str(exc)) from None
    if value_type in ("bytes", "arrayBuffer"):
        return value
    if value_type == "stream":
        return _stream(value)
    raise error(ErrorKind.TYPE_UNKNOWN)


def _shown(raw_key: bytes) -> str:
    return decode_text(raw_key)


async def _stream(value: bytes) -> AsyncIterator[bytes]:
    view = memoryview(value)
    for start in range(0, len(view), STREAM_CHUNK_BYTES):
        yield bytes(view[start : start + STREAM_CHUNK_BYTES])


async def _value_bytes(value: PutValue) -> bytes:
    if isinstance(value, str):
        return encode_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, AsyncIterable):
        parts = []
        async for part in value:
            if not isinstance(part, bytes | bytearray | memoryview):
                raise _wrong_type("put", "value", _PUT_VALUE_TYPES, part)
            parts.append(bytes(part))
        return b"".join(parts)
    read = getattr(value, "read", None)
    if callable(read):
        data = read()
        if isinstance(data, bytes):
            return data
    raise _wrong_type("put", "value", _PUT_VALUE_TYPES, value)


def _parse_metadata(metadata_json: str | None) -> Any:
    return None if metadata_json is None else json.loads(metadata_json)


_CACHE_STATUS_NAMES: dict[int, str | None] = {
    edge_pb2.CACHE_STATUS_UNSPECIFIED: None,
    edge_pb2.CACHE_STATUS_HIT: "HIT",
    edge_pb2.CACHE_STATUS_MISS: "MISS",
    edge_pb2.CACHE_STATUS_EXPIRED: "EXPIRED",
    edge_pb2.CACHE_STATUS_STALE: "STALE",
    edge_pb2.CACHE_STATUS_REVALIDATED: "REVALIDATED",
}


def _central_info(entry: kv_pb2.Entry) -> ReadInfo:
    return ReadInfo(
        revision=entry.revision,
        commit_time=entry.commit_time,
        age_s=0.0,
        region="central",
        node="central",
        cache_status=None,
    )


def _edge_info(info: edge_pb2.ReadInfo, entry: kv_pb2.Entry | None = None) -> ReadInfo:
    return ReadInfo(
        revision=info.revision,
        commit_time=0.0 if entry is None else entry.commit_time,
        age_s=info.age_s,
        region=info.region,
        node=info.node,
        cache_status=_CACHE_STATUS_NAMES[info.cache_status],
    )


def _result(
    entry: kv_pb2.Entry, value_type: str, info: ReadInfo, in_bulk: bool = False
) -> ValueWithMetadata:
    if not entry.found:
        return ValueWithMetadata(None, None, info.cache_status, info)
    metadata = entry.metadata_json if entry.HasField("metadata_json") else None
    return ValueWithMetadata(
        _decode(entry.key, entry.value, value_type, in_bulk),
        _parse_metadata(metadata),
        info.cache_status,
        info,
    )


class Client(AsyncClosing):
    """An async client of an edgekv cluster. Use as ``async with edgekv.Client(...)``.

    ``central=`` talks to the central store (authoritative, like the REST API);
    ``edge=`` reads and writes through one edge node (like a Worker in that
    edge's region). Give both to manage namespaces at central and use keys
    through the edge. Bulk writes and watches are central's. With neither,
    the client finds the running cluster's central store the way ``edgekv kv``
    does: ``EDGEKV_CENTRAL``, then the state file ``edgekv up`` wrote; with
    ``region=`` it finds that region's edge too (``EDGEKV_EDGE_<REGION>``, then
    the state file), as a Worker running there would read.

    Each may be an address (``"HOST:PORT"``; for central replicas a list
    ``"HOST:PORT,HOST:PORT"`` or ``"dns:///NAME:PORT"``, over which calls are
    spread and fail over: :mod:`edgekv.channels`) or a channel to use as it is,
    such as an :class:`edgekv.inprocess.InProcessChannel` to servers in this process.

    ``tls_ca=`` is the PEM file of the CA that signed the servers' TLS
    certificates; None means ``EDGEKV_TLS_CA`` if set, else the CA of the
    cluster in the state file when the addresses are that cluster's, else plain gRPC.

    ``retry_rate_limited=True`` retries writes refused with 429 (see the module
    docstring); ``max_in_flight`` bounds the calls in flight on each channel.

    ``token=`` is an API token (``edgekv token create``), sent with every call
    as ``authorization: Bearer TOKEN``; None means ``EDGEKV_TOKEN`` if set, else
    none (the operator, where central does not run with ``--auth``).
    """

    def __init__(
        self,
        central: str | Any | None = None,
        edge: str | Any | None = None,
        *,
        region: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_rate_limited: bool = False,
        token: str | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        if region is not None and edge is None:
            edge = locate_edge(region, how_to_pass="edge='HOST:PORT'")
        if central is None and (edge is None or region is not None):
            central = locate_central(how_to_pass="central='HOST:PORT'")
        self.central = central if central is None or isinstance(central, str) else "in-process"
        self.edge = edge if edge is None or isinstance(edge, str) else "in-process"
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.retry = retry or RetryPolicy()
        self.retry_rate_limited = retry_rate_limited
        self._rng = random.Random(self.retry.seed)
        token = token if token is not None else os.environ.get("EDGEKV_TOKEN")
        self._metadata = ((AUTHORIZATION_METADATA_KEY, f"Bearer {token}"),) if token else None
        addresses = [target for target in (central, edge) if isinstance(target, str)]
        self.tls_ca = locate_tls_ca(tls_ca, addresses) if addresses else None
        if self.tls_ca is not None:
            read_ca(self.tls_ca)  # a bad file is refused before any channel is made
        # Both parsed before either channel is made: a bad one leaves nothing open.
        central = parse_target(central) if isinstance(central, str) else central
        edge = parse_target(edge) if isinstance(edge, str) else edge
        self._channels: list[Any] = []
        self._stub: central_pb2_grpc.CentralStoreStub | None = None
        self._edge_stub: edge_pb2_grpc.EdgeKVStub | None = None
        self._token_admin: central_pb2_grpc.TokenAdminStub | None = None
        if central is not None:
            channel = self._channel_to(central)
            self._stub = central_pb2_grpc.CentralStoreStub(channel)
            self._token_admin = central_pb2_grpc.TokenAdminStub(channel)
        if edge is not None:
            self._edge_stub = edge_pb2_grpc.EdgeKVStub(self._channel_to(edge))

    def _channel_to(self, target: Target | Any) -> BoundedChannel:
        """A channel to ``target`` that queues calls beyond ``max_in_flight`` (a burst)."""
        if not isinstance(target, Target):
            return BoundedChannel(target, self.max_in_flight)  # the caller closes theirs
        channel = open_channel(target, tls_ca=self.tls_ca)
        self._channels.append(channel)
        return BoundedChannel(channel, self.max_in_flight)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    @property
    def call_metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The metadata every call carries: the API token, if any."""
        return self._metadata

    @property
    def stub(self) -> central_pb2_grpc.CentralStoreStub:
        """The central store's raw gRPC stub."""
        if self._stub is None:
            raise ValueError("this operation needs the central store: pass central='HOST:PORT'")
        return self._stub

    @property
    def edge_stub(self) -> edge_pb2_grpc.EdgeKVStub | None:
        """The edge's raw gRPC stub, or None when the client talks to central only."""
        return self._edge_stub

    def _server_of(self, method: object) -> str:
        if self._edge_stub is not None and any(
            method is bound for bound in vars(self._edge_stub).values()
        ):
            return f"the edge at {self.edge}"
        return f"the central store at {self.central}"

    async def call(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """One call, errors converted to KVError; never retried (for writes)."""
        try:
            return await method(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self._server_of(method)) from None

    async def write(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """A write: never retried when it may have happened; retried on 429 if so chosen."""
        failed_attempts = 0
        while True:
            try:
                return await self.call(method, request)
            except RateLimitedError as exc:
                failed_attempts += 1
                if not self.may_retry_rate_limited(exc.kind, failed_attempts):
                    raise
                await self.wait_out_rate_limit(_with_status(exc), failed_attempts)

    def may_retry_rate_limited(self, kind: ErrorKind | str | None, failed_attempts: int) -> bool:
        """Whether a write refused as ``kind`` after ``failed_attempts`` goes again."""
        return (
            self.retry_rate_limited
            and kind == ErrorKind.WRITE_RATE_LIMITED
            and failed_attempts < RATE_LIMITED_RETRY.attempts
        )

    async def wait_out_rate_limit(self, reason: str, failed_attempts: int) -> None:
        wait_s = backoff_s(RATE_LIMITED_RETRY, failed_attempts, self._rng)
        log.info(
            "%s; writing again in %.1f s (attempt %d of %d)",
            reason,
            wait_s,
            failed_attempts + 1,
            RATE_LIMITED_RETRY.attempts,
        )
        await asyncio.sleep(wait_s)

    async def read(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """A call that is safe to repeat: retried on UNAVAILABLE / DEADLINE_EXCEEDED."""
        return await call_with_retries(
            lambda: self.call(method, request),
            self.retry,
            rng=self._rng,
            should_retry=lambda exc: isinstance(exc, KVError) and exc.transient,
        )

    # -- namespaces -----------------------------------------------------------

    async def create_namespace(self, title: str) -> Namespace:
        response = await self.call(
            self.stub.CreateNamespace, pb.CreateNamespaceRequest(title=title)
        )
        return namespace_from_pb(response.namespace)

    async def list_namespaces(
        self, order: Literal["id", "title"] = "id", descending: bool = False
    ) -> list[Namespace]:
        """Every namespace, following pages to the end."""
        namespaces: list[Namespace] = []
        page = 1
        while True:
            response = await self.read(
                self.stub.ListNamespaces,
                pb.ListNamespacesRequest(
                    page=page,
                    per_page=limits.MAX_NAMESPACES_PER_PAGE,
                    order=pb.NAMESPACE_ORDER_TITLE if order == "title" else pb.NAMESPACE_ORDER_ID,
                    descending=descending,
                ),
            )
            if not response.namespaces:
                return namespaces
            namespaces.extend(namespace_from_pb(ns) for ns in response.namespaces)
            page += 1

    async def get_namespace(self, namespace_id: str) -> Namespace:
        response = await self.read(
            self.stub.GetNamespace, pb.GetNamespaceRequest(namespace_id=namespace_id)
        )
        return namespace_from_pb(response.namespace)

    async def rename_namespace(self, namespace_id: str, title: str) -> Namespace:
        response = await self.call(
            self.stub.RenameNamespace,
            pb.RenameNamespaceRequest(namespace_id=namespace_id, title=title),
        )
        return namespace_from_pb(response.namespace)

    async def delete_namespace(self, namespace_id: str) -> None:
        await self.call(
            self.stub.DeleteNamespace, pb.DeleteNamespaceRequest(namespace_id=namespace_id)
        )

    # -- API tokens (the operator's) -----------------------------------------------

    @property
    def token_admin_stub(self) -> central_pb2_grpc.TokenAdminStub:
        if self._token_admin is None:
            raise ValueError("this operation needs the central store: pass central='HOST:PORT'")
        return self._token_admin

    async def create_token(
        self, account_id: str, *, read_only: bool = False, namespace_ids: Sequence[str] = ()
    ) -> tuple[str, pb.TokenInfo]:
        """A new API token of ``account_id`` (the token, shown this once, and its info)."""
        response = await self.call(
            self.token_admin_stub.CreateToken,
            pb.CreateTokenRequest(
                account_id=account_id, read_only=read_only, namespace_ids=list(namespace_ids)
            ),
        )
        return response.token, response.info

    async def list_tokens(self) -> list[pb.TokenInfo]:
        response = await self.read(self.token_admin_stub.ListTokens, pb.ListTokensRequest())
        return list(response.tokens)

    async def revoke_token(self, token_id: str) -> None:
        await self.call(self.token_admin_stub.RevokeToken, pb.RevokeTokenRequest(token_id=token_id))

    def namespace(self, namespace_id: str, *, as_binding: bool = True) -> KVNamespace:
        """The namespace ``namespace_id`` (see :class:`KVNamespace` for ``as_binding``)."""
        return KVNamespace(self, namespace_id, as_binding=as_binding)


class WatchStream:
    """An open watch: iterate it for changes; ``close()`` ends it."""

    def __init__(self, namespace_id: str, call: Any, registered_at_revision: int) -> None:
        self.namespace_id = namespace_id
        self.registered_at_revision = registered_at_revision
        self._call = call

    async def __aiter__(self) -> AsyncIterator[Change]:
        try:
            while (response := await self._call.read()) is not grpc.aio.EOF:
                for change in response.changes:
                    yield change_from_pb(self.namespace_id, change)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None

    def close(self) -> None:
        self._call.cancel()


class KVNamespace:
    """One namespace, used as a Worker uses its KV binding.

    ``as_binding=False`` takes calls as Cloudflare's REST API does instead, as
    wrangler's commands (and so ``edgekv kv``) make them: errors keep their bare
    message, and numbers need only fit the store (the binding's int32 range is the
    binding's own).
    """

    def __init__(self, client: Client, namespace_id: str, *, as_binding: bool = True) -> None:
        self._client = client
        self.id = namespace_id
        self.as_binding = as_binding

    @contextmanager
    def _reported_as(self, operation: str) -> Iterator[None]:
        """A KVError raised inside, as a Worker's binding reports it for ``operation`` (GET,
        PUT, DELETE, GET_BULK) when this is a binding; the traceback stays the original's."""
        try:
            yield
        except KVError as exc:
            if not self.as_binding:
                raise
            raise binding_error(exc, operation).with_traceback(exc.__traceback__) from None

    def _number(self, method: str, argument: str, value: object) -> int | None:
        """A number argument, in the binding's int32 range when a binding."""
        return (_int32 if self.as_binding else _whole)(method, argument, value)

    def __repr__(self) -> str:
        return f"KVNamespace(id={self.id!r}, central={self._client.central!r})"

    @overload
    async def get(
        self, key: str, type: ValueType = "text", cache_ttl: float | None = None
    ) -> Any: ...

    @overload
    async def get(
        self, key: Sequence[str], type: ValueType = "text", cache_ttl: float | None = None
    ) -> dict[str, Any]: ...

    async def get(
        self, key: str | Sequence[str], type: ValueType = "text", cache_ttl: float | None = None
    ) -> Any:
        """The value (decoded as ``type``), or None when the key does not exist.

        A list of keys reads them all in one call and returns ``{key: value or None}``.
        """
        if not isinstance(key, str):
            results = await self.get_with_metadata(key, type=type, cache_ttl=cache_ttl)
            return {name: None if r is None else r.value for name, r in results.items()}
        result = await self.get_with_metadata(key, type=type, cache_ttl=cache_ttl)
        return result.value

    @overload
    async def get_with_metadata(  # type: ignore[overload-overlap]  # str is a Sequence too
        self, key: str, type: ValueType = "text", cache_ttl: float | None = None
    ) -> ValueWithMetadata: ...

    @overload
    async def get_with_metadata(
        self, key: Sequence[str], type: ValueType = "text", cache_ttl: float | None = None
    ) -> dict[str, ValueWithMetadata | None]: ...

    async def get_with_metadata(
        self, key: str | Sequence[str], type: ValueType = "text", cache_ttl: float | None = None
    ) -> ValueWithMetadata | dict[str, ValueWithMetadata | None]:
        """The value (decoded as ``type``) with its metadata; value and metadata None when
        the key does not exist. A list of keys reads them all in one call (GET_BULK)."""
        keys = _keys_of(key, "get")
        if keys is not None:
            with self._reported_as("GET_BULK"):
                return await self._get_many(keys, type, cache_ttl)
        assert isinstance(key, str)
        with self._reported_as("GET"):
            return await self._get_one(key, type, cache_ttl)

    async def _get_one(self, key: str, value_type: str, cache_ttl: object) -> ValueWithMetadata:
        raw_key = _single_key(key, "get")
        cache_ttl_s = self._number("get", "cache_ttl", cache_ttl)
        validate_cache_ttl(cache_ttl_s)
        edge = self._client.edge_stub
        if edge is not None:
            answer = await self._client.read(
                edge.Get,
                edge_pb2.EdgeGetRequest(namespace_id=self.id, key=raw_key, cache_ttl=cache_ttl_s),
            )
            return _result(answer.entry, value_type, _edge_info(answer.info, answer.entry))
        response = await self._client.read(
            self._client.stub.Get, pb.GetRequest(namespace_id=self.id, key=raw_key)
        )
        return _result(response.entry, value_type, _central_info(response.entry))

    async def _get_many(
        self, keys: list[str], value_type: str, cache_ttl: object
    ) -> dict[str, ValueWithMetadata | None]:
        if value_type not in _BULK_VALUE_TYPES:
            raise error(ErrorKind.GET_MANY_TYPE_INVALID, type=value_type)
        cache_ttl_s = self._number("get", "cache_ttl", cache_ttl)
        validate_cache_ttl(cache_ttl_s)
        # The keys go in a body, which Workers' server reads leniently (edgekv.core.text):
        # the answer is keyed by the keys as read.
        keys = [lenient_key(key) for key in keys]
        raw_keys = [key.encode("utf-8") for key in keys]
        edge = self._client.edge_stub
        if edge is not None:
            answer = await self._client.read(
                edge.GetMany,
                edge_pb2.EdgeGetManyRequest(
                    namespace_id=self.id, keys=raw_keys, cache_ttl=cache_ttl_s
                ),
            )
            entries = [(read.entry, _edge_info(read.info, read.entry)) for read in answer.reads]
        else:
            response = await self._client.read(
                self._client.stub.GetMany, pb.GetManyRequest(namespace_id=self.id, keys=raw_keys)
            )
            entries = [(entry, _central_info(entry)) for entry in response.entries]
        try:
            return {
                key: _result(entry, value_type, info, in_bulk=True) if entry.found else None
                for key, (entry, info) in zip(keys, entries, strict=True)
            }
        except KVError as exc:  # Workers' bulk read refuses the whole read, in its words
            if exc.kind is not ErrorKind.VALUE_NOT_JSON:
                raise
            raise error(ErrorKind.GET_MANY_VALUE_NOT_JSON) from None

    async def put(
        self,
        key: str,
        value: PutValue,
        expiration: float | None = None,
        expiration_ttl: float | None = None,
        metadata: Any = None,
    ) -> WriteResult:
        """Write ``value`` (text as WTF-8) under ``key``; ``expiration`` is absolute Unix
        seconds, ``expiration_ttl`` seconds from now (it wins when both are given)."""
        with self._reported_as("PUT"):
            request = pb.PutRequest(
                namespace_id=self.id,
                key=_single_key(key, "put"),
                # Refused here, in the store's words, rather than sent: an edge's transport
                # takes no message larger than the largest value.
                value=validate_value(await _value_bytes(value)),
                metadata_json=_metadata_json(metadata),
                expiration=self._number("put", "expiration", expiration),
                expiration_ttl=self._number("put", "expiration_ttl", expiration_ttl),
            )
            edge = self._client.edge_stub
            method = self._client.stub.Put if edge is None else edge.Put
            response = await self._client.write(method, request)
        return WriteResult(response.revision, response.commit_time)

    async def delete(self, key: str) -> WriteResult:
        """Delete ``key``; deleting a key that does not exist succeeds, and changes nothing."""
        with self._reported_as("DELETE"):
            request = pb.DeleteRequest(namespace_id=self.id, key=_single_key(key, "delete"))
            edge = self._client.edge_stub
            method = self._client.stub.Delete if edge is None else edge.Delete
            response = await self._client.write(method, request)
        return WriteResult(response.revision, response.commit_time)

    async def list(
        self,
        prefix: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        cache_ttl: float | None = None,
    ) -> ListResult:
        """One page of keys (a Worker's binding reports a list's errors as GET's)."""
        with self._reported_as("GET"):
            return await self._list(prefix, limit, cursor, cache_ttl)

    async def _list(
        self, prefix: object, limit: object, cursor: object, cache_ttl: object
    ) -> ListResult:
        cache_ttl_s = self._number("list", "cache_ttl", cache_ttl)
        validate_cache_ttl(cache_ttl_s)
        page_size = _int32("list", "limit", limit) or 0  # an int32 on the wire too
        if cursor is not None and not isinstance(cursor, str):
            raise _wrong_type("list", "cursor", "a str", cursor)
        if prefix is not None and not isinstance(prefix, str):
            raise _wrong_type("list", "prefix", "a str", prefix)
        # In a query, which Workers' server reads leniently (edgekv.core.text).
        namespace_id, raw_prefix = self.id, lenient_key(prefix or "").encode("utf-8")
        edge = self._client.edge_stub
        cache_status = None
        if edge is not None:
            response = await self._client.read(
                edge.List,
                edge_pb2.EdgeListRequest(
                    namespace_id=namespace_id,
                    prefix=raw_prefix,
                    limit=page_size,
                    cursor=cursor or "",
                    cache_ttl=cache_ttl_s,
                ),
            )
            cache_status = _CACHE_STATUS_NAMES[response.info.cache_status]
        else:
            response = await self._client.read(
                self._client.stub.List,
                pb.ListRequest(
                    namespace_id=namespace_id,
                    prefix=raw_prefix,
                    limit=page_size,
                    cursor=cursor or "",
                ),
            )
        keys = [
            ListedKey(
                name=info.name.decode("utf-8"),
                expiration=info.expiration or None,
                metadata=_parse_metadata(
                    info.metadata_json if info.HasField("metadata_json") else None
                ),
            )
            for info in response.keys
        ]
        return ListResult(keys, response.list_complete, response.cursor or None, cache_status)

    async def list_all(self, prefix: str | None = None) -> AsyncIterator[ListedKey]:
        """Every key with ``prefix``, following cursors to the end."""
        cursor = None
        while True:
            page = await self.list(prefix=prefix, cursor=cursor)
            for key in page.keys:
                yield key
            if page.list_complete:
                return
            cursor = page.cursor

    async def bulk_put(self, entries: Sequence[BulkPutEntry | Mapping[str, Any]]) -> BulkResult:
        """Write up to 10,000 entries in one atomic commit (REST ``PUT /bulk``)."""
        messages = [self._bulk_entry(entry) for entry in entries]
        return await self._bulk_write(
            self._client.stub.BulkPut,
            lambda chosen: pb.BulkPutRequest(namespace_id=self.id, entries=chosen),
            messages,
        )

    async def bulk_delete(self, keys: Sequence[str]) -> BulkResult:
        return await self._bulk_write(
            self._client.stub.BulkDelete,
            lambda chosen: pb.BulkDeleteRequest(namespace_id=self.id, keys=chosen),
            [_encode_key(k, "bulk_delete") for k in keys],
        )

    async def _bulk_write(
        self,
        method: Callable[..., Awaitable[pb.BulkWriteResponse]],
        request_of: Callable[[Sequence[Any]], Any],
        items: Sequence[Any],
    ) -> BulkResult:
        """One bulk write; with ``retry_rate_limited``, the entries refused with 429 again.

        Central answers entry by entry, in order, so the answer to a retry
        takes the place of the refused entries' answers.
        """
        response = await self._client.call(method, request_of(items))
        answers = list(response.results)
        refused = ErrorKind.WRITE_RATE_LIMITED
        failed_attempts = 1
        while True:
            pending = [i for i, answer in enumerate(answers) if answer.error_kind == refused]
            if not pending or not self._client.may_retry_rate_limited(refused, failed_attempts):
                return self._bulk_result(answers)
            reason = f"{_with_status(error(refused))} for {len(pending)} of {len(items)} keys"
            await self._client.wait_out_rate_limit(reason, failed_attempts)
            response = await self._client.call(method, request_of([items[i] for i in pending]))
            for index, answer in zip(pending, response.results, strict=True):
                answers[index] = answer
            failed_attempts += 1

    async def watch(self, start_revision: int = 0, include_values: bool = False) -> WatchStream:
        """Watch this namespace's changes from ``start_revision`` on (0: from now).

        Returns once central has registered the watch, so every write made after
        this call returns is delivered.
        """
        call = self._client.stub.Watch(
            pb.WatchRequest(
                namespace_id=self.id, start_revision=start_revision, include_values=include_values
            ),
            metadata=self._client.call_metadata,
        )
        try:
            registered = await call.read()
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        if registered is grpc.aio.EOF:
            raise error(ErrorKind.UNAVAILABLE, detail="watch stream closed before it started")
        return WatchStream(self.id, call, registered.header.revision)

    @staticmethod
    def _bulk_entry(entry: BulkPutEntry | Mapping[str, Any]) -> pb.BulkPutEntry:
        if isinstance(entry, Mapping):
            entry = BulkPutEntry(
                key=entry["key"],
                value=entry["value"],
                expiration=entry.get("expiration"),
                expiration_ttl=entry.get("expiration_ttl"),
                metadata=entry.get("metadata"),
            )
        value = entry.value
        if isinstance(value, str):
            value = encode_text(value)
        elif not isinstance(value, bytes):
            raise _wrong_type("bulk_put", "value", "str or bytes", value)
        # The REST API's numbers: whole seconds, without the binding's int32 range.
        return pb.BulkPutEntry(
            key=_encode_key(entry.key, "bulk_put"),
            value=value,
            metadata_json=_metadata_json(entry.metadata, "bulk_put"),
            expiration=_whole("bulk_put", "expiration", entry.expiration),
            expiration_ttl=_whole("bulk_put", "expiration_ttl", entry.expiration_ttl),
        )

    @staticmethod
    def _bulk_result(answers: Sequence[pb.BulkResult]) -> BulkResult:
        return BulkResult(
            successful_key_count=sum(1 for answer in answers if answer.ok),
            results=[
                BulkEntryResult(
                    key=result.key.decode("utf-8", "replace"),
                    ok=result.ok,
                    revision=result.revision,
                    error_kind=result.error_kind or None,
                    error_message=result.error_message or None,
                )
                for result in answers
            ],
        )
