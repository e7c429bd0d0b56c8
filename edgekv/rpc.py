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
are *not definite*: the call may have happened.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, KVError, error, from_kind_name

log = logging.getLogger(__name__)

ERROR_KIND_METADATA_KEY = "edgekv-error"

# grpcio ships no type information; the servicer context is typed loosely.
Context: TypeAlias = Any

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", limits.MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES),
]


def answer_with(context: Context, exc: KVError) -> None:
    """End the call with ``exc``'s status when the handler returns (no AbortError)."""
    context.set_trailing_metadata(((ERROR_KIND_METADATA_KEY, exc.kind.value),))
    context.set_code(grpc.StatusCode[exc.status])
    context.set_details(exc.message)


def _answer_for(context: Context, method: str, exc: Exception) -> None:
    if isinstance(exc, KVError):
        answer_with(context, exc)
        return
    log.exception("%s failed on a bug, answered INTERNAL", method)
    answer_with(context, error(ErrorKind.INTERNAL, detail=f"internal error in {method}: {exc!r}"))


def _unary_unary(
    method: str, behaviour: Callable[[Any, Context], Awaitable[Any]]
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def bounded(request: Any, context: Context) -> Any:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            _answer_for(context, method, exc)
            return None  # grpc sends no message once the code is not OK

    return bounded


def _unary_stream(
    method: str, behaviour: Callable[[Any, Context], AsyncIterator[Any]]
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def bounded(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            _answer_for(context, method, exc)

    return bounded


class ErrorBoundary(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Every method of a server behind one error conversion (see the module docstring)."""

    def __init__(self) -> None:
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
            bounded = self._bounded[method] = bound_handler(method, handler)
        return bounded


def bound_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour behind the boundary; other shapes are left as they are."""
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _unary_unary(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _unary_stream(method, handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


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
        return error(ErrorKind.UNAVAILABLE, detail=f"cannot reach {server}: {detail}")
    return error(ErrorKind.INTERNAL, detail=f"{code.name}: {detail}")
