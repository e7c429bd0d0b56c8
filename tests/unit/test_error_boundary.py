"""The one error boundary: every method of every server, in-process and over a socket."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

import edgekv
from edge.server import add_edge_services
from edgekv.core import limits
from edgekv.core.errors import ErrorKind, KVError
from edgekv.inprocess import InProcessServer
from edgekv.rpc import error_from_rpc
from edgekv.serving import GrpcNode
from edgekv.v1 import central_pb2, central_pb2_grpc, edge_pb2, edge_pb2_grpc
from tests.support.inprocess_cluster import InProcessCluster


class BuggyControl(edge_pb2_grpc.EdgeControlServicer):
    """A control service with a bug in one method, and a KVError in another."""

    async def GetStats(self, request: Any, context: Any) -> edge_pb2.EdgeStats:
        return edge_pb2.EdgeStats(hits=1 // 0)

    async def Flush(self, request: Any, context: Any) -> edge_pb2.FlushResponse:
        raise edgekv.KVError(ErrorKind.UNAVAILABLE, "the cache is away")

    async def GetLink(self, request: Any, context: Any) -> edge_pb2.LinkSettings:
        await asyncio.sleep(60)  # slower than any caller waits
        return edge_pb2.LinkSettings()


async def refusal(call: Any) -> KVError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return error_from_rpc(exc)
    raise AssertionError("the call succeeded")


async def test_a_bug_answers_internal_with_its_kind_and_logs_one_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = InProcessServer()
    edge_pb2_grpc.add_EdgeControlServicer_to_server(BuggyControl(), server)
    control = edge_pb2_grpc.EdgeControlStub(server.channel())
    with caplog.at_level(logging.ERROR, logger="edgekv.rpc"):
        failed = await refusal(control.GetStats(edge_pb2.GetStatsRequest()))
    assert failed.kind is ErrorKind.INTERNAL and failed.status == "INTERNAL"
    assert "ZeroDivisionError" in failed.message
    [logged] = caplog.records
    assert "GetStats" in logged.getMessage() and logged.exc_info is not None

    unavailable = await refusal(control.Flush(edge_pb2.FlushRequest()))
    assert (unavailable.kind, unavailable.message) == (ErrorKind.UNAVAILABLE, "the cache is away")


@pytest.fixture
async def buggy_node() -> AsyncIterator[tuple[GrpcNode, edge_pb2_grpc.EdgeControlStub]]:
    """BuggyControl served behind the boundary on a real socket, and a stub of it."""
    node = GrpcNode(["edgekv.v1.EdgeControl"])
    edge_pb2_grpc.add_EdgeControlServicer_to_server(BuggyControl(), node.server)
    port = await node.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield node, edge_pb2_grpc.EdgeControlStub(channel)
    finally:
        await node.stop(grace_s=0)


async def test_the_same_boundary_holds_over_a_real_socket(
    buggy_node: tuple[GrpcNode, edge_pb2_grpc.EdgeControlStub],
) -> None:
    _, control = buggy_node
    failed = await refusal(control.GetStats(edge_pb2.GetStatsRequest()))
    unavailable = await refusal(control.Flush(edge_pb2.FlushRequest()))
    assert failed.kind is ErrorKind.INTERNAL
    assert unavailable.kind is ErrorKind.UNAVAILABLE


async def test_a_call_its_client_left_is_counted_cancelled(
    buggy_node: tuple[GrpcNode, edge_pb2_grpc.EdgeControlStub],
) -> None:
    node, control = buggy_node
    left = await refusal(control.GetLink(edge_pb2.GetLinkRequest(), timeout=0.2))
    assert left.kind is ErrorKind.DEADLINE_EXCEEDED
    method = "/edgekv.v1.EdgeControl/GetLink"
    for _ in range(100):  # the server learns of it a moment after the client
        if node.boundary.counts.snapshot().get(method):
            break
        await asyncio.sleep(0.02)
    assert node.boundary.counts.snapshot()[method] == {"CANCELLED": 1}


@pytest.mark.parametrize(
    "settings",
    [
        {"rtt_ms": math.nan},
        {"jitter_ms": math.inf},
        {"rtt_ms": -1.0},
        {"loss": 1.5},
    ],
)
async def test_set_link_refuses_bad_settings_with_a_registry_error(
    cluster: InProcessCluster, settings: dict[str, float]
) -> None:
    edge = await cluster.add_edge()
    server = InProcessServer()

    add_edge_services(edge.edge, server)
    control = edge_pb2_grpc.EdgeControlStub(server.channel())
    refused = await refusal(control.SetLink(edge_pb2.LinkSettings(**settings)))
    assert refused.kind is ErrorKind.LINK_SETTINGS_INVALID and refused.status == "INVALID_ARGUMENT"
    assert refused.message.startswith("Invalid link settings: ")
    assert edge.edge.link.settings.rtt_ms == 0.0, "a refused change changes nothing"


async def test_a_watch_of_an_unknown_namespace_is_refused_through_the_boundary(
    cluster: InProcessCluster,
) -> None:
    with pytest.raises(edgekv.NotFoundError, match="namespace not found"):
        await cluster.admin.namespace("f" * 32).watch()


async def test_an_in_process_stream_that_failed_fails_every_later_read_alike(
    cluster: InProcessCluster,
) -> None:
    central = central_pb2_grpc.CentralStoreStub(cluster.central.channel())
    call = central.Watch(central_pb2.WatchRequest(namespace_id="f" * 32))
    for _ in range(2):  # as grpc's streams do; the second read used to wait forever
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await asyncio.wait_for(call.read(), timeout=5)
        assert failed.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_message_over_what_a_node_accepts_is_named_as_such(
    cluster: InProcessCluster,
) -> None:
    edge = await cluster.add_edge()
    too_big = b"v" * (limits.MAX_VALUE_BYTES + 1)
    with pytest.raises(edgekv.InvalidRequestError, match="Value length of 26214401 exceeds"):
        await edge.kv.put("k", too_big)  # refused by the client, in the store's words
    assert edge.counters.upstream_calls == 0
    # Sent anyway, past the client: the edge's transport refuses it before any handler.
    raw = edge.client.edge_stub.Put  # type: ignore[union-attr]
    oversized = central_pb2.PutRequest(
        namespace_id=cluster.kv.id, key=b"k", value=b"v" * limits.MAX_EDGE_REQUEST_BYTES
    )
    refused = await refusal(raw(oversized))
    assert refused.kind is ErrorKind.MESSAGE_TOO_LARGE and refused.status == "RESOURCE_EXHAUSTED"
    assert not refused.transient
