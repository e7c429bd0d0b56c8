"""A bound on the calls one channel has in flight: the rest wait their turn.

Theory of operation: a ``grpc.aio`` server takes calls from gRPC's core one
at a time, on its event loop (``_server_main_loop`` in grpcio's
``aio/server.pyx.pxi``: request a call, await it, start a task for it, repeat).
Calls that arrive faster wait in the core's queue of calls not yet taken, and
the core guards that queue by *random early detection*
(``Server::pending_backlog_protector_``, channel arguments
``grpc.server.max_pending_requests`` = 1,000 and
``grpc.server.max_pending_requests_hard_limit`` = 3,000): with more than
1,000 waiting, each new call is cancelled with probability
(waiting - 1,000) / 2,000, and every call above 3,000. The caller sees
CANCELLED. Nothing else refuses a burst: the server sets no
``maximum_concurrent_rpcs``, HTTP/2 advertises no MAX_CONCURRENT_STREAMS, and
the client cancels nothing itself. So 1,500 calls started at once on one
channel lose a few, 3,000 about a fifth — to a server that does nothing.

A caller must therefore not start more calls than a server takes in at once.
:class:`BoundedChannel` wraps a channel (``grpc.aio`` or in-process) so that
at most ``limit`` unary calls are in flight on it; a call beyond that waits
for a slot (an ``asyncio.Semaphore``), first come first served, and its
deadline counts from when it was made, queueing included. Streams (a watch
lasts as long as the edge) pass through unbounded. ``edgekv.Client`` and the
edge's upstream both make their stubs on one, so neither fails a user's call
because of its own concurrency.

The default bound was measured (``edgekv bench burst``, figures in
``benchmarks/README.md``). A burst that keeps the server's CPU busy (puts at
central, MISSes through a near edge) reaches its best throughput from about
64 calls in flight; one that waits on a round trip (MISSes through an edge
83 ms from central) goes at most B calls per round trip (Little's law), and
reaches its best — the CPU's — only from about 256. So 256: and four clients
bursting one server at once still stay under the 1,000 calls it queues
without refusing any.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

# Measured (benchmarks/README.md, "Bursts"): the least that gives every workload its
# best throughput; see the module docstring.
DEFAULT_MAX_IN_FLIGHT = 256


def _deadline_exceeded(waited_s: float) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        f"Deadline Exceeded after {waited_s:.3f} s waiting for one of this channel's call slots",
    )


class _BoundedUnaryUnary:
    """One method's calls, each holding one of the channel's slots while in flight."""

    def __init__(self, call: Any, slots: asyncio.Semaphore) -> None:
        self._call = call
        self._slots = slots

    async def __call__(  # grpc's stubs take ``timeout=``, so this one does too
        self,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        **options: Any,
    ) -> Any:
        if self._slots.locked():
            timeout = await self._wait_for_slot(timeout)
        else:
            await self._slots.acquire()  # a free slot: returns at once, without a wait
        try:
            return await self._call(request, timeout=timeout, **options)
        finally:
            self._slots.release()

    async def _wait_for_slot(self, timeout_s: float | None) -> float | None:
        """Wait for a slot; return what is left of ``timeout_s`` for the call itself."""
        if timeout_s is None:
            await self._slots.acquire()
            return None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout_s)
        except TimeoutError:
            raise _deadline_exceeded(loop.time() - started) from None
        return max(0.0, timeout_s - (loop.time() - started))


class BoundedChannel:
    """``channel`` with at most ``limit`` unary calls in flight; see the module docstring.

    The generated stubs accept it as they accept the channel it wraps; every
    other attribute (``unary_stream``, ``close``, ...) is the wrapped channel's.
    """

    def __init__(self, channel: Any, limit: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if limit < 1:
            raise ValueError(f"a channel needs at least one call in flight, got {limit}")
        self.channel = channel
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    def unary_unary(self, method: str, **options: Any) -> _BoundedUnaryUnary:
        return _BoundedUnaryUnary(self.channel.unary_unary(method, **options), self._slots)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)
