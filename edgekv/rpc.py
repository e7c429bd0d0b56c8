"""The boundary where registry errors become gRPC statuses and back.

Theory of operation: a handler raises :class:`~edgekv.core.errors.KVError`
anywhere below it. :class:`ErrorBoundary`, a server interceptor every edgekv
server (and the in-process transport) installs, wraps every method — unary
and streaming, ours and the health service's alike — and turns that error
into the registry's status code, its message and a trailing-metadata entry
``edgekv-error: <KIND>``. It sets them on the context and returns rather than
raising grpc's AbortError: grpc.aio keeps an aborted call's AbortError, and
through its traceback every frame of the handler and the request, in a
reference cycle that only the cyclic garbage collector frees — a refused
110 MiB request held 110 MiB for as long as the collector waited, which on a
quiet server is indefinitely. Anything else a handler raises is a bug: it is
logged once with its traceback and answered as INTERNAL, so a caller never
sees grpc's bare UNKNOWN. On the client side :func:`error_from_rpc` reads
``edgekv-error`` and rebuilds the same exception class, so callers catch one
exception tree whether the error arose locally or on a server. Transport
failures (no ``edgekv-error``) map to UNAVAILABLE or DEADLINE_EXCEEDED, which
are *not definite*: the call may have happened. A connection that failed
because of TLS — a TLS client and a plain server, the wrong CA, a plain client
and a TLS server — is said in those words, not gRPC's (``WRONG_VERSION_NUMBER``,
``Socket closed``).

The request is parsed inside the boundary too. grpc would parse it with the
handler's ``request_deserializer`` before any of our code runs, and answer
UNKNOWN (logging a traceback) for bytes that are not the method's message or
a string field that is not UTF-8; so the boundary registers each method with
no deserializer (grpc hands over the bytes) and parses them itself, turning
``DecodeError`` into MESSAGE_INVALID. The parse is the same call grpc would
have made, moved, so it costs nothing extra.

The boundary also counts every call it answers, by method and status
(:class:`CallCounts`): one integer increment per call on counters made when a
method is first called, read by whoever exports metrics.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, KVError, error, from_kind_name

log = logging.getLogger(__name__)

ERROR_KIND_METADATA_KEY = "edgekv-error"

# grpcio ships no type information; the servicer context is typed loosely.
Context: TypeAlias = Any
Parse: TypeAlias = Callable[[bytes], Any]

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", limits.MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES),
]

# The call metadata that carries an API token: "Bearer TOKEN", as HTTP's header.
AUTHORIZATION_METADATA_KEY = "authorization"

OK = "OK"
# A call the client left (cancelled, or its deadline passed) before it was answered.
CANCELLED = "CANCELLED"


class MethodCounts:
    """The calls of one method by final status; ``ok`` apart, since most calls are OK.

    A call that failed with a registry error is also counted by its kind (so a
    metric can say how many requests the storage failed).
    """

    __slots__ = ("failed", "kinds", "method", "name", "ok")

    def __init__(self, method: str) -> None:
        self.method = method  # /edgekv.v1.CentralStore/Get
        self.name = method.rpartition("/")[2]  # Get
        self.ok = 0
        self.failed: dict[str, int] = {}
        self.kinds: dict[str, int] = {}

    def fail(self, status: str, kind: str | None = None) -> None:
        self.failed[status] = self.failed.get(status, 0) + 1
        if kind is not None:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def by_status(self) -> dict[str, int]:
        return {OK: self.ok, **self.failed} if self.ok else dict(self.failed)


class CallCounts:
    """Every method's :class:`MethodCounts`, made on the method's first call.

    Written by the event loop's thread and read by a metrics server's: readers
    take copies made by C code (``dict(...)``, ``list(...)``), which other
    Python threads cannot interleave with.
    """

    def __init__(self) -> None:
        self._methods: dict[str, MethodCounts] = {}

    def of(self, method: str) -> MethodCounts:
        counts = self._methods.get(method)
        if counts is None:
            counts = self._methods[method] = MethodCounts(method)
        return counts

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Method → status → calls."""
        return {method: counts.by_status() for method, counts in list(self._methods.items())}

    def of_kind(self, kind: str) -> int:
        """The calls that failed with the registry kind ``kind``, all methods together."""
        return sum(dict(counts.kinds).get(kind, 0) for counts in list(self._methods.values()))


def authorization_of(context: Context) -> str | None:
    """The caller's ``authorization`` metadata (``Bearer TOKEN``), or None when it sent none."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA_KEY:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def answer_with(context: Context, exc: KVError) -> None:
    """End the call with ``exc``'s status when the handler returns (no AbortError)."""
    context.set_trailing_metadata(((ERROR_KIND_METADATA_KEY, exc.kind.value),))
    context.set_code(grpc.StatusCode[exc.status])
    context.set_details(exc.message)


def _answer_for(context: Context, counts: MethodCounts, exc: Exception) -> None:
    """Answer the call with ``exc``'s status (INTERNAL for a bug, logged once), counted."""
    if not isinstance(exc, KVError):
        log.exception("%s failed on a bug, answered INTERNAL", counts.method)
        exc = error(ErrorKind.INTERNAL, detail=f"internal error in {counts.method}: {exc!r}")
    counts.fail(exc.status, exc.kind.value)
    answer_with(context, exc)


def _aborted_status(context: Context) -> str:
    """The status a handler aborted with by itself (the health service does), if known."""
    code = getattr(context, "code", None)
    try:
        status = code() if callable(code) else code
    except NotImplementedError:
        status = None
    return status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"


def _parsed(parse: Parse | None, raw: Any, counts: MethodCounts) -> Any:
    """The request message of ``raw`` bytes; MESSAGE_INVALID when they are not one."""
    if parse is None:
        return raw
    try:
        return parse(raw)
    except DecodeError as exc:
        # "Error parsing message with type 'edgekv.v1.GetRequest': Wire format was corrupt";
        # the type's name differs between central's and an edge's Get, the method does not.
        detail = str(exc).rpartition("': ")[2] or type(exc).__name__
        raise error(ErrorKind.MESSAGE_INVALID, method=counts.name, detail=detail) from None


def _unary_unary(
    behaviour: Callable[[Any, Context], Awaitable[Any]], parse: Parse | None, counts: MethodCounts
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def bounded(raw: Any, context: Context) -> Any:
        try:
            response = await behaviour(_parsed(parse, raw, counts), context)
        except grpc.aio.AbortError:
            counts.fail(_aborted_status(context))
            raise
        except asyncio.CancelledError:  # grpc cancels the handler when the client left
            counts.fail(CANCELLED)
            raise
        except Exception as exc:
            _answer_for(context, counts, exc)
            return None  # grpc sends no message once the code is not OK
        counts.ok += 1
        return response

    return bounded


def _unary_stream(
    behaviour: Callable[[Any, Context], AsyncIterator[Any]],
    parse: Parse | None,
    counts: MethodCounts,
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def bounded(raw: Any, context: Context) -> AsyncIterator[Any]:
        ended = False
        try:
            async for response in behaviour(_parsed(parse, raw, counts), context):
                yield response
            ended = True
        except grpc.aio.AbortError:
            ended = True
            counts.fail(_aborted_status(context))
            raise
        except Exception as exc:
            ended = True
            _answer_for(context, counts, exc)
            return
        finally:
            if not ended:  # the client went away mid-stream: the generator was closed
                counts.fail(CANCELLED)
        counts.ok += 1

    return bounded


class ErrorBoundary(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Every method of a server behind one error conversion (see the module docstring)."""

    def __init__(self, counts: CallCounts | None = None) -> None:
        self.counts = counts if counts is not None else CallCounts()
        # Wrapped handlers by method, built on the first call of each method.
        self._bounded: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        bounded = self._bounded.get(method)
        if bounded is None:
            handler = await continuation(details)
            if handler is None:
                return None  # an unknown method: grpc answers UNIMPLEMENTED
            bounded = bound_handler(handler, self.counts.of(method))
            self._bounded[method] = bounded
        return bounded


def bound_handler(handler: grpc.RpcMethodHandler, counts: MethodCounts) -> grpc.RpcMethodHandler:
    """``handler`` with its parsing and behaviour behind the boundary; other shapes
    (streaming requests: only reflection has them) are left as they are."""
    parse = handler.request_deserializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _unary_unary(handler.unary_unary, parse, counts),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _unary_stream(handler.unary_stream, parse, counts),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
    return handler


# OpenSSL's reason in gRPC's words for a failed handshake: "...:OPENSSL_internal:REASON: ...".
_OPENSSL_REASON = re.compile(r"OPENSSL_internal:([A-Z0-9_]+)")
_HANDSHAKE_FAILURES = {
    # The answer to the ClientHello was not TLS.
    "WRONG_VERSION_NUMBER": "the server does not use TLS (it serves plain gRPC)",
    "CERTIFICATE_VERIFY_FAILED": "the server's certificate is not signed by the CA this "
    "client trusts (--tls-ca, EDGEKV_TLS_CA)",
}


def _tls_hint(detail: str) -> str:
    """gRPC's words for a connection that failed, made readable when TLS is why: a TLS
    client and a plain server (or the wrong CA) fail the handshake; a plain client and a
    TLS server see the server close the connection at once."""
    if "handshake failed" in detail:
        found = _OPENSSL_REASON.search(detail)
        reason = found.group(1) if found else "see the server's log"
        why = _HANDSHAKE_FAILURES.get(
            reason,
            "the server may not use TLS, or its certificate is not signed by the CA this "
            "client trusts (--tls-ca, EDGEKV_TLS_CA)",
        )
        return f"the TLS handshake failed ({reason}): {why}"
    if "Hostname Verification" in detail:
        return "its TLS certificate does not name the host this client dialled"
    connecting = "failed to connect" in detail or "connections to all backends failing" in detail
    if connecting and "Socket closed" in detail:
        return (
            "it closed the connection at once; a TLS server does so to a client without "
            f"TLS: give this client the CA with --tls-ca or EDGEKV_TLS_CA ({detail})"
        )
    return detail


def error_from_rpc(exc: grpc.aio.AioRpcError, server: str = "the central store") -> KVError:
    """The KVError a failed call stands for; ``server`` names who was called, for messages."""
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_KIND_METADATA_KEY and isinstance(value, str):
            return from_kind_name(value, exc.details() or "")
    code = exc.code()
    detail = exc.details() or code.name
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return error(
            ErrorKind.DEADLINE_EXCEEDED, detail=f"{server} did not answer in time: {detail}"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return error(ErrorKind.UNAVAILABLE, detail=f"cannot reach {server}: {_tls_hint(detail)}")
    if code == grpc.StatusCode.CANCELLED:
        # Our own cancellations raise CancelledError; this one is the server's: grpc sheds
        # calls once too many wait for its event loop. Worth trying again, not a bug.
        return error(ErrorKind.UNAVAILABLE, detail=f"{server} shed the call: {detail}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than" in detail:
        # grpc's own refusal of a message over a limit: "Received message larger than
        # max" (the server's of a request, or this client's of an answer) or "Sent
        # message larger than max" (this client's own send limit). Not worth retrying:
        # the same message is as large next time.
        return error(ErrorKind.MESSAGE_TOO_LARGE, server=server, detail=detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Any other exhaustion grpc reports (a memory quota) passes: worth trying again.
        return error(ErrorKind.UNAVAILABLE, detail=f"{server} is out of resources: {detail}")
    return error(ErrorKind.INTERNAL, detail=f"{code.name}: {detail}")
