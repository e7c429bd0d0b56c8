"""The boundary where registry errors become gRPC statuses and back.

Theory of operation: a server handler raises :class:`~edgekv.core.errors.KVError`;
:func:`abort_with` turns it into the registry's status code, its message and a
trailing-metadata entry ``edgekv-error: <KIND>``. On the client side
:func:`error_from_rpc` reads that entry and rebuilds the same exception class,
so callers catch one exception tree whether the error arose locally or on a
server. Transport failures (no ``edgekv-error``) map to UNAVAILABLE or
DEADLINE_EXCEEDED, which are *not definite*: the call may have happened.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, KVError, error, from_kind_name

ERROR_KIND_METADATA_KEY = "edgekv-error"

# grpcio ships no type information; the servicer context is typed loosely.
Context: TypeAlias = Any
Request = TypeVar("Request")
Response = TypeVar("Response")

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", limits.MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES),
]


async def abort_with(context: grpc.aio.ServicerContext[object, object], exc: KVError) -> NoReturn:
    context.set_trailing_metadata(((ERROR_KIND_METADATA_KEY, exc.kind.value),))
    await context.abort(grpc.StatusCode[exc.status], exc.message)
    raise AssertionError("context.abort returns only by raising")


def handled(
    handler: Callable[[Any, Request, Context], Awaitable[Response]],
) -> Callable[[Any, Request, Context], Awaitable[Response]]:
    """Decorate a unary servicer method: a KVError it raises becomes its gRPC status."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Request, context: Context) -> Response:
        try:
            return await handler(self, request, context)
        except KVError as exc:
            await abort_with(context, exc)

    return wrapper


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
