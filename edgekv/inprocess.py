"""A gRPC transport without sockets: the real services, called in the same process.

Theory of operation: :class:`InProcessServer` stands where a ``grpc.aio``
server stands. The generated ``add_*Servicer_to_server`` functions register
their method handlers on it exactly as on a real server, and it runs every
call through the same interceptors (the :class:`~edgekv.rpc.ErrorBoundary`
above all). :meth:`InProcessServer.channel` gives a channel that the
generated stubs accept in place of a ``grpc.aio`` channel. A call crosses it
the way it crosses the wire: the request is serialised by the stub's
serializer and parsed by the handler's deserializer, the response the same
way back, so a message the wire would refuse (too large, not parseable) is
refused here too; a call its handler ended with an error status (by
aborting, or by setting the code as the error boundary does) arrives as a
``grpc.aio.AioRpcError`` carrying the status, details and trailing metadata
the handler set, so :func:`edgekv.rpc.error_from_rpc` rebuilds the same
``KVError``. A deadline is a wait on the running event loop's clock, and the
handler reads what is left of it from its context's ``time_remaining()``, as
from grpc's.

Nothing here sleeps, reads the host's clock or draws random numbers: it is
the transport of the unit tests that drive an edge and central with a manual
clock, and of a simulation that runs the nodes on virtual time.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc

from edgekv.core import limits
from edgekv.rpc import ErrorBoundary

Metadata = tuple[tuple[str, str | bytes], ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _CallDetails:
    """What an interceptor learns of a call (``grpc.HandlerCallDetails``)."""

    method: str
    invocation_metadata: Metadata


@dataclass
class InProcessContext:
    """The servicer context of one in-process call: what our handlers use of one."""

    metadata: Metadata
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    trailing: Metadata = ()
    # When the caller stops waiting, on the event loop's clock (None: no deadline).
    deadline: float | None = None

    def invocation_metadata(self) -> Metadata:
        return self.metadata

    def time_remaining(self) -> float | None:
        """Seconds until the caller's deadline (None when it set none), as grpc's context."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def set_trailing_metadata(self, metadata: Iterable[tuple[str, str | bytes]]) -> None:
        self.trailing = tuple(metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    @property
    def failed(self) -> bool:
        """The handler ended the call with a status other than OK (without raising)."""
        return self.code is not grpc.StatusCode.OK

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing: Metadata = ()
    ) -> None:
        self.code, self.details = code, details
        if trailing:
            self.trailing = trailing
        raise grpc.aio.AbortError(details)

    def rpc_error(self) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(
            self.code,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*self.trailing),
            self.details,
        )


class InProcessServer:
    """Method handlers registered as on a grpc server, reachable through :meth:`channel`."""

    def __init__(
        self,
        interceptors: Sequence[Any] | None = None,
        max_receive_bytes: int = limits.MAX_MESSAGE_BYTES,
    ) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._given_interceptors = interceptors
        self._interceptors = self._fresh_interceptors()
        # Each method's handler as the interceptors left it: ours decide by the method
        # alone (the error boundary wraps each method once), so it is found once.
        self._intercepted: dict[str, grpc.RpcMethodHandler] = {}
        # The largest request taken, as a grpc server's receive limit (an edge's is smaller).
        self.max_receive_bytes = max_receive_bytes
        # Down (see stop): calls are refused as a closed port refuses them.
        self.serving = True
        self._calls_in_flight = 0
        self._idle = asyncio.Event()
        self._streams: set[InProcessStream] = set()

    def _fresh_interceptors(self) -> list[Any]:
        given = self._given_interceptors
        return list(given) if given is not None else [ErrorBoundary()]

    # -- a node going down and coming back (the simulation's restarts) --------------------

    def stop(self) -> None:
        """Go down: new calls fail UNAVAILABLE at once, open streams end UNAVAILABLE; calls
        already running go on (see :meth:`wait_idle`), as a gRPC server's graceful stop."""
        self.serving = False
        for stream in list(self._streams):
            stream.end(_unavailable("the server went away"))

    async def wait_idle(self) -> None:
        """Wait until no unary call is running."""
        while self._calls_in_flight:
            self._idle.clear()
            await self._idle.wait()

    def restart(self, register: Callable[[InProcessServer], None]) -> None:
        """Serve again with fresh handlers: ``register`` adds the new services.

        Only with the default interceptors, which are made anew: interceptors
        given by the caller may keep the old services' handlers (the error
        boundary does, per method)."""
        if self._given_interceptors is not None:
            raise ValueError("a server with its own interceptors cannot be restarted")
        self._handlers.clear()
        self._intercepted.clear()
        self._interceptors = self._fresh_interceptors()
        register(self)
        self.serving = True

    def check_serving(self) -> None:
        if not self.serving:
            raise _unavailable("failed to connect to all addresses; Connection refused")

    def call_started(self) -> None:
        self._calls_in_flight += 1

    def call_ended(self) -> None:
        self._calls_in_flight -= 1
        if not self._calls_in_flight:
            self._idle.set()

    def stream_opened(self, stream: InProcessStream) -> None:
        self._streams.add(stream)

    def stream_closed(self, stream: InProcessStream) -> None:
        self._streams.discard(stream)

    # -- what the generated add_*Servicer_to_server functions call ---------------------

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        """Registered method handlers (below) carry the same methods; nothing to keep."""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        for name, handler in handlers.items():
            self._handlers[f"/{service}/{name}"] = handler

    # -- what a channel calls --------------------------------------------------------------

    def channel(self) -> InProcessChannel:
        return InProcessChannel(self)

    async def handler_for(self, method: str, metadata: Metadata) -> grpc.RpcMethodHandler:
        """The handler of a call, through every interceptor, as a grpc.aio server finds it
        (the first call of each method; later ones find it kept)."""
        found = self._intercepted.get(method)
        if found is None:
            found = await self._intercept(_CallDetails(method, metadata))
            self._intercepted[method] = found
        return found

    async def _intercept(self, details: _CallDetails) -> grpc.RpcMethodHandler:
        async def lookup(call: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            return self._handlers.get(call.method)

        continuation = lookup
        for interceptor in reversed(self._interceptors):
            continuation = _chained(interceptor, continuation)
        handler = await continuation(details)
        if handler is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNIMPLEMENTED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                f"Method not found: {details.method}",
            )
        return handler


def _chained(interceptor: Any, continuation: Callable[..., Any]) -> Callable[..., Any]:
    async def call(details: Any) -> Any:
        return await interceptor.intercept_service(continuation, details)

    return call


def _unavailable(details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details
    )


def _check_size(payload: bytes, method: str, limit: int = limits.MAX_MESSAGE_BYTES) -> None:
    """Refuse what grpc's message limits refuse (the same limits every edgekv channel
    sets), in grpc's words."""
    if len(payload) > limit:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            f"{method}: Received message larger than max ({len(payload)} vs. {limit})",
        )


def _request(handler: grpc.RpcMethodHandler, payload: bytes) -> Any:
    """What the handler takes: its parse of ``payload``, or the bytes themselves when it
    has none (the error boundary's handlers parse inside the boundary, as on a server)."""
    parse = handler.request_deserializer
    return payload if parse is None else parse(payload)


def _serializers(options: dict[str, Any]) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """The request serializer and response deserializer a generated stub passes."""
    return options["request_serializer"], options["response_deserializer"]


class InProcessChannel:
    """What the generated stubs need of a channel; calls go to an :class:`InProcessServer`.

    ``unary_unary`` and ``unary_stream`` take what a ``grpc.aio`` channel's
    methods of those names take, and return a callable for the stub.
    """

    def __init__(self, server: InProcessServer) -> None:
        self._server = server

    def unary_unary(self, method: str, **options: Any) -> _UnaryUnary:
        return _UnaryUnary(self._server, method, *_serializers(options))

    def unary_stream(self, method: str, **options: Any) -> _UnaryStream:
        return _UnaryStream(self._server, method, *_serializers(options))

    async def close(self) -> None:
        """Nothing to release: there is no socket."""


@dataclass(frozen=True, slots=True)
class _Method:
    server: InProcessServer
    method: str
    serialize: Callable[[Any], bytes]
    deserialize: Callable[[bytes], Any]

    def context(self, metadata: Metadata | None, timeout_s: float | None) -> InProcessContext:
        deadline = None
        if timeout_s is not None:
            deadline = asyncio.get_running_loop().time() + timeout_s
        return InProcessContext(tuple(metadata or ()), deadline=deadline)

    async def handler(self, context: InProcessContext) -> grpc.RpcMethodHandler:
        return await self.server.handler_for(self.method, context.metadata)

    def request_bytes(self, request: Any) -> bytes:
        payload = self.serialize(request)
        _check_size(payload, self.method, self.server.max_receive_bytes)
        return payload


class _UnaryUnary(_Method):
    async def __call__(  # grpc's stubs take ``timeout=``, so this one does too
        self,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> Any:
        server = self.server
        server.check_serving()
        context = self.context(metadata, timeout)
        payload = self.request_bytes(request)
        handler = await self.handler(context)
        call = handler.unary_unary(_request(handler, payload), context)
        server.call_started()
        try:
            response = await _within(call, timeout)
        except grpc.aio.AbortError:
            raise context.rpc_error() from None
        except TimeoutError:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "Deadline Exceeded",
            ) from None
        finally:
            server.call_ended()
        if context.failed:
            raise context.rpc_error()
        answer = handler.response_serializer(response)
        _check_size(answer, self.method)
        return self.deserialize(answer)


async def _within(call: Coroutine[Any, Any, T], timeout_s: float | None) -> T:
    """``await call``, cut off after ``timeout_s`` (TimeoutError), in the caller's task.

    The handler runs at once as far as its first wait, and most calls never
    wait (a cache HIT): they finish without a timer. One that does wait goes
    on under an ``asyncio.timeout`` scope — not ``wait_for``, whose task per
    call a simulation of millions of calls would pay for.
    """
    if timeout_s is not None and timeout_s <= 0:  # as grpc's: no time left, not even begun
        call.close()
        raise TimeoutError
    try:
        waiting_on = call.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    async with asyncio.timeout(timeout_s):  # None: no deadline
        return cast(T, await _resumed(call, waiting_on))


@types.coroutine
def _resumed(call: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """The rest of ``call``, which waits on ``waiting_on``: what ``await`` would have done
    had it started the call — every wake-up sent on, every cancellation thrown in."""
    finished = False
    try:
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # thrown in by the task: pass it on
                try:
                    waiting_on = call.throw(exc)
                except StopIteration as done:
                    finished = True
                    return done.value
                continue
            try:
                waiting_on = call.send(sent)
            except StopIteration as done:
                finished = True
                return done.value
    finally:
        if not finished:
            call.close()


class _UnaryStream(_Method):
    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> InProcessStream:
        return InProcessStream(self, self.context(metadata, timeout), self.request_bytes(request))


class InProcessStream:
    """A server-streaming call: iterate it, or ``await read()`` until ``grpc.aio.EOF``.

    The handler runs in a task of its own that hands each response over a
    one-slot queue, so it waits for the reader as a flow-controlled stream
    does; :meth:`cancel` cancels that task, which ends the handler where it
    waits (its ``finally`` blocks run), as a cancelled RPC does.
    """

    def __init__(self, method: _Method, context: InProcessContext, payload: bytes) -> None:
        self._method = method
        self._context = context
        self._payload = payload
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=1)
        self._pump: asyncio.Task[None] | None = None

    async def _run_handler(self) -> None:
        try:
            # As grpc's: making the call never fails; reading it does, if the server is down.
            self._method.server.check_serving()
            handler = await self._method.handler(self._context)
            request = _request(handler, self._payload)
            async for response in handler.unary_stream(request, self._context):
                await self._queue.put(handler.response_serializer(response))
        except grpc.aio.AbortError:
            await self._queue.put(self._context.rpc_error())
        except grpc.aio.AioRpcError as exc:
            await self._queue.put(exc)
        else:
            await self._queue.put(self._context.rpc_error() if self._context.failed else None)

    async def read(self) -> Any:
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run_handler())
            self._method.server.stream_opened(self)
            self._pump.add_done_callback(lambda _: self._method.server.stream_closed(self))
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # every later read sees the end too
            return grpc.aio.EOF
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # every later read fails alike, as grpc's does
            raise item
        return self._method.deserialize(item)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (response := await self.read()) is not grpc.aio.EOF:
            yield response

    def cancel(self) -> bool:
        if self._pump is None or self._pump.done():
            return False
        self._pump.cancel()
        return True

    def end(self, failure: grpc.aio.AioRpcError) -> None:
        """End the stream from the server's side: the handler is cancelled, and the
        reader's next read (after what it was handed already) fails with ``failure``."""
        self.cancel()
        while not self._queue.empty():  # what the pump had put but the reader not taken
            self._queue.get_nowait()
        self._queue.put_nowait(failure)
