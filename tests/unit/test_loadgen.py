"""The load generator: its schedule, its validity rules, and coordinated omission.

The stall test runs a real gRPC server in this process whose handler stops
answering for a while: an open loop must charge the stall to every call that
was due during it (the stall shows in the tail), where a closed loop of one
caller sees it once.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import grpc
import pytest

from edgekv.bench.loadgen import LoadResult, LoadSettings, closed_loop, open_loop, schedule

METHOD = "/bench.Stall/Call"


def test_constant_schedule_is_evenly_spaced_and_exact() -> None:
    offsets = schedule(100, 2.0, "constant", seed=1)
    assert len(offsets) == 200
    assert offsets[:3] == pytest.approx([0.0, 0.01, 0.02])


def test_poisson_schedule_is_seeded_sorted_exact_in_count_and_memoryless() -> None:
    offsets = schedule(500, 20.0, "poisson", seed=3)
    assert offsets == schedule(500, 20.0, "poisson", seed=3)
    assert offsets != schedule(500, 20.0, "poisson", seed=4)
    assert len(offsets) == 10_000 and offsets == sorted(offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1 / 500, rel=0.03)
    # Exponential gaps: the standard deviation equals the mean (a constant rate has 0).
    deviation = (sum((gap - mean) ** 2 for gap in gaps) / len(gaps)) ** 0.5
    assert deviation == pytest.approx(mean, rel=0.05)
    with pytest.raises(ValueError, match="positive"):
        schedule(0, 1.0, "poisson", seed=1)


def test_a_run_is_invalid_when_the_generator_drops_or_falls_behind() -> None:
    settings = LoadSettings(rate_per_s=100, duration_s=10)
    kept_up = LoadResult(settings, planned=1000, sent=1000, completed=1000, late=5)
    assert kept_up.valid
    dropped = LoadResult(settings, planned=1000, sent=990, dropped=10)
    assert any("dropped" in problem for problem in dropped.problems())
    late = LoadResult(settings, planned=1000, sent=1000, late=20)
    assert any("late" in problem for problem in late.problems())
    slow = LoadResult(settings, planned=1000, sent=1000, send_span_s=10.5)
    assert any("achieved" in problem for problem in slow.problems())


class StallingServer:
    """A gRPC server whose answers wait while ``stalled`` is set."""

    def __init__(self) -> None:
        self.resume = asyncio.Event()
        self.resume.set()
        self.server = grpc.aio.server()

        async def handle(request: bytes, context: object) -> bytes:
            await self.resume.wait()
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Stall",
            {"Call": grpc.unary_unary_rpc_method_handler(handle, None, None)},
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def stall_between(self, start_s: float, end_s: float) -> None:
        await asyncio.sleep(start_s)
        self.resume.clear()
        await asyncio.sleep(end_s - start_s)
        self.resume.set()


@pytest.mark.slow
async def test_a_server_stall_shows_in_the_open_loop_tail_not_the_closed_loop() -> None:
    stalling = StallingServer()
    await stalling.server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{stalling.port}") as channel:
            method = channel.unary_unary(
                METHOD, request_serializer=None, response_deserializer=None
            )

            async def call(index: int) -> object:
                return await method(b"", timeout=10)

            await call(-1)
            # Generous lateness: this test is about the stall, not the generator's precision.
            settings = LoadSettings(rate_per_s=200, duration_s=2.0, arrival="constant", late_ms=20)
            began = time.monotonic()
            stall = asyncio.create_task(stalling.stall_between(1.0, 1.5))
            opened = await open_loop(call, settings, start_at=began)
            await stall

            stall = asyncio.create_task(stalling.stall_between(1.0, 1.5))
            closed = await closed_loop(call, callers=1, duration_s=2.0)
            await stall
    finally:
        await stalling.server.stop(None)

    # Whether the generator kept its schedule to the millisecond depends on how busy the
    # machine is (the validity rules have tests of their own); what matters here is that
    # every call was sent, none dropped, and the stall shows where it should.
    assert opened.dropped == opened.errors == 0, opened.problems()
    assert opened.sent == opened.completed == 400
    # A quarter of the calls were due during the 500 ms stall; each waited for its end, so
    # latencies from the intended start spread evenly from ~0 to 500 ms over that quarter.
    ms = lambda p: opened.latency.get_value_at_percentile(p) / 1000  # noqa: E731
    assert ms(50) < 20, "most calls were untouched by the stall"
    assert 100 <= ms(90) <= 500, "the 90th percentile falls inside the 500 ms stall"
    assert ms(99) >= 400 and ms(100) >= 450, "the tail is the stall itself"
    # The closed loop sent nothing while its one call hung: the stall is one sample.
    closed_slow = closed.latency.get_total_count() - closed.latency.get_count_at_value(1)
    assert closed.latency.get_value_at_percentile(99) / 1000 < 100
    assert closed_slow > 0
