"""The edge's calls to the central store: across the link, with deadlines and retries.

Theory of operation: every call goes through the modelled :class:`~edge.link.Link`
and has a deadline. Failures to reach central (UNAVAILABLE, DEADLINE_EXCEEDED,
and the link's own losses and partitions) are retried with tenacity — bounded
attempts, exponential backoff with jitter drawn from the seeded RNG, sleeping on
the injected clock — but a call that is not idempotent (a write) is retried
only when the failure is *definite*, i.e. central surely never saw it, so a
retry cannot apply a write twice. Everything else (validation, NOT_FOUND, 429)
passes through untouched. Counters record every attempt and every failure.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge.link import Link
from edge.stats import EdgeCounters
from edgekv.clock import Clock
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.retry import call_with_retries
from edgekv.rpc import CHANNEL_OPTIONS, error_from_rpc
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc

T = TypeVar("T")

# Reconnect quickly after central comes back: the default backoff grows to 2 min.
RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True, slots=True)
class RetrySettings:
    attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    # Deadline of one attempt, in real seconds (the transport's own time).
    deadline_s: float = 5.0


class Upstream:
    def __init__(
        self,
        central: str,
        link: Link,
        clock: Clock,
        rng: random.Random,
        counters: EdgeCounters,
        retry: RetrySettings,
    ) -> None:
        self.central = central
        self.link = link
        self._clock = clock
        self._rng = rng
        self._counters = counters
        self._retry = retry
        self._channel = grpc.aio.insecure_channel(
            central, options=[*CHANNEL_OPTIONS, *RECONNECT_OPTIONS]
        )
        self.stub = central_pb2_grpc.CentralStoreStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def check_reachable(self, timeout_s: float) -> None:
        """Raise a one-line OSError unless central answers its health check."""
        health = health_pb2_grpc.HealthStub(self._channel)
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise OSError(
                f"cannot reach the central store at {self.central}: {exc.code().name}"
            ) from None
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise OSError(f"the central store at {self.central} is not serving")

    async def read(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """A call that may be repeated freely (reads, lists)."""
        return await self._with_retries(method, request, idempotent=True)

    async def write(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """A call retried only when central surely never saw it."""
        return await self._with_retries(method, request, idempotent=False)

    async def _with_retries(
        self, method: Callable[..., Awaitable[T]], request: Any, idempotent: bool
    ) -> T:
        def may_retry(exc: BaseException) -> bool:
            return isinstance(exc, KVError) and exc.transient and (idempotent or exc.definite)

        return await call_with_retries(
            lambda: self._attempt(method, request),
            attempts=self._retry.attempts,
            initial_backoff_s=self._retry.initial_backoff_s,
            max_backoff_s=self._retry.max_backoff_s,
            rng=self._rng,
            should_retry=may_retry,
            sleep=self._clock.sleep,
        )

    async def _attempt(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        self._counters.upstream_calls += 1

        async def call() -> T:
            try:
                return await method(request, timeout=self._retry.deadline_s)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc) from None

        try:
            return await self.link.carry(call)
        except KVError as exc:
            if exc.transient:
                self._counters.upstream_errors += 1
            raise

    async def watch(
        self, namespace_id: str, start_revision: int, include_values: bool
    ) -> AsyncIterator[pb.WatchResponse]:
        """Central's change stream for one namespace, each message delayed one way."""
        self.link.check_up()
        call = self.stub.Watch(
            pb.WatchRequest(
                namespace_id=namespace_id,
                start_revision=start_revision,
                include_values=include_values,
            )
        )
        try:
            async for response in call:
                self.link.check_up()
                await self.link.deliver_one_way()
                yield response
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        finally:
            call.cancel()
        raise error(ErrorKind.UNAVAILABLE, detail="the watch stream ended")
