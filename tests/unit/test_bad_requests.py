"""Central and an edge refuse the same bad request the same way.

Each case is the raw bytes of one request, sent unchanged to central's
``CentralStore`` and to an edge's ``EdgeKV`` (the request messages of the
methods both serve share their field numbers), through the in-process
transport — serialised and parsed as on the wire, behind the same error
boundary. Both must refuse it with the same registry kind, status and
message; never UNKNOWN or INTERNAL, and never with a message that echoes a
megabyte of the request back.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from edgekv.core.errors import ErrorKind, KVError
from edgekv.inprocess import InProcessServer
from edgekv.rpc import error_from_rpc
from tests.support.inprocess_cluster import InProcessCluster

# Fields shared by the requests of Get, GetMany, Put, Delete and List, at both services.
NAMESPACE, KEY, VALUE_OR_LIMIT, METADATA_OR_CURSOR = 1, 2, 3, 4
MiB = 1024 * 1024
# Status messages travel in a trailer of at most a few KiB; quote far less of a request.
MAX_MESSAGE_CHARS = 500
UNKNOWN_NAMESPACE = "f" * 32


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def length_delimited(field: int, data: bytes | str) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return varint(field << 3 | 2) + varint(len(raw)) + raw


def whole_number(field: int, number: int) -> bytes:
    return varint(field << 3) + varint(number)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    # The request without its namespace id; None: the namespace id is the cluster's.
    fields: bytes
    namespace_id: bytes | str | None = None
    # The whole request as given, namespace and all (malformed bytes).
    raw: bytes | None = None

    def request(self, namespace_id: str) -> bytes:
        if self.raw is not None:
            return self.raw
        chosen = namespace_id if self.namespace_id is None else self.namespace_id
        return length_delimited(NAMESPACE, chosen) + self.fields


def put(metadata_json: bytes | str) -> bytes:
    return (
        length_delimited(KEY, "k")
        + length_delimited(VALUE_OR_LIMIT, "v")
        + length_delimited(METADATA_OR_CURSOR, metadata_json)
    )


CASES = [
    Case("bytes that are not protobuf", "Get", b"", raw=b"\x0a\xff\xff\xff"),
    Case("a truncated field", "Put", b"", raw=length_delimited(KEY, "k")[:-1]),
    Case("a namespace id that is not UTF-8", "Get", length_delimited(KEY, "k"), b"\xff" * 32),
    Case("a cursor that is not UTF-8", "List", length_delimited(METADATA_OR_CURSOR, b"\xc3")),
    Case("metadata that is not UTF-8", "Put", put(b"{\xff}")),
    Case("metadata NaN", "Put", put("NaN")),
    Case("metadata -Infinity", "Put", put('{"a": -Infinity}')),
    Case("metadata nested 1024 deep", "Put", put("[" * 1024)),
    Case("a namespace id of 1 MiB", "Get", length_delimited(KEY, "k"), "x" * MiB),
    Case("a cursor of 1 MiB", "List", length_delimited(METADATA_OR_CURSOR, "c" * MiB)),
    Case("a bad namespace id and an empty key", "Get", b"", "nope"),
    Case("a bad namespace id and no keys", "GetMany", b"", "nope"),
    Case("a bad namespace id and a bad prefix", "List", length_delimited(KEY, b"\xff"), "nope"),
    Case("a bad namespace id and an empty key", "Put", b"", "nope"),
    Case("a bad namespace id and an empty key", "Delete", b"", "nope"),
    Case("an unknown namespace and an empty key", "Get", b"", UNKNOWN_NAMESPACE),
    Case("an unknown namespace and no keys", "GetMany", b"", UNKNOWN_NAMESPACE),
    Case(
        "an unknown namespace and a list limit too large",
        "List",
        whole_number(VALUE_OR_LIMIT, 1001),
        UNKNOWN_NAMESPACE,
    ),
    Case("an unknown namespace and an empty key", "Put", b"", UNKNOWN_NAMESPACE),
    Case("an unknown namespace", "Get", length_delimited(KEY, "k"), UNKNOWN_NAMESPACE),
    Case("an unknown namespace", "Delete", length_delimited(KEY, "k"), UNKNOWN_NAMESPACE),
    Case("a key that is not UTF-8", "Get", length_delimited(KEY, b"\xff")),
    Case("a key of 513 bytes", "GetMany", length_delimited(KEY, "k" * 513)),
    Case("a list limit too large", "List", whole_number(VALUE_OR_LIMIT, 1001)),
    Case("a cursor edgekv did not issue", "List", length_delimited(METADATA_OR_CURSOR, "nope")),
]


async def refusal(server: InProcessServer, method: str, request: bytes) -> KVError:
    call = server.channel().unary_unary(
        method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
    )
    try:
        await call(request)
    except grpc.aio.AioRpcError as exc:
        return error_from_rpc(exc)
    raise AssertionError(f"{method} took the request")


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.method}: {case.name}")
async def test_central_and_edge_refuse_a_bad_request_alike(
    cluster: InProcessCluster, case: Case
) -> None:
    edge = await cluster.add_edge()
    edge_server = InProcessServer()
    from edge.server import add_edge_services

    add_edge_services(edge.edge, edge_server)
    request = case.request(cluster.kv.id)
    at_central = await refusal(cluster.central, f"/edgekv.v1.CentralStore/{case.method}", request)
    at_edge = await refusal(edge_server, f"/edgekv.v1.EdgeKV/{case.method}", request)
    assert at_central.kind not in (ErrorKind.INTERNAL, ErrorKind.UNAVAILABLE), at_central.message
    assert (at_edge.kind, at_edge.status, at_edge.message) == (
        at_central.kind,
        at_central.status,
        at_central.message,
    )
    assert len(at_central.message) <= MAX_MESSAGE_CHARS, at_central.message[:200]
