"""In-process calls keep gRPC's deadlines: on virtual time, to the exact second."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from edgekv.inprocess import InProcessServer
from edgekv.sim.loop import run_virtual
from edgekv.v1 import edge_pb2, edge_pb2_grpc


class SlowControl(edge_pb2_grpc.EdgeControlServicer):
    """GetStats answers at once; GetLink waits an hour, noting when it was ended."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def GetStats(self, request: Any, context: Any) -> edge_pb2.EdgeStats:
        return edge_pb2.EdgeStats(hits=7)

    async def GetLink(self, request: Any, context: Any) -> edge_pb2.LinkSettings:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        return edge_pb2.LinkSettings(rtt_ms=1.0)


def control() -> tuple[SlowControl, edge_pb2_grpc.EdgeControlStub]:
    servicer = SlowControl()
    server = InProcessServer()
    edge_pb2_grpc.add_EdgeControlServicer_to_server(servicer, server)
    return servicer, edge_pb2_grpc.EdgeControlStub(server.channel())


def test_a_call_past_its_deadline_ends_at_the_deadline_and_its_handler_is_cancelled() -> None:
    async def main() -> tuple[grpc.StatusCode, float, list[str]]:
        servicer, stub = control()
        loop = asyncio.get_running_loop()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetLink(edge_pb2.GetLinkRequest(), timeout=30)
        return refused.value.code(), loop.time(), servicer.ended

    assert run_virtual(main()) == (grpc.StatusCode.DEADLINE_EXCEEDED, 30.0, ["cancelled"])


def test_a_call_that_waits_less_than_its_deadline_is_answered() -> None:
    async def main() -> tuple[float, float]:
        _, stub = control()
        answer = await stub.GetLink(edge_pb2.GetLinkRequest(), timeout=7200)
        return answer.rtt_ms, asyncio.get_running_loop().time()

    assert run_virtual(main()) == (1.0, 3600.0)


def test_a_call_answered_at_once_takes_no_time_and_leaves_no_timer() -> None:
    async def main() -> tuple[int, float, int]:
        _, stub = control()
        loop = asyncio.get_running_loop()
        answer = await stub.GetStats(edge_pb2.GetStatsRequest(), timeout=30)
        return answer.hits, loop.time(), len(loop._scheduled)  # type: ignore[attr-defined]

    assert run_virtual(main()) == (7, 0.0, 0)


def test_a_caller_that_gives_up_cancels_the_handler() -> None:
    async def main() -> list[str]:
        servicer, stub = control()
        call = asyncio.ensure_future(stub.GetLink(edge_pb2.GetLinkRequest()))
        await asyncio.sleep(5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return servicer.ended

    assert run_virtual(main()) == ["cancelled"]


def test_a_call_with_no_time_left_fails_without_running_its_handler() -> None:
    class Counting(SlowControl):
        calls = 0

        async def GetStats(self, request: Any, context: Any) -> edge_pb2.EdgeStats:
            Counting.calls += 1
            return edge_pb2.EdgeStats()

    async def main() -> grpc.StatusCode:
        server = InProcessServer()
        edge_pb2_grpc.add_EdgeControlServicer_to_server(Counting(), server)
        stub = edge_pb2_grpc.EdgeControlStub(server.channel())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetStats(edge_pb2.GetStatsRequest(), timeout=0)
        return refused.value.code()

    assert run_virtual(main()) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert Counting.calls == 0
