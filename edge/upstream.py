"""The edge's calls to the central store: typed, across the link, with deadlines and retries.

Theory of operation: :class:`Upstream` is the only part of the edge that
calls central (the messages themselves are built and read in :mod:`edgekv.wire`).
Its methods take and return core values
(:mod:`edgekv.core`): ``get``/``get_many``/``list`` return copies stamped
with central's answer time and revision, ``put``/``delete`` return what was
committed, ``watch`` yields batches of changes. Every call goes through the
modelled :class:`~edge.link.Link` and has a deadline. Failures to reach
central (UNAVAILABLE, DEADLINE_EXCEEDED, and the link's own losses and
partitions) are retried with tenacity — bounded attempts, exponential backoff
with jitter drawn from the seeded RNG, sleeping on the injected clock — but a
write is retried only when the failure is *definite*, i.e. central surely
never saw it, so a retry cannot apply a write twice. Everything else
(validation, NOT_FOUND, 429) passes through untouched. Counters record every
attempt, every failure and the value bytes that crossed.

The channel is given, not made here: a ``grpc.aio`` channel to central in a
server (:func:`central_channel`: one address or several replicas, spread and
failed over by gRPC's round_robin — a read that failed UNAVAILABLE because its
replica died is retried, and lands on another), or an
:class:`~edgekv.inprocess.InProcessChannel` to a central service in the same
process (unit tests, simulation).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge.access import CALLER_AUTHORIZATION
from edge.link import Link
from edgekv.channels import open_channel
from edgekv.clock import Clock
from edgekv.control import EdgeCounters
from edgekv.core.cache import CachedPage, CachedValue, PageSlot
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.model import Committed, Delete, Put, WatchBatch
from edgekv.inflight import DEFAULT_MAX_IN_FLIGHT, BoundedChannel
from edgekv.retry import RetrySchedule, call_with_retries
from edgekv.rpc import AUTHORIZATION_METADATA_KEY, error_from_rpc
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc
from edgekv.wire import (
    committed_from_pb,
    delete_request,
    get_many_request,
    get_request,
    list_request,
    page_copy,
    put_request,
    value_copy,
    watch_batch,
    watch_request,
)

T = TypeVar("T")


def central_channel(address: str, tls_ca: str | None = None) -> Any:
    """A ``grpc.aio`` channel to central at ``address`` — one address, or replicas
    (``A,B`` or ``dns:///NAME:PORT``) spread and failed over (:mod:`edgekv.channels`)."""
    return open_channel(address, tls_ca=tls_ca)


async def check_reachable(channel: Any, central: str, timeout_s: float) -> None:
    """Raise a one-line OSError unless central answers its health check over ``channel``."""
    health = health_pb2_grpc.HealthStub(channel)
    try:
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        reason = error_from_rpc(exc, f"the central store at {central}").message
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            reason = f"cannot reach the central store at {central}: {exc.code().name}"
        raise OSError(reason) from None
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise OSError(f"the central store at {central} is not serving")


@dataclass(frozen=True, slots=True)
class RetrySettings(RetrySchedule):
    """The edge's retries of calls to central, and how long one attempt may take."""

    # The longest one attempt may take, in real seconds (the transport's own time);
    # a caller's deadline may leave it less.
    attempt_timeout_s: float = 5.0


class Upstream:
    def __init__(
        self,
        channel: Any,
        link: Link,
        clock: Clock,
        rng: random.Random,
        counters: EdgeCounters,
        retry: RetrySettings,
        central: str = "the central store",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        authorization: str | None = None,
    ) -> None:
        self.central = central
        # The edge's own ``authorization`` (its token), for calls made for no caller.
        self._own_authorization = authorization
        self.link = link
        self._channel = channel
        # A burst of reads at the edge must not become a burst central cancels.
        self._stub = central_pb2_grpc.CentralStoreStub(BoundedChannel(channel, max_in_flight))
        self._clock = clock
        self._rng = rng
        self._counters = counters
        self._retry = retry

    async def close(self) -> None:
        await self._channel.close()

    # -- reads: repeated freely ---------------------------------------------------------

    async def get(self, namespace_id: str, key: str, deadline: float | None = None) -> CachedValue:
        request = get_request(namespace_id, key)
        response = await self._call(self._stub.Get, request, retry_all=True, deadline=deadline)
        self._counters.upstream_bytes += len(response.entry.value)
        return value_copy(namespace_id, key, response.entry, response.header)

    async def get_many(
        self, namespace_id: str, keys: list[str], deadline: float | None = None
    ) -> list[CachedValue]:
        request = get_many_request(namespace_id, keys)
        response = await self._call(self._stub.GetMany, request, retry_all=True, deadline=deadline)
        self._counters.upstream_bytes += sum(len(entry.value) for entry in response.entries)
        return [
            value_copy(namespace_id, key, entry, response.header)
            for key, entry in zip(keys, response.entries, strict=True)
        ]

    async def list(self, slot: PageSlot, deadline: float | None = None) -> CachedPage:
        request = list_request(slot)
        response = await self._call(self._stub.List, request, retry_all=True, deadline=deadline)
        return page_copy(slot, response)

    async def authorize(
        self, namespace_id: str, write: bool, authorization: str, deadline: float | None
    ) -> None:
        """Whether ``authorization`` may read (or write) the namespace: central's refusal
        is raised; a read, so repeated on transient failures."""
        request = pb.AuthorizeRequest(namespace_id=namespace_id, write=write)
        token = CALLER_AUTHORIZATION.set(authorization)
        try:
            await self._call(self._stub.Authorize, request, retry_all=True, deadline=deadline)
        finally:
            CALLER_AUTHORIZATION.reset(token)

    def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The caller's token (see edge.access), else the edge's own, else none."""
        authorization = CALLER_AUTHORIZATION.get() or self._own_authorization
        return None if authorization is None else ((AUTHORIZATION_METADATA_KEY, authorization),)

    # -- writes: retried only when central surely never saw them --------------------------

    async def put(self, write: Put, deadline: float | None = None) -> Committed:
        request = put_request(write)
        response = await self._call(self._stub.Put, request, retry_all=False, deadline=deadline)
        return committed_from_pb(response)

    async def delete(self, write: Delete, deadline: float | None = None) -> Committed:
        request = delete_request(write)
        response = await self._call(self._stub.Delete, request, retry_all=False, deadline=deadline)
        return committed_from_pb(response)

    # -- the attempts ---------------------------------------------------------------------

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        retry_all: bool,
        deadline: float | None,
    ) -> T:
        """``retry_all``: a read, repeated on any transient failure; else a write, repeated
        only when it surely never reached central. Attempts stop at ``deadline``."""

        def may_retry(exc: BaseException) -> bool:
            if not (isinstance(exc, KVError) and exc.transient):
                return False
            return (retry_all or exc.definite) and _left_s(deadline) > 0

        async def wait(backoff_s: float) -> None:
            await self._clock.sleep(self._within(backoff_s, deadline))

        return await call_with_retries(
            lambda: self._attempt(method, request, deadline),
            self._retry,
            rng=self._rng,
            should_retry=may_retry,
            sleep=wait,
        )

    def _within(self, backoff_s: float, deadline: float | None) -> float:
        """``backoff_s`` of simulated time, cut short where it would pass ``deadline``."""
        real_s = self._clock.real_seconds(backoff_s)
        left_s = _left_s(deadline)
        if real_s <= left_s:
            return backoff_s
        return backoff_s * max(0.0, left_s) / real_s

    async def _attempt(
        self, method: Callable[..., Awaitable[T]], request: Any, deadline: float | None
    ) -> T:
        if _left_s(deadline) <= 0:
            raise error(
                ErrorKind.UNAVAILABLE_NOT_APPLIED,
                detail=f"no time was left of the caller's deadline to call {self.central}",
            )
        self._counters.upstream_calls += 1
        sent = False

        async def call() -> T:
            nonlocal sent
            sent = True
            # Timed here, after the link's way out, which the budget paid for too.
            timeout_s = max(0.0, min(self._retry.attempt_timeout_s, _left_s(deadline)))
            try:
                return await method(request, timeout=timeout_s, metadata=self._metadata())
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc) from None

        try:
            # The whole attempt, the link's delays included, ends at the deadline.
            async with asyncio.timeout_at(deadline):
                return await self.link.carry(call)
        except TimeoutError:
            self._counters.upstream_errors += 1
            raise _out_of_time(self.central, sent) from None
        except KVError as exc:
            if exc.transient:
                self._counters.upstream_errors += 1
            raise

    # -- the change stream ------------------------------------------------------------------

    async def watch(
        self, namespace_id: str, start_revision: int, include_values: bool
    ) -> AsyncIterator[WatchBatch]:
        """Central's change stream for one namespace, each message delayed one way."""
        self.link.check_up()
        metadata = (
            None
            if self._own_authorization is None
            else ((AUTHORIZATION_METADATA_KEY, self._own_authorization),)
        )
        call = self._stub.Watch(
            watch_request(namespace_id, start_revision, include_values), metadata=metadata
        )
        try:
            async for response in call:
                self.link.check_up()
                await self.link.deliver_one_way()
                yield watch_batch(namespace_id, response)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        finally:
            call.cancel()
        raise error(ErrorKind.UNAVAILABLE, detail="the watch stream ended")


def _out_of_time(central: str, sent: bool) -> KVError:
    """The caller's deadline came during an attempt; before its call was sent, or after."""
    if not sent:
        return error(
            ErrorKind.UNAVAILABLE_NOT_APPLIED,
            detail=f"the caller's deadline came before the call reached {central}",
        )
    return error(
        ErrorKind.DEADLINE_EXCEEDED,
        detail=f"the caller's deadline came before {central} answered",
    )


def _left_s(deadline: float | None) -> float:
    """Real seconds until ``deadline`` (event-loop time); infinite without one."""
    if deadline is None:
        return float("inf")
    return deadline - asyncio.get_running_loop().time()
