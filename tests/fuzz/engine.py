"""The fuzzer: seeded, mutated requests to every method of a running central and edge.

Theory of operation: :class:`Fuzzer` talks to real servers over real sockets
with raw bytes (no serializer of its own, so nothing it sends is tidied up
on the way). Every method of ``CentralStore``, ``EdgeKV`` and ``EdgeControl``
is a target, found from the service descriptors. For each example hypothesis
draws a target, a message for it (:mod:`tests.fuzz.messages`) and mutations
of its bytes; the fuzzer sends them and checks the answer:

* never ``UNKNOWN``, ``INTERNAL``, ``DATA_LOSS`` or ``UNIMPLEMENTED``, and no
  unary call that outlives its deadline — a bad request gets a status that
  says what is wrong with it;
* where central and an edge serve the same request (Get, GetMany, List, Put,
  Delete: the edge's request messages number their fields as central's do, so
  the same bytes mean the same request), both give the same status and kind —
  except that an edge may still serve copies of a namespace central deleted;
* between rounds of examples (:meth:`Fuzzer.verify`):
  the servers still run, their logs hold no traceback, the canary namespace
  (written before the run, never named by the fuzzer) is unchanged, and the
  fuzzer's own namespace exists again if a request deleted it.

A failure is recorded with the method and the request's bytes (hex) before
hypothesis hears of it, so it can be replayed even when shrinking cannot.
A ``SetLink`` that the edge accepted is undone at once, so that a partition
a request asked for does not make the next requests disagree.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import edgekv
from edgekv.control import NodeControl
from edgekv.core import limits
from edgekv.rpc import ERROR_KIND_METADATA_KEY
from edgekv.v1 import central_pb2, edge_pb2
from tests.fuzz.messages import message, mutated

# What a request, however bad, must never be answered with.
FORBIDDEN = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
CALL_TIMEOUT_S = 10.0
# Methods central and the edge both serve, with the same field numbers.
SHARED = ("Get", "GetMany", "List", "Put", "Delete")
CANARY_KEYS = 20


@dataclass(frozen=True)
class Target:
    service: str  # e.g. "edgekv.v1.CentralStore"
    method: MethodDescriptor
    address: str

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    kind: str
    details: str


@dataclass
class Failure:
    what: str
    path: str
    request_hex: str

    def __str__(self) -> str:
        return f"{self.what}: {self.path} with request bytes {self.request_hex}"


@dataclass
class Report:
    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)


def targets(central: str, edge: str) -> list[Target]:
    found = []
    for descriptor, address in (
        (central_pb2.DESCRIPTOR.services_by_name["CentralStore"], central),
        (edge_pb2.DESCRIPTOR.services_by_name["EdgeKV"], edge),
        (edge_pb2.DESCRIPTOR.services_by_name["EdgeControl"], edge),
    ):
        found += [Target(descriptor.full_name, method, address) for method in descriptor.methods]
    return found


class Fuzzer:
    def __init__(
        self,
        central: str,
        edge: str,
        logs: list[Path],
        alive: Callable[[], bool],
    ) -> None:
        self.central, self.edge = central, edge
        self.logs = logs
        self.alive = alive
        self.report = Report()
        self.targets = targets(central, edge)
        self._channels = {address: grpc.insecure_channel(address) for address in {central, edge}}
        self.canary_id = ""
        self.canary: dict[str, bytes] = {}
        self.namespace_id = ""

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    # -- before and after -----------------------------------------------------------------

    async def prepare(self) -> None:
        """The canary namespace, written once, and the namespace the fuzzer may write."""
        async with edgekv.Client(central=self.central) as client:
            canary = await client.create_namespace(f"fuzz-canary-{time.time_ns()}")
            self.canary_id = canary.id
            kv = client.namespace(canary.id)
            for index in range(CANARY_KEYS):
                value = f"canary {index}".encode() * (index + 1)
                await kv.put(f"k{index}", value, metadata={"i": index})
                self.canary[f"k{index}"] = value
        await self._ensure_own_namespace()
        async with NodeControl(self.edge) as control:
            self._link = await control.link()

    async def _ensure_own_namespace(self) -> None:
        async with edgekv.Client(central=self.central) as client:
            await self._prune_namespaces(client)
            if self.namespace_id:
                try:
                    await client.get_namespace(self.namespace_id)
                    return
                except edgekv.NotFoundError:
                    pass
            created = await client.create_namespace(f"fuzz-{time.time_ns()}")
            self.namespace_id = created.id

    async def _prune_namespaces(self, client: edgekv.Client) -> None:
        """Delete the namespaces fuzzed requests created once they near the store's limit
        (a million requests create far more than the 1000 a store may hold). Every
        namespace but the fuzzer's two goes: the central is the fuzzer's own
        (:mod:`tests.fuzz.nodes`), never one that holds anybody's data."""
        namespaces = await client.list_namespaces()
        if len(namespaces) < limits.MAX_NAMESPACES // 2:
            return
        for namespace in namespaces:
            if namespace.id not in (self.canary_id, self.namespace_id):
                await client.delete_namespace(namespace.id)

    async def verify(self) -> None:
        """Servers alive, logs clean, canary unchanged; the fuzzer's namespace back if gone."""
        if not self.alive():
            self._fail("a server process exited", "-", b"")
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Traceback" in text:
                excerpt = text[text.index("Traceback") :][:2000]
                self._fail(f"a traceback in {log.name}: {excerpt}", "-", b"")
        async with edgekv.Client(central=self.central) as client:
            kv = client.namespace(self.canary_id)
            for key, value in self.canary.items():
                read = await kv.get_with_metadata(key, type="bytes")
                if read.value != value or read.metadata != {"i": int(key[1:])}:
                    self._fail(f"canary key {key} changed to {read.value!r}", "-", b"")
            page = await kv.list()
            if sorted(k.name for k in page.keys) != sorted(self.canary):
                self._fail(f"canary keys changed: {[k.name for k in page.keys]}", "-", b"")
        await self._ensure_own_namespace()

    # -- one request ----------------------------------------------------------------------

    def send(self, target: Target, payload: bytes) -> Answer:
        channel = self._channels[target.address]
        self.report.requests += 1
        self.report.by_method[target.path] += 1
        try:
            if target.streaming:
                call = channel.unary_stream(target.path)(payload, timeout=1.0)
                try:
                    next(iter(call))
                finally:
                    call.cancel()
            else:
                channel.unary_unary(target.path)(payload, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            answer = _answer_of(exc)
        else:
            answer = Answer(grpc.StatusCode.OK, "", "")
        self.report.by_status[answer.code.name] += 1
        self.report.by_kind[answer.kind or answer.code.name] += 1
        return answer

    def check(self, target: Target, payload: bytes, answer: Answer) -> None:
        if answer.code in FORBIDDEN:
            self._fail(f"answered {answer.code.name}: {answer.details[:300]}", target.path, payload)
        timed_out = answer.code == grpc.StatusCode.DEADLINE_EXCEEDED
        if timed_out and not target.streaming:
            self._fail("did not answer within its deadline", target.path, payload)
        if target.method.name == "SetLink" and answer.code == grpc.StatusCode.OK:
            self._restore_link()

    def agree(self, target: Target, payload: bytes, answer: Answer) -> None:
        """The same request to the edge gives what central gave."""
        mirror = Target("edgekv.v1.EdgeKV", target.method, self.edge)
        at_edge = self.send(mirror, payload)
        self.check(mirror, payload, at_edge)
        # Eventual consistency, not a disagreement: an edge serves its copies of a deleted
        # namespace (a request deleted the fuzzer's) until they expire, as it serves its
        # copies of a deleted key.
        deleted_here = answer.kind == "NAMESPACE_NOT_FOUND" and at_edge.code == grpc.StatusCode.OK
        if (at_edge.code, at_edge.kind) != (answer.code, answer.kind) and not deleted_here:
            self._fail(
                f"central said {answer.code.name} {answer.kind} ({answer.details[:120]!r}), "
                f"the edge {at_edge.code.name} {at_edge.kind} ({at_edge.details[:120]!r})",
                target.path,
                payload,
            )

    def _restore_link(self) -> None:
        restore = self._channels[self.edge].unary_unary("/edgekv.v1.EdgeControl/SetLink")
        restore(self._link.to_pb().SerializeToString(), timeout=CALL_TIMEOUT_S)

    def _fail(self, what: str, path: str, payload: bytes) -> None:
        failure = Failure(what, path, payload.hex())
        self.report.failures.append(failure)
        raise AssertionError(str(failure))

    # -- many requests --------------------------------------------------------------------

    def run(self, examples: int, run_seed: int, progress: Callable[[Report], None]) -> None:
        """``examples`` examples (a request each, two where central and edge are compared)."""
        fuzzer = self
        by_type = {
            target.method.input_type.full_name: message(
                target.method.input_type, [self.namespace_id]
            )
            for target in self.targets
        }
        central_shared = [
            t
            for t in self.targets
            if t.service.endswith("CentralStore") and t.method.name in SHARED
        ]
        central_types = {t: GetMessageClass(t.method.input_type) for t in central_shared}

        @seed(run_seed)
        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def one(data: st.DataObject) -> None:
            target = data.draw(st.sampled_from(fuzzer.targets), label="target")
            request = data.draw(by_type[target.method.input_type.full_name], label="message")
            payload = data.draw(mutated(request.SerializeToString()), label="bytes")
            answer = fuzzer.send(target, payload)
            fuzzer.check(target, payload, answer)
            if target in central_shared and same_request(central_types[target], payload):
                fuzzer.agree(target, payload, answer)
            if fuzzer.report.requests % 500 < 2:
                progress(fuzzer.report)

        one()


def same_request(central_type: type[Message], payload: bytes) -> bool:
    """Do these bytes mean the same request to central and to an edge?

    The edge's messages add fields (``cache_ttl``) that central does not know:
    bytes that carry such a field, or anything else central would set aside as
    unknown, ask the edge something else. Bytes neither parses are the same
    request (both must refuse them).
    """
    try:
        parsed = central_type.FromString(payload)
    except DecodeError:
        return True
    parsed.DiscardUnknownFields()
    return parsed.SerializeToString() == payload


def _answer_of(exc: Any) -> Answer:
    code = exc.code()
    kind = ""
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_KIND_METADATA_KEY:
            kind = value
    return Answer(code, kind, exc.details() or "")
