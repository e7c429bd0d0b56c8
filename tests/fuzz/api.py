"""``python -m tests.fuzz.api``: an HTTP fuzzer of the API node, drawn from its OpenAPI description.

Theory of operation: a real central (SQLite) and API node run in this process
(``start_rest`` of the REST API tests), with tokens of two accounts (A, read-write
and read-only; B) and, in a third account whose token the fuzzer never sends, a
canary namespace with known keys. Each request is drawn from a seeded
:class:`random.Random` (:class:`Draw`): an operation of ``api/openapi.yaml``, its
path, query and body filled from the description's parameters and schemas with
the ids, keys and tokens the fuzzer knows (:class:`World`), then zero or more
mutations (:data:`MUTATIONS`): odd methods; damaged paths, ids and
percent-encodings; junk, huge and repeated query parameters; missing, bad and
legacy credentials; wrong content types and multipart boundaries; truncated,
deep, huge and binary bodies; damaged multipart, content codings and chunked
framing. Requests go out as raw bytes over a socket (:class:`Wire`), so nothing
tidies them up on the way, and each answer is judged (:class:`Oracle`):

* no status >= 500 (central is reachable: not even 503), and an answer to every
  request that is complete HTTP;
* the status is one the description documents for the route the router makes of
  the path (``api.routes.match``), or exactly the router's refusal when it makes
  none, and the body validates against the documented schema — so every non-2xx
  answer is the envelope with ``success: false`` and a numeric code;
* no 2xx for what the caller may not do: another account's routes, a write with
  a read-only token, no valid token, the canary's namespace;
* the node's ``unforeseen`` counter stays 0 and nothing logs an error or a
  traceback.

Some requests never reach the node's code; aiohttp's own answers to them are
counted in the report, not judged. Requests built to be malformed HTTP
("unlawful": a bad method token, no Host, raw non-ASCII or a line over aiohttp's
8190-byte limit, broken chunked framing, a damaged content coding, a client that
stops sending mid-body) may get its parser's plain-text 400, or no answer, and
aiohttp logs each with a traceback; for them only the absence of 5xx is judged,
and that an error the node answers is the envelope (the parser may have read the
malformed request as another one than was meant). Two kinds of lawful requests get aiohttp's
plain-text answers too: a target without a path (``OPTIONS *``, ``CONNECT
host:port``), 404 from its router; an ``Expect`` other than 100-continue, 417.

Between rounds (:meth:`Fuzzer.verify`) the canary is read back through central,
the fuzzer's namespaces and keys are put back, and namespaces that requests
created are pruned. A failure is recorded with the round's seed, the request's
number and its bytes, and the run goes on, so that one long run reports every
kind of failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import random
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import jsonschema
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader
from aiohttp.web_protocol import RequestPayloadError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import edgekv
from api.routes import ACCOUNTLESS, Op, Route, match
from api.server import openapi_document
from edgekv.core.accounts import bearer_token
from edgekv.core.errors import REGISTRY, KVError
from tests.integration.rest_api.conftest import ACCOUNT_A, ACCOUNT_B, Rest, start_rest, stop_rest

# The account of the canary; the fuzzer holds its token only to write and read the canary.
ACCOUNT_C = "c" * 32
CANARY_KEYS = 20
OWN_KEYS = ["k0", "k1", "k2", "k3", "k4", "a/b c?d#e%f", "ключ/🔑 ü", "deep", "json", "+ %"]
# aiohttp's max_line_size and max_field_size: a longer request line or header is refused
# by its HTTP parser, before the node sees the request.
PARSER_LIMIT = 8190
ANSWER_TIMEOUT_S = 60.0
# Malformed HTTP may leave aiohttp's parser waiting for more (``PRI / HTTP/1.1`` and no
# more): the fuzzer gives up on it sooner, and counts it as no answer.
UNLAWFUL_TIMEOUT_S = 3.0
# Namespaces beyond which verify() prunes what requests created (an account holds 1000).
PRUNE_ABOVE = 200
FAILURE = "#/components/schemas/Failure"  # the envelope of an error, in the description
WRITES = {
    Op.CREATE_NAMESPACE,
    Op.RENAME_NAMESPACE,
    Op.DELETE_NAMESPACE,
    Op.PUT_VALUE,
    Op.DELETE_VALUE,
    Op.BULK_PUT,
    Op.BULK_DELETE,
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Methods aiohttp's parser (llhttp) takes that no route does, and tokens it refuses.
ODD_METHODS = ["PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "M-SEARCH", "PURGE", "QUERY"]
UNLAWFUL_METHODS = ["FOO", "get", "G@T", "PRI", "GE T"]
JUNK_NUMBERS = [
    "", "-1", "0", "1e3", "1.5", "0x10", " 5", "5 ", "+5", "-0", "١٢", "\uff15", "1_000",
    "9" * 30, "-" + "9" * 30, "9" * 5000, "NaN", "inf", "null", "[]", "true", "%00", "\x00",
]  # fmt: skip
KEY_TEXTS = [
    "a/b c?d#e%f", "a:b+c d", "ключ/🔑 ü", "+", " ", ".", "..", "...", "%", "%2F", "\x00",
    "\t\r\n", "k" * 512, "k" * 513, "é" * 256, "😀" * 128, "__proto__", "a\\b", "~!@$&'()*,;=",
    "a//b", "/", "/lead", "trail/",
]  # fmt: skip
KEY_BYTES = [b"\xed\xa0\x80", b"\xff", b"\xc0\xaf", b"k\x00k", b"\xf4\x90\x80\x80"]
# Around 990 is where a document json.loads takes may no longer json.dumps (or loads
# again deeper in a stack): the recursion limit is 1000.
DEEP_DEPTHS = [10, 500, 900, 950, 980, 985, 990, 995, 999, 1000, 1500, 100_000]

Json = Any


# -- the description ---------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One (method, path) of the description, with its full path template."""

    op_id: str
    method: str
    template: str
    query: tuple[tuple[str, dict[str, Any]], ...]
    body: dict[str, Any] | None  # the requestBody's content map
    responses: dict[str, str]  # status → JSON pointer of its JSON schema, "" for none


def operations(doc: dict[str, Any]) -> list[Operation]:
    found = []
    root = doc["servers"][0]["url"].rstrip("/")
    for path, item in doc["paths"].items():
        prefix = item["servers"][0]["url"].rstrip("/") if "servers" in item else root
        for method in HTTP_METHODS:
            if method in item:
                found.append(_operation(doc, path, prefix, method, item))
    return found


def _operation(
    doc: dict[str, Any], path: str, prefix: str, method: str, item: dict[str, Any]
) -> Operation:
    spec = item[method]
    parameters = [resolve(doc, p) for p in item.get("parameters", []) + spec.get("parameters", [])]
    query = tuple((p["name"], p["schema"]) for p in parameters if p["in"] == "query")
    body = resolve(doc, spec["requestBody"])["content"] if "requestBody" in spec else None
    responses = {}
    for status, response in spec["responses"].items():
        pointer = response.get("$ref", f"#/paths/{_escape(path)}/{method}/responses/{status}")
        has_json = "application/json" in resolve(doc, response).get("content", {})
        responses[status] = f"{pointer}/content/application~1json/schema" if has_json else ""
    return Operation(spec["operationId"], method.upper(), prefix + path, query, body, responses)


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """``node``, or what its ``$ref`` (a local pointer into ``doc``) names."""
    while isinstance(node, dict) and "$ref" in node:
        node = at_pointer(doc, node["$ref"])
    return node


def at_pointer(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.removeprefix("#").strip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _q(text: str) -> str:
    """``text`` percent-encoded whole, a lone surrogate as WTF-8 (as a Worker sends it)."""
    return quote(text, safe="", errors="surrogatepass")


def fill(template: str, account_id: str, namespace_id: str, key_segment: str) -> str:
    return (
        template.replace("{account_id}", account_id)
        .replace("{namespace_id}", namespace_id)
        .replace("{key_name}", key_segment)
    )


# -- the world: who and what the fuzzer knows -------------------------------------------


@dataclass
class World:
    tokens: dict[str, tuple[str, bool]]  # token → (account, read-only)
    token_of: dict[str, str]  # "a", "a-ro", "b" → token
    own: dict[str, str]  # account → the namespace the fuzzer writes in it
    canary_namespace: str
    now: float
    cursors: list[str] = field(default_factory=list)

    def identity(self, probe: Probe) -> tuple[str, bool] | None:
        """The account and read-only flag the node will see, or None for no valid token."""
        header = probe.header("Authorization")
        if header is None:
            return None
        try:
            return self.tokens.get(bearer_token(header))
        except KVError:
            return None


# -- one request ---------------------------------------------------------------------------


@dataclass
class Probe:
    """A request as bytes will carry it; ``lawful`` False when built to be malformed HTTP."""

    method: str
    path: str
    query: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # "length", "chunked", "bad-chunks", "short" (a Content-Length under the body's),
    # "half-close" (one over it, then the client stops sending)
    framing: str = "length"
    chunks: list[int] = field(default_factory=list)
    version: str = "HTTP/1.1"
    with_host: bool = True
    lawful: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.path if self.query is None else f"{self.path}?{self.query}"

    def header(self, name: str) -> str | None:
        """The first value of ``name``, as aiohttp's ``headers.get`` gives it."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def set_header(self, name: str, value: str) -> None:
        self.drop_header(name)
        self.headers.append((name, value))

    def drop_header(self, name: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}"]
        if self.with_host:
            lines.append(f"Host: {host}")
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines += self._framing_headers()
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        return head + self._framed_body()

    def _framing_headers(self) -> list[str]:
        if self.framing in ("chunked", "bad-chunks"):
            return ["Transfer-Encoding: chunked"]
        length = len(self.body)
        if self.framing == "short":
            return [f"Content-Length: {max(0, length - 7)}", "Connection: close"]
        if self.framing == "half-close":
            return [f"Content-Length: {length + 100}"]
        return [f"Content-Length: {length}"] if self.body or self.method in ("PUT", "POST") else []

    def _framed_body(self) -> bytes:
        if self.framing not in ("chunked", "bad-chunks"):
            return self.body
        out, start = [], 0
        for size in [*self.chunks, len(self.body)]:
            piece = self.body[start : start + size]
            start += len(piece)
            if piece:
                out.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        if self.framing == "bad-chunks":
            out.insert(len(out) // 2, b"zz;\x01\r\nnot a chunk\r\n")
        return b"".join(out) + b"0\r\n\r\n"

    def describe(self, limit: int = 1500) -> str:
        raw = self.encode("HOST")
        shown = repr(raw[:limit]) + (f"… ({len(raw)} bytes in all)" if len(raw) > limit else "")
        return f"[{', '.join(self.notes) or 'as described'}] {shown}"


@dataclass(frozen=True)
class Answer:
    status: int
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")

    @property
    def closes(self) -> bool:
        return self.version == "HTTP/1.0" or self.headers.get("connection", "").lower() == "close"

    def json(self) -> Json:
        return json.loads(self.body)


def within_http(probe: Probe) -> bool:
    """Whether ``probe`` is lawful HTTP as far as its size and form go: the target and each
    header line under aiohttp's limits; a Host in HTTP/1.1; ``*`` only as OPTIONS's
    target, an authority only as CONNECT's, with no content (RFC 9110, 9.3.6: aiohttp
    reads a CONNECT's body as the next request)."""
    if len(probe.target) > PARSER_LIMIT - 190:
        return False
    if not probe.with_host and probe.version == "HTTP/1.1":  # HTTP/1.1 requires Host
        return False
    if any(len(k) + len(v) + 2 > PARSER_LIMIT - 190 for k, v in probe.headers):
        return False
    if probe.path.startswith("*"):
        return probe.method == "OPTIONS" and probe.target == "*"
    if probe.method == "CONNECT" or not probe.path.startswith(("/", "http://")):
        authority = probe.method == "CONNECT" and probe.target == "127.0.0.1:443"
        return authority and probe.framing == "length" and not probe.body
    return probe.path.removeprefix("http://127.0.0.1").startswith("/")


# -- drawing requests ------------------------------------------------------------------------


class Draw:
    """Requests drawn from the description with ``rng``: valid ones, then mutated."""

    def __init__(
        self, rng: random.Random, doc: dict[str, Any], world: World, ops: list[Operation]
    ) -> None:
        self.rng = rng
        self.doc = doc
        self.world = world
        self.ops = ops
        # The router's operations: the KV routes, and who a token is; not the node's own.
        self.kv_ops = list(routed_operations(ops).values())

    def probe(self) -> Probe:
        rng = self.rng
        probe = self.node_probe() if rng.random() < 0.03 else self.kv_probe(rng.choice(self.kv_ops))
        for _ in range(self.mutation_count()):
            name, mutate = rng.choices(MUTATIONS, weights=[w for _, _, w in MUTATIONS_W])[0]
            probe.notes.append(name)
            mutate(self, probe)
        probe.lawful = probe.lawful and within_http(probe)
        return probe

    def mutation_count(self) -> int:
        return self.rng.choices([0, 1, 2, 3, 5], weights=[30, 40, 18, 8, 4])[0]

    def node_probe(self) -> Probe:
        rng = self.rng
        path = rng.choice(
            ["/healthz", "/client/v4/openapi.json", "/", "/client/v4", "/client/v4/accounts",
             "/metrics", "/heal%74hz", "/client/v4/openapi.yaml", "/client/v4/openapi.json/",
             "/client/v4//memberships", "/client/v4/user/tokens/verify/", "/client/v4/user",
             f"/client/v4/accounts/{ACCOUNT_A}", f"/client/v4/accounts/{ACCOUNT_A}/storage/kv"]
        )  # fmt: skip
        method = rng.choice(["GET", "GET", "POST", "HEAD", "DELETE", *ODD_METHODS])
        probe = Probe(method, path, notes=["node"])
        if rng.random() < 0.5:
            probe.headers.append(("Authorization", f"Bearer {self.world.token_of['a']}"))
        return probe

    # -- the parts of a request drawn from the description -------------------------------

    def kv_probe(self, op: Operation) -> Probe:
        rng = self.rng
        who = rng.choices(["a", "b", "a-ro"], weights=[70, 18, 12])[0]
        token = self.world.token_of[who]
        account = self.world.tokens[token][0]
        if rng.random() < 0.12:
            account = rng.choice([ACCOUNT_A, ACCOUNT_B, ACCOUNT_C, self.hex32()])
        namespace = self.world.own.get(account, self.hex32())
        if rng.random() < 0.12:
            namespace = self.namespace_id()
        key, lawful = self.key_segment() if "{key_name}" in op.template else ("", True)
        probe = Probe(op.method, fill(op.template, account, namespace, key), lawful=lawful)
        probe.notes.append(op.op_id)
        probe.headers.append(("Authorization", f"Bearer {token}"))
        probe.query = self.query(op)
        self.body(op, probe)
        return probe

    def namespace_id(self) -> str:
        w = self.world
        return self.rng.choice(
            [w.canary_namespace, *w.own.values(), self.hex32(), self.hex32().upper(),
             self.hex32()[:31], self.hex32() + "0", "%61" * 32, "x", "..", ".", "%2E%2E",
             "a" * 3000, w.canary_namespace.upper()]
        )  # fmt: skip

    def hex32(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def key_text(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            return rng.choice(OWN_KEYS).encode()
        if roll < 0.75:
            return rng.choice(KEY_TEXTS).encode()
        if roll < 0.85:
            return rng.choice(KEY_BYTES)
        return self.text(rng.randint(1, 40)).encode("utf-8", "surrogatepass")

    def key_segment(self) -> tuple[str, bool]:
        """A key as a path segment, percent-encoded in one of many ways; and whether the
        result is lawful in a request line."""
        rng, raw = self.rng, self.key_text()
        how = rng.choices(
            ["quote", "slashes", "every", "lower", "double", "plus", "broken", "huge", "raw"],
            weights=[40, 10, 8, 6, 6, 5, 8, 4, 3],
        )[0]
        if how == "quote":
            return quote(raw, safe=""), True
        if how == "slashes":
            return quote(raw, safe="/"), True
        if how == "every":
            return "".join(f"%{b:02X}" for b in raw), True
        if how == "lower":
            return "".join(f"%{b:02x}" for b in raw), True
        if how == "double":
            return quote(quote(raw, safe=""), safe=""), True
        if how == "plus":
            return quote_plus(raw), True
        if how == "broken":
            return quote(raw, safe="") + rng.choice(["%", "%z", "%G0", "%%", "%2", "%u00e9"]), True
        if how == "huge":
            size = rng.choice([600, 2000, 4000, 20_000])
            return "%41" * (size // 3) if size < 5000 else "a" * size, True
        text = raw.decode("utf-8", "surrogateescape")
        return text, text.isascii() and text.isprintable() and " " not in text

    def query(self, op: Operation) -> str | None:
        rng = self.rng
        if not op.query or rng.random() < 0.3:
            return None
        pairs = []
        for name, schema in op.query:
            if rng.random() < 0.5:
                pairs.append((name, self.query_value(name, schema)))
        return "&".join(f"{_q(k)}={_q(v)}" for k, v in pairs)

    def query_value(self, name: str, schema: dict[str, Any]) -> str:
        rng = self.rng
        if rng.random() < 0.25:
            return rng.choice(JUNK_NUMBERS) if schema.get("type") == "integer" else self.text(9)
        if "enum" in schema:
            return str(rng.choice(schema["enum"]))
        if schema.get("type") == "integer":
            return str(self.integer(name, schema))
        if name == "cursor" and self.world.cursors:
            return rng.choice(self.world.cursors)
        return rng.choice(["", "k", "a/", "ключ", "deep", self.text(5)])

    def integer(self, name: str, schema: dict[str, Any]) -> int:
        rng = self.rng
        if name == "expiration":
            return int(self.world.now) + rng.choice([-10, 30, 61, 3600, 10**9, 2**40])
        low = int(schema.get("minimum", -5))
        high = int(schema.get("maximum", low + 10**6))
        return rng.choice([low, high, low - 1, high + 1, rng.randint(low, high)])

    def text(self, length: int) -> str:
        """Random text: ASCII, other scripts, astral characters, a lone surrogate now and then."""
        rng = self.rng
        alphabets = [(0x20, 0x7E), (0x80, 0x7FF), (0x400, 0x4FF), (0x1F600, 0x1F64F), (0, 0x1F)]
        chars = []
        for _ in range(length):
            low, high = rng.choice(alphabets)
            chars.append(chr(rng.randint(low, high)))
        if rng.random() < 0.05:
            chars.insert(rng.randint(0, len(chars)), "\ud800")
        return "".join(chars)

    # -- bodies ------------------------------------------------------------------------

    def body(self, op: Operation, probe: Probe) -> None:
        if op.body is None:
            if self.rng.random() < 0.05:
                probe.body = self.garbage()
            return
        if "multipart/form-data" in op.body:
            self.value_body(probe)
            return
        schema = op.body["application/json"]["schema"]
        probe.body = self.json_body(schema)
        if self.rng.random() < 0.9:
            probe.headers.append(("Content-Type", "application/json"))

    def json_body(self, schema: dict[str, Any]) -> bytes:
        rng = self.rng
        kind = rng.choices(
            ["valid", "shape", "truncated", "deep", "huge", "garbage", "empty", "odd"],
            weights=[55, 10, 7, 8, 2, 5, 4, 9],
        )[0]
        valid = json.dumps(self.sample(schema)).encode()
        if kind == "valid":
            return valid
        if kind == "shape":
            return json.dumps(self.junk_json(3)).encode()
        if kind == "truncated":
            return valid[: rng.randint(0, max(0, len(valid) - 1))]
        if kind == "deep":
            return self.deep_in(schema)
        if kind == "huge":
            return self.huge_json(schema)
        if kind == "garbage":
            return self.garbage()
        if kind == "empty":
            return b""
        return rng.choice(
            [b"NaN", b"[1e400]", b'{"title": 1' + b"0" * 5000 + b"}", b'{"a":1,"a":2}',
             b'"\\ud800"', b'{"title": "\\ud800"}', b"\xef\xbb\xbf{}", "{}".encode("utf-16"),
             b'[{"key": "\\udfff", "value": "v"}]', b"null", b"[]", b"{}", b"-0", b"\x00"]
        )  # fmt: skip

    def deep_in(self, schema: dict[str, Any]) -> bytes:
        """A body of the expected shape with something nested deep inside."""
        depth = self.rng.choice([*DEEP_DEPTHS, self.rng.randint(900, 1000)])
        deep = self.deep(depth)
        shape = self.rng.choice([b"%s", b'{"title": %s}', b'{"keys": %s}', b'{"keys": ["k0"],'
                                 b' "type": %s}', b'[{"key": "k0", "value": "v", "metadata": %s}]',
                                 b'[{"key": "k0", "value": "v", "expiration": %s}]'])  # fmt: skip
        return shape % deep

    def deep(self, depth: int) -> bytes:
        if self.rng.random() < 0.5:
            return b"[" * depth + b"]" * depth
        return b'{"a":' * depth + b"1" + b"}" * depth

    def huge_json(self, schema: dict[str, Any]) -> bytes:
        """Big arrays: bulk bodies at and past their limits, and megabytes of junk."""
        rng = self.rng
        count = rng.choice([100, 101, 1000, 10_000, 10_001, 300_000])
        if schema.get("type") == "array" and count <= 10_001:
            items = resolve(self.doc, schema["items"])
            if items.get("type") == "object":  # bulk put entries: small ones, or this is slow
                return json.dumps([{"key": f"h{i}", "value": "v"} for i in range(count)]).encode()
            return json.dumps([f"h{i}" for i in range(count)]).encode()
        if schema.get("type") == "object" and count <= 10_001:
            return json.dumps({"keys": [f"k{i}" for i in range(count)]}).encode()
        return b"[" + b",".join([b"12345678"] * count) + b"]"

    def garbage(self) -> bytes:
        size = self.rng.choice([1, 16, 1000, 65_536, 1_000_000])
        return self.rng.randbytes(size)

    def sample(self, schema: Any, name: str = "") -> Json:
        """A value valid for ``schema`` (the subset the description uses), mostly."""
        rng = self.rng
        schema = resolve(self.doc, schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list) or kind is None:
            return self.junk_json(2)
        if kind == "object":
            props = schema.get("properties", {})
            wanted = [k for k in props if k in schema.get("required", []) or rng.random() < 0.4]
            return {k: self.sample(props[k], k) for k in wanted}
        if kind == "array":
            low = schema.get("minItems", 0)
            count = rng.randint(low, min(schema.get("maxItems", low + 4), low + 4))
            return [self.sample(schema.get("items", {}), name) for _ in range(count)]
        if kind == "integer":
            return self.integer(name, schema)
        if kind == "boolean":
            return rng.random() < 0.5
        return self.string(name)

    def string(self, name: str) -> str:
        rng = self.rng
        if name in ("key", "keys") or (name == "" and rng.random() < 0.5):
            return self.key_text().decode("utf-8", "surrogateescape")
        if name == "value" and rng.random() < 0.3:
            return rng.choice(["e30=", "!!", "aGVsbG8=", "", "x" * 70_000])
        return self.text(rng.randint(0, 20))

    def junk_json(self, depth: int) -> Json:
        rng = self.rng
        leaves: list[Json] = [None, True, 0, -1, 2**70, 1.5, 1e308, "", "k0", self.text(4)]
        if depth <= 0 or rng.random() < 0.4:
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return [self.junk_json(depth - 1) for _ in range(rng.randint(0, 4))]
        return {self.text(3): self.junk_json(depth - 1) for _ in range(rng.randint(0, 4))}

    def value_body(self, probe: Probe) -> None:
        """A value's PUT: raw bytes of any type, or a multipart body (often damaged)."""
        rng = self.rng
        if rng.random() < 0.4:
            probe.body, multipart_type = self.multipart()
            probe.headers.append(("Content-Type", multipart_type))
            return
        probe.body = rng.choice(
            [b"", b"v", b'{"json": true}', self.garbage(), self.deep(rng.choice(DEEP_DEPTHS)),
             "ünïcødé".encode(), b"x" * rng.choice([1024, 70_000, 2_000_000])]
        )  # fmt: skip
        content_type: str | None = rng.choice(
            [None, "application/octet-stream", "text/plain", "application/json", "image/png",
             "application/x-www-form-urlencoded", "text/plain; charset=utf-16", "}{"]
        )  # fmt: skip
        if content_type:
            probe.headers.append(("Content-Type", content_type))

    def multipart(self) -> tuple[bytes, str]:
        rng = self.rng
        boundary = rng.choice(["b", "----edgekv" + self.hex32(), "x" * 70, "=_=", "a b"])
        parts = self.parts()
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
        if rng.random() < 0.9:
            body += b"--" + boundary.encode() + b"--\r\n"
        if rng.random() < 0.1:
            body = b"preamble\r\n" + body + b"epilogue"
        if rng.random() < 0.05:
            body = body.replace(b"\r\n", b"\n")
        quoted = rng.random() < 0.2
        shown = f'"{boundary}"' if quoted or " " in boundary else boundary
        return body, f"multipart/form-data; boundary={shown}"

    def parts(self) -> list[bytes]:
        rng = self.rng
        value = rng.choice([b"v", b"", self.garbage(), b"--b", self.deep(995)])
        metadata = rng.choice(
            [b'{"a": 1}', b"null", b"{nope", b"\xff\xfe", b'"' + b"m" * 2000 + b'"', b"1e400",
             b'{"\\ud800": 1}', self.deep(rng.choice(DEEP_DEPTHS))]
        )  # fmt: skip
        parts = [
            self.part('name="value"' + rng.choice(["", '; filename="upload"']), value),
            self.part('name="metadata"', metadata),
        ]
        if rng.random() < 0.3:
            parts.pop(rng.randrange(len(parts)))
        if rng.random() < 0.3:
            parts.append(self.odd_part())
        rng.shuffle(parts)
        return parts

    def part(self, disposition: str, content: bytes, extra: str = "") -> bytes:
        head = f"Content-Disposition: form-data; {disposition}\r\n{extra}\r\n"
        return head.encode("utf-8", "surrogateescape") + content

    def odd_part(self) -> bytes:
        rng = self.rng
        return rng.choice(
            [self.part('name="value"', b"second value"),
             self.part('name="other"', b"ignored"),
             self.part("", b"no name"),
             b"\r\nno headers at all",
             self.part('name="value"', b"x", "Content-Length: -5\r\n"),
             self.part('name="value"', b"x", "Content-Length: abc\r\n"),
             self.part('name="value"', b"x", "Content-Length: 99999999\r\n"),
             self.part('name="value"', b"eA==", "Content-Transfer-Encoding: base64\r\n"),
             self.part('name="value"', b"\x1f\x8bjunk", "Content-Encoding: gzip\r\n"),
             self.part('name="value"', b"--i\r\n\r\nx\r\n--i--",
                       "Content-Type: multipart/mixed; boundary=i\r\n"),
             self.part("name*=UTF-8''%E2%82%AC", b"rfc 5987"),
             self.part('name="val\\"ue"', b"escaped"),
             b"Content-Disposition: attachment\r\n\r\nnot form-data"]
        )  # fmt: skip


# -- mutations ---------------------------------------------------------------------------------

Mutation = Callable[[Draw, Probe], None]


def _odd_method(d: Draw, p: Probe) -> None:
    p.method = d.rng.choice([*ODD_METHODS, "GET", "PUT", "POST", "DELETE"])


def _unlawful_method(d: Draw, p: Probe) -> None:
    p.method = d.rng.choice(UNLAWFUL_METHODS)
    p.lawful = False


def _connect(d: Draw, p: Probe) -> None:
    p.method = "CONNECT"
    if d.rng.random() < 0.5:
        p.path, p.query, p.body = "127.0.0.1:443", None, b""


def _options_star(d: Draw, p: Probe) -> None:
    p.method, p.path, p.query = "OPTIONS", "*", None


def _segments(d: Draw, p: Probe, change: Callable[[list[str], int], object]) -> None:
    segments = p.path.split("/")
    if len(segments) > 1:
        change(segments, d.rng.randrange(1, len(segments)))
        p.path = "/".join(segments)


def _leading_slashes(d: Draw, p: Probe) -> None:
    p.path = p.path.replace("/accounts/", d.rng.choice(["//accounts/", "///accounts/"]), 1)


def _double_slash(d: Draw, p: Probe) -> None:
    _segments(d, p, lambda s, i: s.insert(i, ""))


def _dot_segment(d: Draw, p: Probe) -> None:
    _segments(d, p, lambda s, i: s.insert(i, d.rng.choice([".", "..", "%2e%2e", "%2E"])))


def _trailing_slash(d: Draw, p: Probe) -> None:
    p.path += "/"


def _drop_segment(d: Draw, p: Probe) -> None:
    _segments(d, p, lambda s, i: s.pop(i))


def _extra_segment(d: Draw, p: Probe) -> None:
    extra = ["x", "values", "bulk", "get", "delete", "keys", "%2F", "metadata", "values/k"]
    p.path += "/" + d.rng.choice(extra)


def _swap_namespace(d: Draw, p: Probe) -> None:
    parts = p.path.split("/namespaces/", 1)
    if len(parts) == 2:
        rest = parts[1].split("/", 1)
        rest[0] = d.namespace_id()
        p.path = parts[0] + "/namespaces/" + "/".join(rest)


def _swap_account(d: Draw, p: Probe) -> None:
    for account in (ACCOUNT_A, ACCOUNT_B, ACCOUNT_C):
        if account in p.path:
            other = d.rng.choice(
                [ACCOUNT_A, ACCOUNT_B, ACCOUNT_C, account.upper(), account[:31], "%61" * 32, ""]
            )
            p.path = p.path.replace(account, other, 1)
            return


def _huge_segment(d: Draw, p: Probe) -> None:
    size = d.rng.choice([2000, 6000, 9000, 70_000])
    _segments(d, p, lambda s, i: s.insert(i, "a" * size))


def _prefix(d: Draw, p: Probe) -> None:
    other = d.rng.choice(["", "/client/v5", "/Client/v4", "/client/v4/client/v4", "/client"])
    p.path = p.path.replace("/client/v4", other, 1)


def _absolute_form(d: Draw, p: Probe) -> None:
    p.path = "http://127.0.0.1" + p.path


def _fragment(d: Draw, p: Probe) -> None:
    p.path += "#fragment"


def _query_junk(d: Draw, p: Probe) -> None:
    junk = ["&&&", "=x", "limit", "page=", "a=%zz", "b=%", "c=%ff", "d=%ED%A0%80", "%=1", ";x=1"]
    p.query = "&".join(filter(None, [p.query, *d.rng.sample(junk, 3)]))


def _query_repeat(d: Draw, p: Probe) -> None:
    name = d.rng.choice(["page", "per_page", "limit", "cursor", "expiration_ttl", "order"])
    values = [d.rng.choice([*JUNK_NUMBERS, "1", "100", "title"]) for _ in range(3)]
    repeated = "&".join(f"{name}={_q(v)}" for v in values)
    p.query = "&".join(filter(None, [p.query, repeated]))


def _query_numbers(d: Draw, p: Probe) -> None:
    name = d.rng.choice(["page", "per_page", "limit", "expiration", "expiration_ttl"])
    p.query = f"{name}={_q(d.rng.choice(JUNK_NUMBERS))}"


def _query_huge(d: Draw, p: Probe) -> None:
    size = d.rng.choice([3000, 7000, 9000, 100_000])
    p.query = d.rng.choice(["prefix=", "cursor=", "x="]) + "a" * size


def _auth(d: Draw, p: Probe) -> None:
    rng, tokens = d.rng, d.world.token_of
    p.drop_header("Authorization")
    choice = rng.choice(
        ["none", "empty", "bearer-only", "junk", "basic", "legacy", "legacy+bearer", "lower",
         "spaces", "long", "other", "read-only", "duplicate", "control"]
    )  # fmt: skip
    if choice == "legacy" or choice == "legacy+bearer":
        p.headers += [("X-Auth-Email", "me@example.com"), ("X-Auth-Key", "0" * 37)]
    value = {
        "none": None,
        "empty": "",
        "bearer-only": "Bearer",
        "junk": "Bearer " + d.hex32(),
        "basic": "Basic YTpi",
        "legacy": None,
        "legacy+bearer": f"Bearer {tokens['a']}",
        "lower": f"bearer {tokens['a']}",
        "spaces": f"  Bearer   {tokens['a']}  ",
        "long": "Bearer " + "t" * rng.choice([256, 257, 5000]),
        "other": f"Bearer {tokens['b']}",
        "read-only": f"Bearer {tokens['a-ro']}",
        "duplicate": f"Bearer {tokens['b']}",
        "control": f"Bearer {tokens['a']}\x7f",
    }[choice]
    if value is not None:
        p.headers.append(("Authorization", value))
    if choice == "duplicate":
        p.headers.append(("Authorization", f"Bearer {tokens['a']}"))
    if choice == "control":
        p.lawful = False  # DEL is no character a field value may hold
    p.notes.append(f"auth:{choice}")


def _content_type(d: Draw, p: Probe) -> None:
    choice = d.rng.choice(
        ["", "text/plain", "application/json; charset=latin-1", "multipart/form-data",
         "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "x" * 100,
         "multipart/form-data; boundary=nope", 'multipart/form-data; boundary="unclosed',
         "multipart/mixed; boundary=b", "application/x-www-form-urlencoded", "garbage/"]
    )  # fmt: skip
    if choice:
        p.set_header("Content-Type", choice)
    else:
        p.drop_header("Content-Type")


def _junk_header(d: Draw, p: Probe) -> None:
    size = d.rng.choice([10, 7000, 9000])
    value = d.rng.choice(["j" * size, "ünïcødé", "a\tb", "(){}<>@,;:"])
    p.headers.append((d.rng.choice(["X-Junk", "Accept", "Cookie", "Expect"]), value))


def _expect_continue(d: Draw, p: Probe) -> None:
    p.set_header("Expect", "100-continue")


def _content_encoding(d: Draw, p: Probe) -> None:
    codings = ["gzip", "deflate", "gzip-garbage", "br", "identity", "zzz", "bomb"]
    coding = d.rng.choices(codings, weights=[5, 5, 3, 1, 2, 2, 1])[0]
    if coding == "gzip":
        p.body = gzip.compress(p.body)
    elif coding == "deflate":
        p.body = zlib.compress(p.body)
    elif coding == "gzip-garbage":
        p.body, coding, p.lawful = b"\x1f\x8b" + p.body, "gzip", False
    elif coding == "br":
        p.lawful = False  # aiohttp refuses it unless Brotli is installed
    elif coding == "bomb":
        p.body, coding = _bomb(), "deflate"
    p.set_header("Content-Encoding", coding)


_BOMB: list[bytes] = []


def _bomb() -> bytes:
    """Deflated zeros that inflate past the 100 MiB a body may be (made once)."""
    if not _BOMB:
        _BOMB.append(zlib.compress(bytes(101 * 1024 * 1024), 9))
    return _BOMB[0]


def _body_garbage(d: Draw, p: Probe) -> None:
    p.body = d.garbage()
    _damages_coding(p)


def _body_truncate(d: Draw, p: Probe) -> None:
    p.body = p.body[: d.rng.randint(0, len(p.body))]
    _damages_coding(p)


def _body_empty(d: Draw, p: Probe) -> None:
    p.body = b""
    _damages_coding(p)


def _damages_coding(p: Probe) -> None:
    """A body changed after it was compressed is a damaged content coding."""
    if p.header("Content-Encoding") in ("gzip", "deflate"):
        p.lawful = False


def _http10(d: Draw, p: Probe) -> None:
    p.version = "HTTP/1.0"


def _no_host(d: Draw, p: Probe) -> None:
    p.with_host = False


def _chunked(d: Draw, p: Probe) -> None:
    p.framing = "chunked"
    p.chunks = [d.rng.randint(1, 4096) for _ in range(d.rng.randint(0, 5))]


def _bad_framing(d: Draw, p: Probe) -> None:
    p.framing = d.rng.choice(["bad-chunks", "short", "half-close"])
    p.chunks = [d.rng.randint(1, 64)]
    p.lawful = False
    if not p.body:
        p.body = b'{"title": "t"}'


MUTATIONS_W: list[tuple[str, Mutation, int]] = [
    ("odd-method", _odd_method, 6),
    ("unlawful-method", _unlawful_method, 2),
    ("connect", _connect, 1),
    ("options-star", _options_star, 1),
    ("leading-slashes", _leading_slashes, 3),
    ("double-slash", _double_slash, 3),
    ("dot-segment", _dot_segment, 3),
    ("trailing-slash", _trailing_slash, 2),
    ("drop-segment", _drop_segment, 2),
    ("extra-segment", _extra_segment, 3),
    ("swap-namespace", _swap_namespace, 5),
    ("swap-account", _swap_account, 4),
    ("huge-segment", _huge_segment, 2),
    ("prefix", _prefix, 2),
    ("absolute-form", _absolute_form, 1),
    ("fragment", _fragment, 1),
    ("query-junk", _query_junk, 4),
    ("query-repeat", _query_repeat, 3),
    ("query-numbers", _query_numbers, 5),
    ("query-huge", _query_huge, 2),
    ("auth", _auth, 10),
    ("content-type", _content_type, 6),
    ("junk-header", _junk_header, 2),
    ("expect-continue", _expect_continue, 1),
    ("content-encoding", _content_encoding, 3),
    ("body-garbage", _body_garbage, 4),
    ("body-truncate", _body_truncate, 4),
    ("body-empty", _body_empty, 2),
    ("http10", _http10, 1),
    ("no-host", _no_host, 1),
    ("chunked", _chunked, 3),
    ("bad-framing", _bad_framing, 2),
]
MUTATIONS = [(name, mutate) for name, mutate, _ in MUTATIONS_W]


# -- the wire ------------------------------------------------------------------------------------


class Wire:
    """One keep-alive HTTP/1.1 connection to the node that sends raw bytes."""

    def __init__(self, port: int) -> None:
        self.host = f"127.0.0.1:{port}"
        self._port = port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def exchange(self, probe: Probe) -> Answer | None:
        """The answer, or None when the node closed the connection without one."""
        for _ in range(2):
            fresh = self._conn is None
            reader, writer = await self._connect()
            try:
                return await asyncio.wait_for(
                    self._send(probe, reader, writer), self._timeout(probe)
                )
            except TimeoutError:
                if probe.lawful:
                    raise
                return None
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if fresh:  # a stale keep-alive connection gets one more try, a fresh one none
                    return None
            finally:
                # After malformed HTTP, or a CONNECT (whose body aiohttp leaves unread), a new
                # connection: what is left of the request must not be taken for the next one.
                if not probe.lawful or probe.method == "CONNECT":
                    await self.close()
        return None

    @staticmethod
    def _timeout(probe: Probe) -> float:
        return ANSWER_TIMEOUT_S if probe.lawful else UNLAWFUL_TIMEOUT_S

    async def _send(
        self, probe: Probe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Answer:
        writer.write(probe.encode(self.host))
        if probe.framing == "half-close":
            writer.write_eof()
        await writer.drain()
        answer = await read_answer(reader, head=probe.method == "HEAD")
        if answer.closes or answer.status == 417:
            await self.close()
        return answer

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            self._conn = await asyncio.open_connection("127.0.0.1", self._port, limit=2**20)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def read_answer(reader: asyncio.StreamReader, head: bool) -> Answer:
    while True:
        raw = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = raw.rstrip("\r\n").split("\r\n")
        version, status = status_line.split(" ", 2)[:2]
        if status != "100":  # after a 100 Continue, the answer itself
            break
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if head or status in ("204", "304"):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", ""):
        body = await _read_chunks(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return Answer(int(status), version, headers, body)


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    out = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        out.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return b"".join(out)


# -- judging answers ------------------------------------------------------------------------------


class LogTrap(logging.Handler):
    """Every record at WARNING or above, or with a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        taken, self.records = self.records, []
        return taken


def aiohttp_log(record: logging.LogRecord) -> str | None:
    """What aiohttp logged with a traceback of its own accord, for malformed HTTP: a request
    its parser refused, a body it could not decode, a client that left mid-body."""
    exc = record.exc_info[1] if record.exc_info else None
    known = HttpProcessingError | RequestPayloadError | ConnectionResetError
    if record.name.startswith("aiohttp") and isinstance(exc, known):
        return f"{record.getMessage()}: {type(exc).__name__}"
    return None


def parser_refused(answer: Answer) -> bool:
    """aiohttp's HTTP parser's plain-text 400, which closes the connection."""
    return not answer.is_json and answer.status == 400 and answer.closes


def aiohttp_answered(probe: Probe, answer: Answer) -> str | None:
    """Which answer aiohttp gave itself, before the node's code, to a request that is
    lawful HTTP: its plain-text 404 for a target without a path (``OPTIONS *``,
    ``CONNECT host:port``), its plain-text 417 for an ``Expect`` other than 100-continue."""
    if answer.is_json:
        return None
    pathless = not probe.path.removeprefix("http://127.0.0.1").startswith("/")
    if answer.status == 404 and (probe.method == "CONNECT" or pathless):
        return f"404 to a target without a path, {probe.method} (aiohttp's router)"
    expect = probe.header("Expect")
    if answer.status == 417 and expect is not None and expect.lower() != "100-continue":
        return "417 to Expect: other than 100-continue"
    return None


class Oracle:
    """Judges an answer against the description, the router and who asked."""

    def __init__(self, doc: dict[str, Any], world: World, ops: list[Operation]) -> None:
        self.doc = doc
        self.world = world
        self.by_op = routed_operations(ops)
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource("urn:edgekv:api", resource)
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def judge(self, probe: Probe, answer: Answer | None) -> list[str]:
        if answer is None:
            return [] if not probe.lawful else ["no answer"]
        if answer.status >= 500:
            return [f"answered {answer.status}: {answer.body[:400]!r}"]
        if parser_refused(answer):
            if probe.lawful:
                return [f"aiohttp's HTTP parser refused it: {answer.body[:300]!r}"]
            return []
        if aiohttp_answered(probe, answer):
            return []
        if not probe.lawful:  # aiohttp's parser may read malformed HTTP as another request
            return [] if answer.status < 400 else self._envelope(probe, answer, FAILURE)
        try:
            route = match(probe.method, probe.path)
        except KVError as exc:
            if self._node_own(answer):
                return []
            return self._refused(probe, answer, exc.http_status, REGISTRY[exc.kind].api_code)
        return self._routed(probe, answer, route)

    def _node_own(self, answer: Answer) -> bool:
        """An answer of /healthz or /client/v4/openapi.json (aiohttp routes those)."""
        if answer.status != 200 or not answer.is_json:
            return False
        if not answer.body:  # HEAD
            return True
        body = answer.json()
        return body == self.doc or (isinstance(body, dict) and body.get("status") == "SERVING")

    def _refused(self, probe: Probe, answer: Answer, status: int, code: int) -> list[str]:
        problems = []
        if answer.status != status:
            problems.append(f"answered {answer.status}, the router says {status}")
        problems += self._envelope(probe, answer, FAILURE)
        if not problems and probe.method != "HEAD" and answer.json()["errors"][0]["code"] != code:
            problems.append(f"error code {answer.json()['errors'][0]['code']}, not {code}")
        return problems

    def _routed(self, probe: Probe, answer: Answer, route: Route) -> list[str]:
        op = self.by_op[route.op]
        status = str(answer.status)
        if status not in op.responses:
            return [f"{op.op_id} answered {status}, not documented: {answer.body[:300]!r}"]
        problems = self._may(probe, route) if 200 <= answer.status < 300 else []
        if route.op is Op.GET_VALUE and answer.status == 200:
            if answer.headers.get("content-type") != "application/octet-stream":
                problems.append(f"a value with {answer.headers.get('content-type')}")
            return problems
        problems += self._envelope(probe, answer, op.responses[status])
        if route.op is Op.LIST_KEYS and answer.status == 200 and not problems:
            self._keep_cursor(answer.json()["result_info"]["cursor"])
        return problems

    def _may(self, probe: Probe, route: Route) -> list[str]:
        """Problems with a 2xx: the caller had no right to it."""
        who = self.world.identity(probe)
        if who is None:
            return ["2xx without a valid token"]
        account, read_only = who
        problems: list[str] = []
        if route.op in ACCOUNTLESS:  # who the token is: any valid token may ask
            return problems
        if account != route.account_id:
            problems.append(f"2xx for account {route.account_id} with a token of {account}")
        if read_only and route.op in WRITES:
            problems.append("2xx for a write with a read-only token")
        if route.namespace_id == self.world.canary_namespace:
            problems.append("2xx on the canary's namespace")
        return problems

    def _envelope(self, probe: Probe, answer: Answer, pointer: str) -> list[str]:
        if not answer.is_json:
            return [f"{answer.status} is not JSON: {answer.headers.get('content-type')}"]
        if probe.method == "HEAD":
            return []
        try:
            body = answer.json()
        except ValueError:
            return [f"{answer.status} is not JSON: {answer.body[:200]!r}"]
        error = jsonschema.exceptions.best_match(self._validator(pointer).iter_errors(body))
        return [] if error is None else [f"{answer.status} body: {error.message[:300]}"]

    def _validator(self, pointer: str) -> jsonschema.Draft202012Validator:
        if pointer not in self._validators:
            schema = {"$ref": "urn:edgekv:api" + pointer}
            self._validators[pointer] = jsonschema.Draft202012Validator(
                schema, registry=self._registry
            )
        return self._validators[pointer]

    def _keep_cursor(self, cursor: str) -> None:
        if cursor:
            self.world.cursors = [*self.world.cursors[-20:], cursor]


def routed_operations(ops: list[Operation]) -> dict[Op, Operation]:
    """Which operation of the description each of the router's operations is (the node's
    own routes, /healthz and the description itself, are none of them)."""
    found = {}
    for op in ops:
        try:
            route = match(op.method, fill(op.template, ACCOUNT_A, "0" * 32, "k"))
        except KVError:
            continue
        found[route.op] = op
    return found


# -- the fuzzer ------------------------------------------------------------------------------


@dataclass
class Failure:
    seed: int
    index: int
    what: str
    request: str

    def __str__(self) -> str:
        return f"{self.what} (seed {self.seed}, request {self.index}): {self.request}"


@dataclass
class Report:
    requests: int = 0
    seconds: float = 0.0
    by_status: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    ok_by_operation: Counter[str] = field(default_factory=Counter)
    by_mutation: Counter[str] = field(default_factory=Counter)
    parser_refusals: int = 0
    aiohttp_answers: Counter[str] = field(default_factory=Counter)
    aiohttp_logs: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def fail(self, failure: Failure) -> None:
        kind = failure.what.split(":")[0][:120]
        self.kinds[kind] += 1
        if self.kinds[kind] <= 3:  # a few examples of each kind are enough
            self.failures.append(failure)

    def print(self) -> None:
        rate = self.requests / max(self.seconds, 1e-9)
        print(f"\n{self.requests} requests in {self.seconds:.0f} s ({rate:.0f}/s)")
        print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())))
        five = sum(v for k, v in self.by_status.items() if k.startswith("5"))
        print(f"5xx: {five}; refused by aiohttp's HTTP parser: {self.parser_refusals}")
        for what, count in self.aiohttp_answers.items():
            print(f"answered by aiohttp itself, not the node: {what}: {count}")
        for what, count in self.aiohttp_logs.items():
            print(f"logged by aiohttp with a traceback, for malformed HTTP: {what}: {count}")
        print("by operation: " + ", ".join(f"{k} {v}" for k, v in self.by_operation.most_common()))
        print("2xx by operation: " + ", ".join(f"{k} {v}" for k, v in self.ok_by_operation.items()))
        print("by mutation: " + ", ".join(f"{k} {v}" for k, v in self.by_mutation.most_common()))
        for kind, count in self.kinds.most_common():
            print(f"FAILURE x{count}: {kind}")
        for failure in self.failures:
            print(f"  {failure}")


class Fuzzer:
    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        self.doc = openapi_document()
        self.ops = operations(self.doc)
        self.report = Report()
        self.wire = Wire(rest.api.port)
        self.trap = LogTrap()
        self.canary: dict[str, tuple[bytes, Json]] = {}
        self.world = World({}, {}, {}, "", rest.clock.now())
        self.oracle = Oracle(self.doc, self.world, self.ops)
        self._token_c = ""

    # -- before and after ----------------------------------------------------------------------

    async def prepare(self) -> None:
        rest = self.rest
        self._token_c, _ = await rest.admin.create_token(ACCOUNT_C)
        self.world.token_of = {"a": rest.token_a, "a-ro": rest.token_a_read_only, "b": rest.token_b}
        self.world.tokens = {
            rest.token_a: (ACCOUNT_A, False),
            rest.token_a_read_only: (ACCOUNT_A, True),
            rest.token_b: (ACCOUNT_B, False),
        }
        async with edgekv.Client(central=rest.central.address, token=self._token_c) as client:
            canary = await client.create_namespace(f"canary-{time.time_ns()}")
            kv = client.namespace(canary.id)
            for index in range(CANARY_KEYS):
                key, value = f"{OWN_KEYS[index % len(OWN_KEYS)]}{index}", b"canary %d" % index
                await kv.put(key, value, metadata={"i": index})
                self.canary[key] = (value, {"i": index})
        self.world.canary_namespace = canary.id
        for account in (ACCOUNT_A, ACCOUNT_B):
            await self._restore_own(account)
        logging.getLogger().addHandler(self.trap)

    async def close(self) -> None:
        logging.getLogger().removeHandler(self.trap)
        await self.wire.close()

    async def _restore_own(self, account: str) -> None:
        """The fuzzer's namespace of ``account`` with its keys, made again if gone."""
        token = self.rest.token_a if account == ACCOUNT_A else self.rest.token_b
        async with edgekv.Client(central=self.rest.central.address, token=token) as client:
            namespace_id = self.world.own.get(account, "")
            try:
                await client.get_namespace(namespace_id or "0" * 32)
            except edgekv.NotFoundError:
                namespace_id = (await client.create_namespace(f"fuzz-{time.time_ns()}")).id
                self.world.own[account] = namespace_id
            kv = client.namespace(namespace_id)
            for key in OWN_KEYS:
                value = b"[" * 995 + b"]" * 995 if key == "deep" else b'{"v": 1}'
                await kv.put(key, value, metadata={"key": key})

    async def verify(self) -> None:
        """The canary unchanged; the fuzzer's namespaces back; created ones pruned."""
        async with edgekv.Client(central=self.rest.central.address, token=self._token_c) as client:
            kv = client.namespace(self.world.canary_namespace)
            for key, (value, metadata) in self.canary.items():
                read = await kv.get_with_metadata(key, type="bytes")
                if (read.value, read.metadata) != (value, metadata):
                    self._fail(0, -1, f"canary key {key!r} is now {read.value!r}", None)
            listed = sorted(k.name for k in (await kv.list()).keys)
            if listed != sorted(self.canary):
                self._fail(0, -1, f"canary keys changed: {listed}", None)
        await self._prune()
        for account in (ACCOUNT_A, ACCOUNT_B):
            await self._restore_own(account)
        self.world.now = self.rest.clock.now()

    async def _prune(self) -> None:
        """Delete what requests created once an account nears its 1000 namespaces."""
        for token in (self.rest.token_a, self.rest.token_b):
            async with edgekv.Client(central=self.rest.central.address, token=token) as client:
                namespaces = await client.list_namespaces()
                if len(namespaces) <= PRUNE_ABOVE:
                    continue
                for namespace in namespaces:
                    if namespace.id not in self.world.own.values():
                        await client.delete_namespace(namespace.id)

    # -- requests ------------------------------------------------------------------------------

    async def run(self, requests: int, seed: int, deadline: float = float("inf")) -> None:
        draw = Draw(random.Random(seed), self.doc, self.world, self.ops)
        started = time.monotonic()
        previous_lawful = True
        for index in range(requests):
            if time.monotonic() > deadline:
                break
            probe = draw.probe()
            try:
                answer = await self.wire.exchange(probe)
            except TimeoutError:
                self._fail(seed, index, f"no answer within {ANSWER_TIMEOUT_S:.0f} s", probe)
                await self.wire.close()
                continue
            await asyncio.sleep(0 if probe.lawful else 0.005)  # let aiohttp log what it logs
            self._count(probe, answer)
            for what in self.oracle.judge(probe, answer):
                self._fail(seed, index, what, probe)
            for what in self._log_problems(probe.lawful and previous_lawful):
                self._fail(seed, index, what, probe)
            if self.rest.api.service.unforeseen:
                self._fail(seed, index, "the node counted an unforeseen error", probe)
                self.rest.api.service.unforeseen = 0
            await self._repair(probe, answer)
            previous_lawful = probe.lawful
        self.report.seconds += time.monotonic() - started

    def _count(self, probe: Probe, answer: Answer | None) -> None:
        report = self.report
        report.requests += 1
        report.by_status[str(answer.status) if answer else "no answer"] += 1
        report.by_operation[probe.notes[0]] += 1
        if answer is not None and 200 <= answer.status < 300:
            report.ok_by_operation[probe.notes[0]] += 1
        for note in probe.notes[1:]:
            report.by_mutation[note] += 1
        if answer is not None and parser_refused(answer):
            report.parser_refusals += 1
        if answer is not None and (own := aiohttp_answered(probe, answer)):
            report.aiohttp_answers[own] += 1

    def _log_problems(self, lawful: bool) -> list[str]:
        problems = []
        for record in self.trap.take():
            known = aiohttp_log(record)
            if not lawful and known:
                self.report.aiohttp_logs[known] += 1
                continue
            text = record.getMessage()
            if record.exc_info:
                text += " | " + logging.Formatter().formatException(record.exc_info)[-1500:]
            problems.append(f"logged {record.levelname} by {record.name}: {text}")
        return problems

    async def _repair(self, probe: Probe, answer: Answer | None) -> None:
        """Put back at once a namespace of the fuzzer's that a request deleted."""
        if answer is None or answer.status != 200 or probe.method != "DELETE":
            return
        for account, namespace_id in list(self.world.own.items()):
            if probe.path.endswith(namespace_id) or probe.path.endswith(namespace_id + "/"):
                await self._restore_own(account)

    def _fail(self, seed: int, index: int, what: str, probe: Probe | None) -> None:
        request = probe.describe() if probe is not None else "-"
        self.report.fail(Failure(seed, index, what, request))


@dataclass
class Settings:
    requests: int
    seed: int
    minutes: float
    check_every: int


async def fuzz(folder: Path, settings: Settings, progress: bool = True) -> Report:
    """Start a central and an API node in ``folder``, fuzz them, stop them."""
    rest = await start_rest(folder, write_rate_limit=False)
    fuzzer = Fuzzer(rest)
    try:
        with warnings.catch_warnings():
            # aiohttp warns of every odd Content-Disposition a fuzzed multipart part has
            warnings.simplefilter("ignore", BadContentDispositionHeader)
            await fuzzer.prepare()
            await rounds(fuzzer, settings, progress)
    finally:
        await fuzzer.close()
        await stop_rest(rest)
    return fuzzer.report


async def rounds(fuzzer: Fuzzer, settings: Settings, progress: bool) -> None:
    """Rounds of ``check_every`` requests, seeds ``seed``, ``seed + 1``, …, each verified."""
    deadline = time.monotonic() + settings.minutes * 60
    seed = settings.seed
    while fuzzer.report.requests < settings.requests and time.monotonic() < deadline:
        chunk = min(settings.check_every, settings.requests - fuzzer.report.requests)
        await fuzzer.run(chunk, seed, deadline)
        try:
            await fuzzer.verify()
        except edgekv.KVError as exc:  # say so with the report, rather than lose the report
            fuzzer.report.fail(Failure(seed, -1, f"verifying after the round failed: {exc}", "-"))
            return
        seed += 1
        if progress:
            print(f"\r{fuzzer.report.requests:>9} requests", end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.api", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000, help="at most this many")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=15.0, help="at most this long")
    parser.add_argument("--check-every", type=int, default=1000, metavar="N")
    args = parser.parse_args(argv)
    settings = Settings(args.requests, args.seed, args.minutes, args.check_every)
    with tempfile.TemporaryDirectory(prefix="edgekv-api-fuzz-") as folder:
        report = asyncio.run(fuzz(Path(folder), settings))
    report.print()
    if report.failures:
        return 1
    print("no failure: no 5xx, every answer as described, clean logs, the canary unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
