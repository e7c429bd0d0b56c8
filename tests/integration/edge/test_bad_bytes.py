"""Bytes that are not a request, over real sockets: a registry error, not UNKNOWN, no traceback.

grpc parses a request before any handler runs; left to itself it answers
UNKNOWN and logs a traceback for every such call. The error boundary parses
inside itself instead, so central and an edge answer INVALID_ARGUMENT with
the kind MESSAGE_INVALID, and log nothing.
"""

from __future__ import annotations

import logging

import grpc
import pytest

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, KVError
from edgekv.rpc import error_from_rpc
from tests.integration.edge.conftest import Cluster

MiB = 1024 * 1024
NOT_PROTOBUF = b"\x0a\xff\xff\xff"
# Field 1 (a string at every method below) holding bytes that are not UTF-8.
NOT_UTF8_FIELD_1 = b"\x0a\x02\xc3\x28"


async def refusal(channel: grpc.aio.Channel, method: str, request: bytes) -> KVError:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        await call(request, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return error_from_rpc(exc)
    raise AssertionError(f"{method} took {request[:20]!r}")


async def stream_refusal(channel: grpc.aio.Channel, method: str, request: bytes) -> KVError:
    call = channel.unary_stream(method, request_serializer=None, response_deserializer=None)
    try:
        async for _ in call(request, timeout=5):
            pass
    except grpc.aio.AioRpcError as exc:
        return error_from_rpc(exc)
    raise AssertionError(f"{method} took {request[:20]!r}")


@pytest.mark.parametrize("request_bytes", [NOT_PROTOBUF, NOT_UTF8_FIELD_1])
@pytest.mark.parametrize(
    "method",
    [
        "central:/edgekv.v1.CentralStore/Get",
        "central:/edgekv.v1.CentralStore/CreateNamespace",
        "central:/edgekv.v1.CentralStore/RenameNamespace",
        "central:/edgekv.v1.CentralStore/List",
        "central:/edgekv.v1.CentralStore/Put",
        "central:/grpc.health.v1.Health/Check",
        "edge:/edgekv.v1.EdgeKV/Get",
        "edge:/edgekv.v1.EdgeKV/List",
        "edge:/edgekv.v1.EdgeControl/Flush",
    ],
)
async def test_bytes_that_do_not_parse_are_invalid_argument_and_log_nothing(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, method: str, request_bytes: bytes
) -> None:
    edge = await cluster.add_edge("edge-1")
    where, _, path = method.partition(":")
    address = cluster.central_address if where == "central" else edge.address
    async with grpc.aio.insecure_channel(address) as channel:
        with caplog.at_level(logging.WARNING):
            refused = await refusal(channel, path, request_bytes)
    assert (refused.kind, refused.status) == (ErrorKind.MESSAGE_INVALID, "INVALID_ARGUMENT")
    assert refused.message.startswith(f"Invalid {path.rpartition('/')[2]} request: ")
    assert caplog.records == [], [record.getMessage() for record in caplog.records]


async def test_a_watch_of_bytes_that_do_not_parse_is_refused_alike(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    async with grpc.aio.insecure_channel(cluster.central_address) as channel:
        with caplog.at_level(logging.WARNING):
            refused = await stream_refusal(channel, "/edgekv.v1.CentralStore/Watch", NOT_PROTOBUF)
    assert refused.kind is ErrorKind.MESSAGE_INVALID
    assert caplog.records == []


async def test_a_megabyte_namespace_id_is_quoted_short(cluster: Cluster) -> None:
    edge = await cluster.add_edge("edge-1")
    huge = "x" * MiB
    for client in (cluster.admin, edge.client):
        assert client is not None
        with pytest.raises(KVError) as refused:
            await client.namespace(huge).get("k")
        assert refused.value.kind is ErrorKind.NAMESPACE_ID_INVALID
        assert refused.value.reason == (
            f"Invalid namespace id {'x' * 64 + '…'!r}: expected 32 hexadecimal characters."
        )


async def test_a_request_over_an_edges_limit_is_message_too_large_in_grpcs_words(
    cluster: Cluster,
) -> None:
    edge = await cluster.add_edge("edge-1")
    too_large = b"\x0a" + b"\x80" * 2 + b"x" * (limits.MAX_EDGE_REQUEST_BYTES + 1)
    async with grpc.aio.insecure_channel(
        edge.address, options=[("grpc.max_send_message_length", -1)]
    ) as channel:
        refused = await refusal(channel, "/edgekv.v1.EdgeKV/Put", too_large)
    assert (refused.kind, refused.status) == (ErrorKind.MESSAGE_TOO_LARGE, "RESOURCE_EXHAUSTED")
    assert "Received message larger than max" in refused.message, refused.message
    assert not refused.transient
