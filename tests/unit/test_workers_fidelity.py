"""The Python API answers as a Worker's KV binding does, at central and through an edge.

Each expectation is what Miniflare (Cloudflare's KV binding running in workerd) answered
for the same calls: its words, its HTTP statuses, its TypeErrors, its text and JSON
handling. Every test drives the real central service and a real edge in-process, on a
manual clock (:mod:`tests.support.inprocess_cluster`), and checks both nodes, since a
Worker cannot tell which one served it.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

import edgekv
from edgekv.core.errors import ErrorKind, KVError
from tests.support.inprocess_cluster import InProcessCluster

# Bytes that are not UTF-8 (ff, then a lone surrogate's WTF-8) and a byte order mark
# in the middle; workerd's text reading of them.
NOT_UTF8 = bytes.fromhex("61ff62edb080efbbbf63")
AS_WORKERS_READS_IT = "a\ufffdb\ufffd\ufffd\ufffd\ufeffc"


async def nodes(cluster: InProcessCluster) -> list[edgekv.KVNamespace]:
    """The namespace through central, and through an edge."""
    edge = await cluster.add_edge()
    return [cluster.kv, edge.kv]


async def refused(call: Any) -> KVError:
    with pytest.raises(KVError) as caught:
        await call
    return caught.value


@pytest.fixture
async def limited() -> AsyncIterator[InProcessCluster]:
    """A cluster whose central keeps the one-write-per-second rule."""
    cluster = await InProcessCluster.start(write_rate_limit=True)
    try:
        yield cluster
    finally:
        await cluster.close()


# -- 1. text is read leniently -------------------------------------------------------------


def test_pythons_replace_decodes_as_whatwgs_text_decoder() -> None:
    # What workerd's TextDecoder gave for each (one U+FFFD per maximal invalid subpart).
    seen_in_workerd = {
        "61ff62edb080efbbbf63": AS_WORKERS_READS_IT,
        "e282": "\ufffd",
        "e28241": "\ufffdA",
        "f0908d": "\ufffd",
        "c0af": "\ufffd\ufffd",
        "eda080": "\ufffd\ufffd\ufffd",
        "f4908080": "\ufffd" * 4,
        "e0808f": "\ufffd" * 3,
        "61e2": "a\ufffd",
    }
    for hex_bytes, text in seen_in_workerd.items():
        assert bytes.fromhex(hex_bytes).decode("utf-8", "replace") == text, hex_bytes


async def test_text_reads_of_bytes_that_are_not_utf8_replace_each_bad_sequence(
    cluster: InProcessCluster,
) -> None:
    await cluster.kv.put("bad", NOT_UTF8, metadata={"m": 1})
    await cluster.kv.put("bom", "\ufeffabc")
    for kv in await nodes(cluster):
        assert await kv.get("bad") == AS_WORKERS_READS_IT
        assert await kv.get("bom") == "\ufeffabc", "a byte order mark is kept"
        answer = await kv.get_with_metadata("bad", type="text")
        assert (answer.value, answer.metadata) == (AS_WORKERS_READS_IT, {"m": 1})
        # A bulk read's values are decoded by Workers' server, whose TextDecoder drops a
        # leading byte order mark (what Miniflare answers).
        assert await kv.get(["bad", "bom"]) == {"bad": AS_WORKERS_READS_IT, "bom": "abc"}
        many = await kv.get_with_metadata(["bad"])
        assert many["bad"] is not None and many["bad"].value == AS_WORKERS_READS_IT
        assert await kv.get("bad", type="bytes") == NOT_UTF8


# -- 2. JSON as JSON.parse reads it, metadata as JSON.stringify writes it ----------------


async def test_json_reads_refuse_what_json_parse_refuses(cluster: InProcessCluster) -> None:
    not_json = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "bom": "\ufeff{}"}
    for key, text in not_json.items():
        await cluster.kv.put(key, text)
    await cluster.kv.put("ok", '{"a": [1, "\\u00e9"]}')
    for kv in await nodes(cluster):
        assert await kv.get("ok", type="json") == {"a": [1, "é"]}
        for key in not_json:
            error = await refused(kv.get(key, type="json"))
            assert error.kind is ErrorKind.VALUE_NOT_JSON, key
        # A bulk read drops a leading byte order mark before JSON.parse (see above).
        assert await kv.get(["ok", "bom"], type="json") == {"ok": {"a": [1, "é"]}, "bom": {}}
        for key in ("nan", "inf", "-inf"):
            bulk = await refused(kv.get(["ok", key], type="json"))
            assert bulk.message == (
                "KV GET_BULK failed: 400 At least one of the requested keys corresponds to a "
                "non-json value"
            )
            assert isinstance(bulk, edgekv.InvalidRequestError)


async def test_metadata_with_non_finite_numbers_is_stored_as_null(
    cluster: InProcessCluster,
) -> None:
    """JSON.stringify writes NaN and ±Infinity as null; a Worker reads back null."""
    metadata = {"x": math.nan, "y": [math.inf, -math.inf, 1.5], "z": {"w": math.nan}}
    for number, kv in enumerate(await nodes(cluster)):
        await kv.put(f"k{number}", "v", metadata=metadata)
        answer = await kv.get_with_metadata(f"k{number}")
        assert answer.metadata == {"x": None, "y": [None, None, 1.5], "z": {"w": None}}


# -- 3. a value's type is looked at once a value is found --------------------------------

UNKNOWN_TYPE = (
    'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".'
)


async def test_an_unknown_type_is_a_type_error_only_when_a_value_is_found(
    cluster: InProcessCluster,
) -> None:
    await cluster.kv.put("found", "v")
    for kv in await nodes(cluster):
        assert await kv.get("missing", type="blob") is None  # type: ignore[call-overload]
        missing = await kv.get_with_metadata("missing", type="blob")  # type: ignore[call-overload]
        assert (missing.value, missing.metadata) == (None, None)
        for call in (kv.get, kv.get_with_metadata):
            with pytest.raises(TypeError) as caught:
                await call("found", type="blob")  # type: ignore[operator]
            assert isinstance(caught.value, edgekv.InvalidRequestError)
            assert str(caught.value) == UNKNOWN_TYPE


async def test_a_bulk_read_takes_only_text_and_json_whatever_it_finds(
    cluster: InProcessCluster,
) -> None:
    for kv in await nodes(cluster):
        for value_type in ("arrayBuffer", "bytes", "stream", "blob"):
            error = await refused(kv.get(["missing"], type=value_type))  # type: ignore[arg-type]
            assert error.message == (
                f'KV GET_BULK failed: 400 "{value_type}" is not a valid type. Use "json" or "text"'
            )


# -- 4. expirations in whole seconds -------------------------------------------------------


async def test_expirations_count_from_the_whole_second_now_is_in(
    cluster: InProcessCluster,
) -> None:
    cluster.clock.set(1_700_000_000.7)
    now_s = 1_700_000_000
    for number, kv in enumerate(await nodes(cluster)):
        await kv.put(f"at-{number}", "v", expiration=now_s + 60)
        error = await refused(kv.put(f"soon-{number}", "v", expiration=now_s + 59))
        assert error.message == (
            f"KV PUT failed: 400 Invalid expiration of {now_s + 59}. "
            "Expiration times must be at least 60 seconds in the future."
        )
        past = await refused(kv.put(f"past-{number}", "v", expiration=now_s))
        assert past.message == (
            f"KV PUT failed: 400 Invalid expiration of {now_s}. Please specify integer greater "
            "than the current number of seconds since the UNIX epoch."
        )
    listed = await cluster.kv.list()
    assert [key.expiration for key in listed.keys] == [now_s + 60, now_s + 60]


async def test_fractions_of_expirations_are_dropped_as_the_binding_drops_them(
    cluster: InProcessCluster,
) -> None:
    cluster.clock.set(1_700_000_000.0)
    await cluster.kv.put("ttl", "v", expiration_ttl=60.9)  # type: ignore[arg-type]
    await cluster.kv.put("at", "v", expiration=1_700_000_100.9)  # type: ignore[arg-type]
    listed = await cluster.kv.list()
    assert [(k.name, k.expiration) for k in listed.keys] == [
        ("at", 1_700_000_100),
        ("ttl", 1_700_000_060),
    ]
    for not_a_number in (math.nan, math.inf):  # the binding reads them as 0
        error = await refused(cluster.kv.put("x", "v", expiration_ttl=not_a_number))  # type: ignore[arg-type]
        assert error.message == (
            "KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0."
        )


# -- 5. lone surrogates ----------------------------------------------------------------------


async def test_text_with_lone_surrogates_is_written_as_wtf8(cluster: InProcessCluster) -> None:
    for number, kv in enumerate(await nodes(cluster)):
        await kv.put(f"lone-{number}", "bad \udc00 value")
        assert await kv.get(f"lone-{number}", type="bytes") == b"bad \xed\xb0\x80 value"
        # A pair held as two code points is one character to JavaScript.
        await kv.put(f"pair-{number}", "\ud83d\ude00\udc00")
        assert await kv.get(f"pair-{number}", type="bytes") == bytes.fromhex("f09f9880edb080")
        await kv.put(f"meta-{number}", "v", metadata={"s": "\udc00", "p": "\ud83d\ude00"})
        answer = await kv.get_with_metadata(f"meta-{number}")
        assert answer.metadata == {"s": "\udc00", "p": "😀"}


async def test_keys_with_lone_surrogates_are_refused_as_workers_refuses_them(
    cluster: InProcessCluster,
) -> None:
    """A single key travels in the URL's path, which Workers' server cannot decode."""
    for kv in await nodes(cluster):
        calls = {
            "GET": [kv.get("a\udc00"), kv.get_with_metadata("\ud800")],
            "PUT": [kv.put("\udc00", "v")],
            "DELETE": [kv.delete("\udc00")],
        }
        for operation, answers in calls.items():
            for call in answers:
                error = await refused(call)
                assert error.message == f"KV {operation} failed: 400 Could not URL-decode key name"
                assert error.kind is ErrorKind.KEY_NOT_UTF8


async def test_bulk_keys_and_prefixes_with_lone_surrogates_are_read_leniently(
    cluster: InProcessCluster,
) -> None:
    """A bulk read's keys and a list's prefix travel in a body and a query, which Workers'
    server reads leniently: each byte of the surrogate's WTF-8 a U+FFFD (as Miniflare)."""
    await cluster.kv.put("bad \ufffd\ufffd\ufffd key", "replaced")
    for kv in await nodes(cluster):
        assert await kv.get(["ok", "bad \udc00 key"]) == {
            "ok": None,
            "bad \ufffd\ufffd\ufffd key": "replaced",
        }
        listed = await kv.list(prefix="bad \udc00")
        assert [key.name for key in listed.keys] == ["bad \ufffd\ufffd\ufffd key"]


# -- 6. cacheTtl as the binding takes it ---------------------------------------------------


async def test_a_fractional_cache_ttl_counts_whole_seconds_wherever_it_is_read(
    cluster: InProcessCluster,
) -> None:
    await cluster.kv.put("k", "v")
    edge = await cluster.add_edge()
    for kv in (cluster.kv, edge.kv):
        assert await kv.get("k", cache_ttl=30.5) == "v"  # type: ignore[arg-type]
        assert await kv.get(["k"], cache_ttl=30.5) == {"k": "v"}  # type: ignore[arg-type]
        assert (await kv.list(cache_ttl=30.5)).keys[0].name == "k"  # type: ignore[arg-type]
        error = await refused(kv.get("k", cache_ttl=29.5))  # type: ignore[arg-type]
        assert error.message == (
            "KV GET failed: 400 Invalid cache_ttl of 29. Cache TTL must be at least 30."
        )
        bulk = await refused(kv.get(["k"], cache_ttl=29))
        assert bulk.message.startswith("KV GET_BULK failed: 400 Invalid cache_ttl of 29.")
    # The edge's copy was kept for 30 s, not 30.9: at 30 s it is no longer fresh.
    cluster.clock.advance(30)
    answer = await edge.kv.get_with_metadata("k", cache_ttl=30.9)  # type: ignore[call-overload]
    assert answer.cache_status == "REVALIDATED"


# -- 7. list prefixes ------------------------------------------------------------------------


async def test_a_prefix_longer_than_any_key_is_refused_with_414(cluster: InProcessCluster) -> None:
    for kv in await nodes(cluster):
        assert (await kv.list(prefix="a" * 512)).keys == []
        for prefix, length in (("a" * 513, 513), ("é" * 257, 514)):
            error = await refused(kv.list(prefix=prefix))
            assert error.message == (
                f"KV GET failed: 414 UTF-8 encoded length of {length} exceeds key length "
                "limit of 512."
            )
            assert error.http_status == 414


# -- 8. a delete that changes nothing is not a write ----------------------------------------


async def test_deleting_a_missing_key_twice_within_a_second_succeeds(
    limited: InProcessCluster,
) -> None:
    edge = await limited.add_edge()
    for kv in (limited.kv, edge.kv):
        await kv.delete("never-written")
        await kv.delete("never-written")
    # ... and leaves the key's second to a real write.
    await limited.kv.put("never-written", "now")
    again = await refused(limited.kv.put("never-written", "again"))
    assert again.message == "KV PUT failed: 429 Too Many Requests"
    # A delete that removes a value is a write: once a second.
    deleted = await refused(edge.kv.delete("never-written"))
    assert deleted.message == "KV DELETE failed: 429 Too Many Requests"
    assert isinstance(deleted, edgekv.RateLimitedError)
    limited.clock.advance(1)
    await edge.kv.delete("never-written")
    await edge.kv.delete("never-written")  # gone already: changes nothing
    assert await limited.kv.get("never-written") is None


async def test_a_bulk_delete_of_missing_keys_is_not_limited(limited: InProcessCluster) -> None:
    await limited.kv.put("here", "v")
    limited.clock.advance(1)
    first = await limited.kv.bulk_delete(["gone", "here"])
    assert first.successful_key_count == 2
    second = await limited.kv.bulk_delete(["gone", "here", "here"])
    assert [(r.key, r.ok, r.error_message) for r in second.results] == [
        ("gone", True, None),
        ("here", True, None),
        ("here", True, None),
    ]
    # The first request's delete of "here" removed a value: that one took the second.
    refused_put = await refused(limited.kv.put("here", "back"))
    assert refused_put.message == "KV PUT failed: 429 Too Many Requests"
    limited.clock.advance(1)
    fourth = await limited.kv.bulk_delete(["here", "here"])  # gone already: changes nothing
    assert fourth.successful_key_count == 2
    await limited.kv.put("here", "back")  # ... so no delete took this second
    fifth = await limited.kv.bulk_delete(["here"])
    assert [(r.ok, r.error_message) for r in fifth.results] == [(False, "Too Many Requests")]


# -- 9. the binding's words and classes ---------------------------------------------------


async def test_errors_carry_the_bindings_operation_and_http_status(
    cluster: InProcessCluster,
) -> None:
    too_long = "UTF-8 encoded length of 513 exceeds key length limit of 512."
    for kv in await nodes(cluster):
        expected = {
            kv.get("k" * 513): f"KV GET failed: 414 {too_long}",
            kv.put("k" * 513, "v"): f"KV PUT failed: 414 {too_long}",
            kv.delete("k" * 513): f"KV DELETE failed: 414 {too_long}",
            kv.get(["k" * 513]): f"KV GET_BULK failed: 414 {too_long}",
            kv.put("k", b"x" * (25 * 1024 * 1024 + 1)): (
                "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400."
            ),
            kv.put("k", "v", metadata="y" * 1100): (
                "KV PUT failed: 413 Metadata length of 1102 exceeds limit of 1024."
            ),
            kv.put("k", "v", expiration_ttl=0): (
                "KV PUT failed: 400 Invalid expiration_ttl of 0. "
                "Please specify integer greater than 0."
            ),
            kv.put("k", "v", expiration_ttl=59): (
                "KV PUT failed: 400 Invalid expiration_ttl of 59. Expiration TTL must be at "
                "least 60."
            ),
            kv.put("k", "v", expiration=100): (
                "KV PUT failed: 400 Invalid expiration of 100. Please specify integer greater "
                "than the current number of seconds since the UNIX epoch."
            ),
            kv.list(limit=1001): (
                "KV GET failed: 400 Invalid key_count_limit of 1001. "
                "Please specify an integer less than 1000."
            ),
            kv.get([f"k{i}" for i in range(101)]): (
                "KV GET_BULK failed: 400 You can request a maximum of 100 keys"
            ),
            kv.get([]): "KV GET_BULK failed: 400 You must request a minimum of 1 key",
            kv.get(["k", ""]): "KV GET_BULK failed: 400 Key names must not be empty",
            kv.get(["k", "."]): (
                'KV GET_BULK failed: 400 Illegal key name ".". Please use a different name.'
            ),
        }
        for call, message in expected.items():
            error = await refused(call)
            assert error.message == message
            assert isinstance(error, edgekv.InvalidRequestError)
            assert not isinstance(error, TypeError), message


async def test_what_the_binding_refuses_itself_is_a_bare_type_error(
    cluster: InProcessCluster,
) -> None:
    for kv in await nodes(cluster):
        expected = {
            kv.get(""): "Key name cannot be empty.",
            kv.put("", "v"): "Key name cannot be empty.",
            kv.delete(""): "Key name cannot be empty.",
            kv.put(".", "v"): '"." is not allowed as a key name.',
            kv.get_with_metadata(".."): '".." is not allowed as a key name.',
            # The key is looked at first, before any other argument.
            kv.get("", cache_ttl=10): "Key name cannot be empty.",
            kv.put("..", "v", expiration_ttl=2**31): '".." is not allowed as a key name.',
        }
        for call, message in expected.items():
            with pytest.raises(TypeError) as caught:
                await call
            assert isinstance(caught.value, edgekv.InvalidRequestError)
            assert str(caught.value) == message


async def test_python_arguments_of_the_wrong_type_are_named(cluster: InProcessCluster) -> None:
    kv = cluster.kv
    expected = {
        kv.put("k", "v", expiration_ttl="60"): "put(): expiration_ttl must be an int, not str.",  # type: ignore[arg-type]
        kv.put("k", "v", expiration=True): "put(): expiration must be an int, not bool.",
        kv.get("k", cache_ttl="x"): "get(): cache_ttl must be an int, not str.",  # type: ignore[call-overload]
        kv.get(5): "get(): key must be a str or a sequence of str, not int.",  # type: ignore[call-overload]
        kv.get(["k", 5]): "get(): key must be a str or a sequence of str, not int.",  # type: ignore[list-item]
        kv.put(5, "v"): "put(): key must be a str, not int.",  # type: ignore[arg-type]
        kv.delete(None): "delete(): key must be a str, not NoneType.",  # type: ignore[arg-type]
        kv.put("k", 5): "put(): value must be str, bytes, bytearray, memoryview, a binary file "  # type: ignore[arg-type]
        "or an async iterator of bytes, not int.",
        kv.put("k", "v", metadata={1, 2}): "put(): metadata must be JSON-serialisable, not set.",
        kv.list(prefix=5): "list(): prefix must be a str, not int.",  # type: ignore[arg-type]
        kv.list(limit="10"): "list(): limit must be an int, not str.",  # type: ignore[arg-type]
        kv.list(cursor=5): "list(): cursor must be a str, not int.",  # type: ignore[arg-type]
    }
    for call, message in expected.items():
        with pytest.raises(TypeError) as caught:
            await call
        assert isinstance(caught.value, KVError)
        assert caught.value.kind is ErrorKind.ARGUMENT_TYPE
        assert str(caught.value) == f"KVNamespace.{message}"


async def test_a_missing_namespace_is_a_404(cluster: InProcessCluster) -> None:
    missing = cluster.admin.namespace("f" * 32)
    error = await refused(missing.get("k"))
    assert isinstance(error, edgekv.NotFoundError)
    assert re.fullmatch(r"KV GET failed: 404 get: 'namespace not found' \(f{32}\)", error.message)
    assert error.reason == f"get: 'namespace not found' ({'f' * 32})"
