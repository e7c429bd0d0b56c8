"""The scenarios both sides run: the KV binding's whole surface, its limits at their edges.

Theory of operation: a :class:`Scenario` is a name and a list of binding calls
with JavaScript's arguments (see :mod:`.codec` for the tags); each runs on a
namespace of its own. A scenario never writes one key twice, except where the
one-write-per-second rule is what it is about: Miniflare has no such rule.
Names are stable — the table of accepted differences in ``docs/fidelity.md``
refers to them — so add scenarios at the end of a group, and rename none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.differential.codec import UNDEFINED, CursorOf, NowPlus

MiB = 1024 * 1024
MAX_VALUE_BYTES = 25 * MiB
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple[Any, ...]

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "args": list(self.args)}


@dataclass(frozen=True)
class Scenario:
    name: str
    calls: tuple[Call, ...]


def get(*args: Any) -> Call:
    return Call("get", args)


def meta(*args: Any) -> Call:
    return Call("getWithMetadata", args)


def put(*args: Any) -> Call:
    return Call("put", args)


def delete(*args: Any) -> Call:
    return Call("delete", args)


def listing(options: dict[str, Any] | None = None) -> Call:
    return Call("list", () if options is None else (options,))


def pause(seconds: float) -> Call:
    """Both sides wait (not a binding method): one write per second to a key is the rule."""
    return Call("pause", (seconds,))


def scenario(name: str, *calls: Call) -> Scenario:
    return Scenario(name, calls)


def _keys(count: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(count)]


def _text_and_types() -> list[Scenario]:
    invalid_utf8 = bytes.fromhex("61ff62edb080efbbbf63")  # a, 0xff, b, a surrogate, BOM, c
    return [
        scenario(
            "text-round-trip",
            put("k", "hello"),
            get("k"),
            get("k", "text"),
            get("k", {"type": "text"}),
            meta("k"),
            meta("k", "text"),
        ),
        scenario(
            "unicode-text",
            put("ключ", "значение ✓ 😀"),
            get("ключ"),
            get("ключ", "arrayBuffer"),
            listing(),
        ),
        scenario(
            "invalid-utf8-as-text",
            put("bad", invalid_utf8),
            put("truncated", bytes.fromhex("e282")),
            get("bad"),
            get("truncated"),
            get("bad", "arrayBuffer"),
            get("bad", "stream"),
            meta("bad"),
            get(["bad", "truncated"]),
            get(["bad"], "text"),
            meta(["bad", "truncated"]),
        ),
        scenario(
            "byte-order-mark",
            put("text", bytes.fromhex("efbbbf") + b"hi"),
            put("json", bytes.fromhex("efbbbf") + b"{}"),
            get("text"),
            get("json", "json"),
            get("json", "arrayBuffer"),
            get(["json"], "json"),
        ),
        scenario(
            "json-values",
            put("object", '{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}'),
            put("number", "42"),
            put("string", '"s"'),
            put("null", "null"),
            put("spaces", "  [1, 2]  "),
            get("object", "json"),
            get("number", {"type": "json"}),
            get("string", "json"),
            get("null", "json"),
            get("spaces", "json"),
            meta("object", "json"),
        ),
        scenario(
            "json-not-json",
            put("nan", "NaN"),
            put("minus-infinity", "-Infinity"),
            put("infinity", "Infinity"),
            put("huge", "1e400"),
            put("empty", ""),
            put("text", "hello"),
            put("trailing", "{} x"),
            get("nan", "json"),
            get("minus-infinity", "json"),
            get("infinity", "json"),
            get("huge", "json"),
            get("empty", "json"),
            get("text", "json"),
            get("trailing", "json"),
            get("missing", "json"),
        ),
        scenario(
            "json-many",
            put("a", '{"x":1}'),
            put("b", "[2]"),
            put("c", "not json"),
            get(["a", "b", "missing"], "json"),
            get(["a", "c"], "json"),
            meta(["a", "b"], "json"),
            meta(["a", "c"], {"type": "json"}),
        ),
        scenario(
            "binary",
            put("k", bytes(range(256))),
            get("k", "arrayBuffer"),
            get("k", "stream"),
            get("k", {"type": "arrayBuffer"}),
            meta("k", "arrayBuffer"),
            meta("k", "stream"),
        ),
        scenario(
            "unknown-types",
            put("k", "v"),
            get("missing", "blob"),
            get("k", "blob"),
            get("missing", {"type": "blob"}),
            get("k", {"type": "BLOB"}),
            meta("k", "blob"),
            meta("missing", "blob"),
            get(["k"], "blob"),
            get(["k"], "arrayBuffer"),
            get(["k"], "stream"),
        ),
        scenario(
            "empty-value",
            put("k", ""),
            get("k"),
            get("k", "arrayBuffer"),
            meta("k"),
            get(["k"]),
            listing(),
        ),
        scenario(
            "lone-surrogate-value",
            put("k", "bad \udc00 value"),
            put("high", "\ud800 end"),
            get("k", "arrayBuffer"),
            get("k"),
            get("high", "arrayBuffer"),
        ),
        scenario(
            "lone-surrogate-key",
            put("bad \udc00 key", "v"),
            get("bad \udc00 key"),
            meta("bad \udc00 key"),
            delete("bad \udc00 key"),
            get(["ok", "bad \udc00 key"]),
            listing({"prefix": "bad \udc00"}),
        ),
        scenario(
            "missing-keys",
            get("missing"),
            get("missing", "arrayBuffer"),
            get("missing", "stream"),
            meta("missing"),
            meta("missing", "json"),
            get(["missing", "also-missing"]),
            meta(["missing"]),
        ),
    ]


def _keys_and_values() -> list[Scenario]:
    return [
        scenario(
            "key-length",
            put("a" * 512, "v"),
            put("b" * 513, "v"),
            get("a" * 512),
            get("b" * 513),
            meta("b" * 513),
            delete("b" * 513),
            put("é" * 256, "v"),
            put("é" * 256 + "x", "v"),
            put("😀" * 128, "v"),
            put("😀" * 128 + "x", "v"),
            listing({"limit": 10}),
        ),
        scenario(
            "reserved-and-odd-keys",
            put("", "v"),
            put(".", "v"),
            put("..", "v"),
            put("...", "v"),
            put("./x", "v"),
            put("a/b", "v"),
            put("with space", "v"),
            put("100%", "v"),
            put("q?x=1", "v"),
            put("h#1", "v"),
            put("plus+sign", "v"),
            put("back\\slash", "v"),
            put("tab\tnewline\n", "v"),
            put("nul\x00byte", "v"),
            get(""),
            get("."),
            get(".."),
            get("..."),
            get("a/b"),
            get("100%"),
            get("q?x=1"),
            get("h#1"),
            get("nul\x00byte"),
            meta(""),
            delete(""),
            delete("."),
            listing(),
        ),
        scenario(
            "value-size",
            put("exact", "a" * MAX_VALUE_BYTES),
            put("over", "a" * (MAX_VALUE_BYTES + 1)),
            get("over"),
            listing(),
        ),
        scenario(
            "value-argument-types",
            put("bytes", b"\x00\x01"),
            put("number", 42),
            put("none", None),
            get("bytes", "arrayBuffer"),
        ),
        scenario(
            "key-argument-types",
            put(42, "v"),
            get(42),
            put(None, "v"),
            delete(42),
        ),
    ]


def _metadata() -> list[Scenario]:
    big = {"x": "a" * 1016}  # {"x":"…"} is 1,024 bytes of JSON
    return [
        scenario(
            "metadata-round-trip",
            put("object", "v", {"metadata": {"a": 1, "b": [True, None, "x"], "c": {"d": 2.5}}}),
            put("string", "v", {"metadata": "just a string"}),
            put("number", "v", {"metadata": 7}),
            put("array", "v", {"metadata": [1, "two"]}),
            put("false", "v", {"metadata": False}),
            put("unicode", "v", {"metadata": {"ключ": "✓😀"}}),
            put("none", "v", {"metadata": None}),
            meta("object"),
            meta("string"),
            meta("number"),
            meta("array"),
            meta("false"),
            meta("unicode"),
            meta("none"),
            get("object"),
            listing(),
        ),
        scenario(
            "metadata-size",
            put("exact", "v", {"metadata": big}),
            put("over", "v", {"metadata": {"x": "a" * 1017}}),
            put("multibyte-over", "v", {"metadata": {"x": "é" * 509}}),
            meta("exact"),
            meta("over"),
            # JSON.stringify writes 1.0 as 1 and 1e16 as 10000000000000000: the limit
            # counts those bytes ({"x":"a…a","n":1} is 1,024 bytes).
            put("whole-float", "v", {"metadata": {"x": "a" * 1010, "n": 1.0}}),
            put("big-float", "v", {"metadata": {"n": 1e16, "m": 1e21, "f": 2.5e-3}}),
            listing({"prefix": "big"}),
        ),
        scenario(
            "metadata-not-json",
            put("nan", "v", {"metadata": {"x": float("nan")}}),
            put("bare-nan", "v", {"metadata": float("nan")}),
            put("infinity", "v", {"metadata": [float("inf"), float("-inf")]}),
            meta("nan"),
            meta("bare-nan"),
            meta("infinity"),
            listing(),
        ),
        scenario(
            "metadata-of-empty-values",
            put("empty", "", {"metadata": {"m": 1}}),
            put("full", "v", {"metadata": {"m": 2}}),
            meta("empty"),
            meta(["empty", "full"]),
            listing(),
        ),
        scenario(
            "metadata-many",
            put("a", "1", {"metadata": {"n": 1}}),
            put("b", "2"),
            meta(["a", "b", "missing"]),
            meta(["a", "b"], "json"),
            get(["a", "b"]),
        ),
    ]


def _expirations() -> list[Scenario]:
    return [
        scenario(
            "expiration-ttl",
            put("sixty", "v", {"expirationTtl": 60}),
            put("fifty-nine", "v", {"expirationTtl": 59}),
            put("zero", "v", {"expirationTtl": 0}),
            put("negative", "v", {"expirationTtl": -1}),
            put("hour", "v", {"expirationTtl": 3600}),
            put("fraction", "v", {"expirationTtl": 60.5}),
            put("string", "v", {"expirationTtl": "120"}),
            put("int32-max", "v", {"expirationTtl": INT32_MAX}),
            put("int32-over", "v", {"expirationTtl": INT32_MAX + 1}),
            put("undefined", "v", {"expirationTtl": UNDEFINED}),
            meta("sixty"),
            get("zero"),
            listing(),
        ),
        scenario(
            "expiration-absolute",
            put("sixty", "v", {"expiration": NowPlus(60)}),
            put("fifty-nine", "v", {"expiration": NowPlus(59)}),
            put("past", "v", {"expiration": 100}),
            put("zero", "v", {"expiration": 0}),
            put("negative", "v", {"expiration": -5}),
            put("hour", "v", {"expiration": NowPlus(3600)}),
            put("int32-max", "v", {"expiration": INT32_MAX}),
            put("int32-over", "v", {"expiration": 4102444800}),
            get("past"),
            listing(),
        ),
        scenario(
            "expiration-both",
            put("both", "v", {"expiration": NowPlus(7200), "expirationTtl": 3600}),
            put("both-bad-ttl", "v", {"expiration": NowPlus(7200), "expirationTtl": 1}),
            listing(),
        ),
        scenario(
            "expiration-with-metadata-listed",
            put("a", "v", {"expirationTtl": 600, "metadata": {"m": True}}),
            put("b", "v", {"metadata": "only"}),
            put("c", "v", {"expirationTtl": 900}),
            listing(),
            listing({"prefix": "a"}),
        ),
    ]


def _cache_ttl() -> list[Scenario]:
    return [
        scenario(
            "cache-ttl",
            put("k", "v"),
            get("k", {"cacheTtl": 60}),
            get("k", {"cacheTtl": 30}),
            get("k", {"cacheTtl": 30.5}),
            get("k", {"cacheTtl": 3600, "type": "json"}),
            get("k", {"cacheTtl": 29}),
            get("k", {"cacheTtl": 0}),
            get("k", {"cacheTtl": -1}),
            get("missing", {"cacheTtl": 29}),
            meta("k", {"cacheTtl": 60}),
            get(["k"], {"cacheTtl": 60}),
        ),
    ]


def _listing() -> list[Scenario]:
    ordered = ["a", "B", "é", "z", "aa", "😀", "ä", "a b", "a-b", "a/b", "Z", "0", "~"]
    paged = _keys(25)
    many = _keys(1001)
    return [
        scenario("list-order", *(put(key, "v") for key in ordered), listing()),
        scenario(
            "list-prefix",
            *(put(key, "v") for key in ["app:1", "app:2", "apple", "b:1", "ápp"]),
            listing({"prefix": "app:"}),
            listing({"prefix": "app"}),
            listing({"prefix": "á"}),
            listing({"prefix": ""}),
            listing({"prefix": UNDEFINED}),
            listing({"prefix": "nothing"}),
            listing({"prefix": "a" * 512}),
            listing({"prefix": "a" * 513}),
            listing({"prefix": "é" * 257}),
        ),
        scenario(
            "list-limit",
            *(put(key, "v") for key in _keys(5)),
            listing({"limit": 1}),
            listing({"limit": 5}),
            listing({"limit": 1000}),
            listing({"limit": 1001}),
            listing({"limit": 0}),
            listing({"limit": -1}),
            listing({"limit": 2.5}),
        ),
        scenario(
            "list-paging",
            *(put(key, str(i)) for i, key in enumerate(paged)),
            listing({"limit": 10}),
            listing({"limit": 10, "cursor": CursorOf(25)}),
            listing({"limit": 10, "cursor": CursorOf(26)}),
            listing({"limit": 10, "prefix": "k001", "cursor": UNDEFINED}),
        ),
        scenario(
            "list-bad-cursor",
            put("k", "v"),
            listing({"cursor": "not-a-cursor"}),
            listing({"cursor": ""}),
        ),
        scenario(
            "list-over-a-thousand",
            *(put(key, "v") for key in many),
            listing(),
            listing({"cursor": CursorOf(1001)}),
        ),
        scenario("list-empty-namespace", listing(), listing({"prefix": "x", "limit": 1})),
    ]


def _multi_key_reads() -> list[Scenario]:
    hundred = _keys(100)
    return [
        scenario(
            "many-limits",
            *(put(key, key) for key in hundred[:3]),
            get(hundred),
            get([*hundred, "k0100"]),
            get([]),
            meta(hundred),
            meta([*hundred, "k0100"]),
        ),
        scenario(
            "many-odd-keys",
            put("a", "1"),
            get(["a", "a"]),
            get(["", "a"]),
            get(["a", "b" * 513]),
            get(["a", "."]),
            meta(["a", ""]),
        ),
    ]


def _deletes_and_rate() -> list[Scenario]:
    return [
        scenario(
            "delete",
            put("k", "v"),
            delete("missing"),
            get("k"),
            delete("k2"),
            delete(""),
            delete("."),
            delete("b" * 513),
        ),
        scenario(
            "delete-existing",
            put("k", "v"),
            put("m", "v", {"metadata": {"a": 1}}),
            pause(1.1),
            delete("k"),
            delete("m"),
            get("k"),
            meta("m"),
            listing(),
            pause(1.1),
            delete("k"),
        ),
        scenario(
            "delete-missing-twice",
            delete("never"),
            delete("never"),
            get("never"),
            put("never", "now"),  # the deletes changed nothing: this second is the put's
            get("never"),
        ),
        scenario("rate-put-twice", put("k", "1"), put("k", "2"), get("k")),
        scenario("rate-put-then-delete", put("k", "1"), delete("k"), get("k")),
    ]


SCENARIOS: tuple[Scenario, ...] = (
    *_text_and_types(),
    *_keys_and_values(),
    *_metadata(),
    *_expirations(),
    *_cache_ttl(),
    *_listing(),
    *_multi_key_reads(),
    *_deletes_and_rate(),
)
