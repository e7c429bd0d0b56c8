"""Workers KV's rules at the central store, over real gRPC, on every back-end.

Every limit is tested at its boundary: the limit passes, one more fails with
Workers KV's message, and a refused request leaves the store's revision as it was.
The messages checked are central's bare words (``.reason``), as the REST API
gives them; the Python API prefixes them as a Worker's binding does
(tests/unit/test_workers_fidelity.py checks that).
"""

from __future__ import annotations

import asyncio
import json

import pytest

import edgekv
from edgekv.core import limits
from edgekv.v1 import central_pb2 as pb
from tests.integration.conftest import Central, StartCentral

MiB = 1024 * 1024


async def refused(central: Central, kind: edgekv.ErrorKind, call: object) -> edgekv.KVError:
    """Await ``call``; check it fails with ``kind`` and writes nothing."""
    before = central.revision
    with pytest.raises(edgekv.KVError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.kind is kind, caught.value.message
    assert central.revision == before, "a refused request must change nothing"
    return caught.value


# -- keys ---------------------------------------------------------------------


async def test_key_of_512_bytes_passes_and_513_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    await kv.put("k" * 512, "ok")
    assert await kv.get("k" * 512) == "ok"
    exc = await refused(central, edgekv.ErrorKind.KEY_TOO_LONG, kv.put("k" * 513, "x"))
    assert exc.reason == "UTF-8 encoded length of 513 exceeds key length limit of 512."
    assert isinstance(exc, edgekv.InvalidRequestError)


async def test_multibyte_characters_count_as_bytes(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    await kv.put("é" * 256, "two bytes each")  # 512 bytes
    exc = await refused(central, edgekv.ErrorKind.KEY_TOO_LONG, kv.put("€" * 171, "x"))
    assert exc.reason == "UTF-8 encoded length of 513 exceeds key length limit of 512."


async def test_empty_and_dot_keys_are_refused(central: Central, kv: edgekv.KVNamespace) -> None:
    exc = await refused(central, edgekv.ErrorKind.KEY_EMPTY, kv.put("", "x"))
    assert exc.reason == "Key name cannot be empty."
    for name in (".", ".."):
        exc = await refused(central, edgekv.ErrorKind.KEY_RESERVED, kv.put(name, "x"))
        assert exc.reason == f'"{name}" is not allowed as a key name.'
    await refused(central, edgekv.ErrorKind.KEY_EMPTY, kv.get(""))
    await kv.put("...", "three dots are fine")
    # The Python API refuses these before sending, as Workers' binding does; central too.
    stub = central.client.stub
    for raw, kind in ((b"", edgekv.ErrorKind.KEY_EMPTY), (b"..", edgekv.ErrorKind.KEY_RESERVED)):
        request = pb.PutRequest(namespace_id=kv.id, key=raw, value=b"x")
        exc = await refused(central, kind, central.client.call(stub.Put, request))
        assert isinstance(exc, TypeError) and isinstance(exc, edgekv.InvalidRequestError)


async def test_non_utf8_key_bytes_are_invalid_argument(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    stub = central.client.stub
    request = pb.PutRequest(namespace_id=kv.id, key=b"\xff\xfe", value=b"x")
    await refused(central, edgekv.ErrorKind.KEY_NOT_UTF8, central.client.call(stub.Put, request))
    get = pb.GetRequest(namespace_id=kv.id, key=b"ok\xc3")
    await refused(central, edgekv.ErrorKind.KEY_NOT_UTF8, central.client.call(stub.Get, get))


# -- values and metadata --------------------------------------------------------


async def test_value_of_25_mib_passes_and_one_byte_more_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    await kv.put("big", b"\x01" * (25 * MiB))
    assert len(await kv.get("big", type="bytes")) == 26_214_400
    exc = await refused(
        central, edgekv.ErrorKind.VALUE_TOO_LARGE, kv.put("bigger", b"\x01" * (25 * MiB + 1))
    )
    assert exc.reason == "Value length of 26214401 exceeds limit of 26214400."


async def test_metadata_of_1024_bytes_passes_and_1025_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    fits = {"m": "x" * (1024 - len('{"m":""}'))}
    await kv.put("meta", "v", metadata=fits)
    assert (await kv.get_with_metadata("meta")).metadata == fits
    too_big = {"m": "x" * (1025 - len('{"m":""}'))}
    exc = await refused(
        central, edgekv.ErrorKind.METADATA_TOO_LARGE, kv.put("meta2", "v", metadata=too_big)
    )
    assert exc.reason == "Metadata length of 1025 exceeds limit of 1024."


async def test_metadata_that_is_not_json_is_refused(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    request = pb.PutRequest(namespace_id=kv.id, key=b"k", value=b"v", metadata_json="{nope")
    await refused(
        central,
        edgekv.ErrorKind.METADATA_NOT_JSON,
        central.client.call(central.client.stub.Put, request),
    )


async def test_value_types_round_trip(kv: edgekv.KVNamespace) -> None:
    await kv.put("json", json.dumps({"a": [1, 2]}))
    assert await kv.get("json", type="json") == {"a": [1, 2]}
    await kv.put("bin", bytearray(b"\x00\xff"))
    assert await kv.get("bin", type="arrayBuffer") == b"\x00\xff"
    stream = await kv.get("bin", type="stream")
    assert b"".join([chunk async for chunk in stream]) == b"\x00\xff"
    assert await kv.get("missing") is None
    with pytest.raises(TypeError):
        await kv.put("bad", 42)  # type: ignore[arg-type]


# -- expiration -----------------------------------------------------------------


async def test_expiration_ttl_of_60_passes_and_59_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    now = central.clock.now()
    await kv.put("ttl", "v", expiration_ttl=60)
    listed = await kv.list(prefix="ttl")
    assert listed.keys[0].expiration == int(now) + 60
    exc = await refused(
        central, edgekv.ErrorKind.EXPIRATION_TTL_TOO_SMALL, kv.put("ttl2", "v", expiration_ttl=59)
    )
    assert exc.reason == "Invalid expiration_ttl of 59. Expiration TTL must be at least 60."
    exc = await refused(
        central, edgekv.ErrorKind.EXPIRATION_TTL_TOO_SMALL, kv.put("ttl3", "v", expiration_ttl=30)
    )
    assert exc.reason == "Invalid expiration_ttl of 30. Expiration TTL must be at least 60."


async def test_expiration_60_s_ahead_passes_and_59_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    now = int(central.clock.now())
    await kv.put("abs", "v", expiration=now + 60)
    exc = await refused(
        central, edgekv.ErrorKind.EXPIRATION_TOO_SOON, kv.put("abs2", "v", expiration=now + 59)
    )
    assert exc.reason == (
        f"Invalid expiration of {now + 59}. "
        "Expiration times must be at least 60 seconds in the future."
    )


async def test_ttl_wins_when_both_are_given(central: Central, kv: edgekv.KVNamespace) -> None:
    now = int(central.clock.now())
    await kv.put("both", "v", expiration=now + 10, expiration_ttl=120)
    assert (await kv.list(prefix="both")).keys[0].expiration == now + 120
    await refused(
        central,
        edgekv.ErrorKind.EXPIRATION_TTL_TOO_SMALL,
        kv.put("both2", "v", expiration=now + 3600, expiration_ttl=10),
    )


LATEST = limits.MAX_EXPIRATION_S  # 9999-12-31 23:59:59 UTC
LATEST_UTC = "9999-12-31 23:59:59 UTC"


def too_late_message(expiration: int) -> str:
    return (
        f"Invalid expiration of {expiration}. "
        f"Expiration times must be at most {LATEST} ({LATEST_UTC})."
    )


def ttl_too_large_message(ttl: int, maximum: int) -> str:
    return (
        f"Invalid expiration_ttl of {ttl}. Expiration TTL must be at most {maximum}, "
        f"so that the key expires by {LATEST} ({LATEST_UTC})."
    )


async def raw_put(central: Central, kv: edgekv.KVNamespace, key: str, **expiry: int) -> None:
    """A put over the gRPC API itself, whose numbers are int64s: the Python binding, like
    a Worker's, takes int32s only (the REST API and the gRPC API take wider ones)."""
    request = pb.PutRequest(namespace_id=kv.id, key=key.encode(), value=b"v", **expiry)
    await central.client.call(central.client.stub.Put, request)


async def test_expiration_up_to_the_last_second_of_9999_passes_and_one_more_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    await raw_put(central, kv, "latest", expiration=LATEST)
    assert (await kv.get_with_metadata("latest")) is not None
    assert [(k.name, k.expiration) for k in (await kv.list()).keys] == [("latest", LATEST)]
    exc = await refused(
        central,
        edgekv.ErrorKind.EXPIRATION_TOO_LATE,
        raw_put(central, kv, "later", expiration=LATEST + 1),
    )
    assert exc.reason == too_late_message(LATEST + 1)
    assert isinstance(exc, edgekv.InvalidRequestError)
    # What the tester sent: far past anything a store or the wire's int64 can hold.
    await refused(
        central,
        edgekv.ErrorKind.EXPIRATION_TOO_LATE,
        raw_put(central, kv, "int64", expiration=2**63 - 1),
    )
    central.clock.advance(1)  # one write per second per key
    result = await kv.bulk_put(
        [
            {"key": "latest", "value": "v", "expiration": LATEST},
            {"key": "later", "value": "v", "expiration": LATEST + 1},
        ]
    )
    assert [(r.ok, r.error_kind) for r in result.results] == [
        (True, None),
        (False, "EXPIRATION_TOO_LATE"),
    ]
    assert result.results[1].error_message == too_late_message(LATEST + 1)
    assert [k.name for k in (await kv.list()).keys] == ["latest"]


async def test_expiration_ttl_up_to_the_last_second_of_9999_passes_and_one_more_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    central.clock.advance(0.75)  # a TTL counts from the whole second, as Workers KV's does
    most = LATEST - int(central.clock.now())
    await raw_put(central, kv, "latest", expiration_ttl=most)
    assert [(k.name, k.expiration) for k in (await kv.list()).keys] == [("latest", LATEST)]
    exc = await refused(
        central,
        edgekv.ErrorKind.EXPIRATION_TTL_TOO_LARGE,
        raw_put(central, kv, "later", expiration_ttl=most + 1),
    )
    assert exc.reason == ttl_too_large_message(most + 1, most)
    # The reported stall: a TTL near 2**63 resolves past what int64 can hold.
    exc = await refused(
        central,
        edgekv.ErrorKind.EXPIRATION_TTL_TOO_LARGE,
        raw_put(central, kv, "int64", expiration_ttl=2**63 - 1),
    )
    assert exc.reason == ttl_too_large_message(2**63 - 1, most)
    assert await kv.get("int64") is None
    central.clock.advance(1)
    most -= 1
    result = await kv.bulk_put(
        [
            {"key": "latest", "value": "v", "expiration_ttl": most},
            {"key": "later", "value": "v", "expiration_ttl": most + 1},
            {"key": "int64", "value": "v", "expiration_ttl": 2**63 - 1},
        ]
    )
    assert [(r.ok, r.error_kind) for r in result.results] == [
        (True, None),
        (False, "EXPIRATION_TTL_TOO_LARGE"),
        (False, "EXPIRATION_TTL_TOO_LARGE"),
    ]
    assert result.results[1].error_message == ttl_too_large_message(most + 1, most)
    assert [(k.name, k.expiration) for k in (await kv.list()).keys] == [("latest", LATEST)]


async def test_expired_keys_vanish_from_get_get_many_and_list(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    await kv.put("short", "v", expiration_ttl=60)
    await kv.put("long", "v", expiration_ttl=3600)
    central.clock.advance(59)
    assert await kv.get("short") == "v"
    central.clock.advance(1)
    assert await kv.get("short") is None
    assert await kv.get(["short", "long"]) == {"short": None, "long": "v"}
    assert [k.name for k in (await kv.list()).keys] == ["long"]


# -- list -------------------------------------------------------------------------


async def test_list_limit_of_1000_passes_and_1001_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    result = await kv.bulk_put([{"key": f"k{i:04}", "value": "v"} for i in range(1001)])
    assert result.successful_key_count == 1001
    page = await kv.list(limit=1000)
    assert len(page.keys) == 1000
    assert not page.list_complete
    assert page.cursor
    rest = await kv.list(cursor=page.cursor)
    assert [k.name for k in rest.keys] == ["k1000"]
    assert rest.list_complete
    assert rest.cursor is None
    exc = await refused(central, edgekv.ErrorKind.LIST_LIMIT_TOO_LARGE, kv.list(limit=1001))
    assert (
        exc.reason == "Invalid key_count_limit of 1001. Please specify an integer less than 1000."
    )
    for unlimited in (0, -5):
        assert len((await kv.list(limit=unlimited)).keys) == 1000


async def test_list_prefix_is_byte_exact_and_ordered_by_utf8_bytes(kv: edgekv.KVNamespace) -> None:
    names = ["a%b", "a_b", "a\\b", "aXb", "é", "z", "😀", "\u00ff"]
    await kv.bulk_put([{"key": name, "value": "v"} for name in names])
    assert [k.name for k in (await kv.list()).keys] == sorted(names, key=str.encode)
    assert [k.name for k in (await kv.list(prefix="a%")).keys] == ["a%b"]
    assert [k.name for k in (await kv.list(prefix="a_")).keys] == ["a_b"]
    assert [k.name for k in (await kv.list(prefix="a\\")).keys] == ["a\\b"]


async def test_cursor_means_start_after_that_key(kv: edgekv.KVNamespace) -> None:
    await kv.bulk_put([{"key": k, "value": "v"} for k in ("a", "b", "d")])
    page = await kv.list(limit=2)
    await kv.put("c", "written between pages")
    rest = await kv.list(cursor=page.cursor)
    assert [k.name for k in rest.keys] == ["c", "d"]


async def test_invalid_cursor_is_invalid_argument(central: Central, kv: edgekv.KVNamespace) -> None:
    for cursor in ("garbage", "c1.!!!", "c1."):
        await refused(central, edgekv.ErrorKind.CURSOR_INVALID, kv.list(cursor=cursor))


# -- get many and bulk ---------------------------------------------------------------


async def test_get_many_takes_1_to_100_keys(central: Central, kv: edgekv.KVNamespace) -> None:
    await kv.put("k0", "zero")
    result = await kv.get([f"k{i}" for i in range(100)])
    assert len(result) == 100
    assert result["k0"] == "zero"
    assert result["k1"] is None
    await refused(
        central, edgekv.ErrorKind.GET_MANY_TOO_MANY, kv.get([f"k{i}" for i in range(101)])
    )
    await refused(central, edgekv.ErrorKind.GET_MANY_EMPTY, kv.get([]))
    with_meta = await kv.get_with_metadata(["k0", "nope"])
    assert with_meta["nope"] is None
    assert with_meta["k0"] is not None and with_meta["k0"].value == "zero"


async def test_bulk_put_of_10000_passes_and_10001_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    entries = [{"key": f"k{i:05}", "value": "v"} for i in range(10_001)]
    exc = await refused(central, edgekv.ErrorKind.BULK_TOO_MANY, kv.bulk_put(entries))
    assert "10000" in exc.message and "10001" in exc.message
    result = await kv.bulk_put(entries[:10_000])
    assert result.successful_key_count == 10_000
    assert central.revision == 10_000
    central.clock.advance(1)  # one write per second per key
    deleted = await kv.bulk_delete([f"k{i:05}" for i in range(10_000)])
    assert deleted.successful_key_count == 10_000
    await refused(
        central,
        edgekv.ErrorKind.BULK_TOO_MANY,
        kv.bulk_delete([f"k{i:05}" for i in range(10_001)]),
    )


async def test_bulk_put_reports_each_entry(central: Central, kv: edgekv.KVNamespace) -> None:
    result = await kv.bulk_put(
        [
            {"key": "good", "value": "v", "metadata": {"n": 1}},
            {"key": "", "value": "v"},
            {"key": "ttl", "value": "v", "expiration_ttl": 5},
            {"key": "also-good", "value": b"\x00"},
        ]
    )
    assert result.successful_key_count == 2
    assert result.unsuccessful_keys == ["", "ttl"]
    assert [r.error_kind for r in result.results] == [
        None,
        "KEY_EMPTY",
        "EXPIRATION_TTL_TOO_SMALL",
        None,
    ]
    assert await kv.get("good") == "v"


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)  # a service rule: once is enough
async def test_bulk_put_of_100_mib_passes_and_one_byte_more_fails(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    keys = ["a", "b", "c", "d"]
    values = [b"x" * (25 * MiB)] * 3 + [b"x" * (25 * MiB - len("".join(keys)))]
    entries = [{"key": k, "value": v} for k, v in zip(keys, values, strict=True)]
    exc = await refused(
        central,
        edgekv.ErrorKind.BULK_TOO_LARGE,
        kv.bulk_put([*entries[:3], {"key": "d", "value": values[3] + b"x"}]),
    )
    assert exc.reason == (
        "Total size of request of 104857601 bytes exceeds the limit of 104857600 bytes."
    )
    assert (await kv.bulk_put(entries)).successful_key_count == 4


# -- write rate limit ------------------------------------------------------------------


async def test_one_write_per_second_per_key(central: Central, kv: edgekv.KVNamespace) -> None:
    await kv.put("hot", "1")
    exc = await refused(central, edgekv.ErrorKind.WRITE_RATE_LIMITED, kv.put("hot", "2"))
    assert (exc.message, exc.reason) == (
        "KV PUT failed: 429 Too Many Requests",
        "Too Many Requests",
    )
    assert isinstance(exc, edgekv.RateLimitedError)
    assert exc.definite and not exc.transient  # refused outright: wait, then write again
    await refused(central, edgekv.ErrorKind.WRITE_RATE_LIMITED, kv.delete("hot"))
    await kv.put("other", "fine")
    central.clock.advance(0.999)
    await refused(central, edgekv.ErrorKind.WRITE_RATE_LIMITED, kv.put("hot", "2"))
    central.clock.advance(0.001)
    await kv.put("hot", "2")
    assert await kv.get("hot") == "2"


async def test_a_delete_that_changes_nothing_is_not_a_write(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    """Deleting a key that holds no value succeeds however often (Workers KV documents it
    as a success), changes nothing, and leaves the key's one write of the second free."""
    for _ in range(3):
        await kv.delete("never-written")
    assert (await kv.bulk_delete(["never-written", "never-written"])).successful_key_count == 2
    before = central.revision
    await kv.delete("never-written")
    assert central.revision == before
    await kv.put("never-written", "now")
    await refused(central, edgekv.ErrorKind.WRITE_RATE_LIMITED, kv.delete("never-written"))
    central.clock.advance(1)
    await kv.delete("never-written")
    await kv.delete("never-written")
    assert await kv.get("never-written") is None


async def test_a_delete_racing_a_put_of_the_same_second_is_refused(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    """A delete that arrives while a put of its key is still committing will change
    something once the put lands: it is a write, refused in that second (on SQLite and
    Redis the put awaits its commit; the delete used to find the key empty, pass, and
    commit after the put, wiping it)."""
    for round_ in range(20):
        key = f"raced-{round_}"
        put, delete = await asyncio.gather(kv.put(key, "v"), kv.delete(key), return_exceptions=True)
        # Served first, the delete changed nothing, and held the key's second while it
        # committed (a put meanwhile is refused); served second, it is the key's second
        # write of the second. Never does an acknowledged put end up deleted.
        for outcome in (put, delete):
            assert not isinstance(outcome, Exception) or isinstance(
                outcome, edgekv.RateLimitedError
            ), outcome
        if not isinstance(put, Exception):
            assert await kv.get(key) == "v", f"round {round_}: the delete undid the put"


async def test_a_keys_second_entry_in_a_bulk_delete_keeps_the_firsts_write(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    """Deleting a key twice in one bulk delete removes its value once: that is the key's
    write of the second, which its second entry (that changes nothing) does not undo."""
    await kv.put("k", "v")
    central.clock.advance(1)
    assert (await kv.bulk_delete(["k", "k"])).successful_key_count == 2
    await refused(central, edgekv.ErrorKind.WRITE_RATE_LIMITED, kv.put("k", "again"))
    assert await kv.get("k") is None


async def test_write_rate_limit_can_be_switched_off(start_central_at: StartCentral) -> None:
    central = await start_central_at(write_rate_limit=False)
    ns = await central.client.create_namespace("fast")
    kv = central.client.namespace(ns.id)
    for i in range(5):
        await kv.put("hot", str(i))
    assert await kv.get("hot") == "4"


# -- namespaces ----------------------------------------------------------------------


async def test_unknown_and_malformed_namespaces(central: Central) -> None:
    missing = central.client.namespace("0123456789abcdef0123456789abcdef")
    exc = await refused(central, edgekv.ErrorKind.NAMESPACE_NOT_FOUND, missing.get("k"))
    assert isinstance(exc, edgekv.NotFoundError)
    await refused(central, edgekv.ErrorKind.NAMESPACE_NOT_FOUND, missing.put("k", "v"))
    await refused(central, edgekv.ErrorKind.NAMESPACE_NOT_FOUND, missing.list())
    malformed = central.client.namespace("not-an-id")
    exc = await refused(central, edgekv.ErrorKind.NAMESPACE_ID_INVALID, malformed.get("k"))
    assert "not-an-id" in exc.message


async def test_namespace_lifecycle(central: Central) -> None:
    client = central.client
    first = await client.create_namespace("alpha")
    assert len(first.id) == 32 and int(first.id, 16) >= 0
    await refused(
        central, edgekv.ErrorKind.NAMESPACE_TITLE_EXISTS, client.create_namespace("alpha")
    )
    await refused(
        central, edgekv.ErrorKind.NAMESPACE_TITLE_INVALID, client.create_namespace("t" * 513)
    )
    await client.create_namespace("t" * 512)
    renamed = await client.rename_namespace(first.id, "beta")
    assert (await client.get_namespace(first.id)).title == renamed.title == "beta"
    titles = [ns.title for ns in await client.list_namespaces(order="title")]
    assert titles == ["beta", "t" * 512]
    await client.namespace(first.id).put("k", "v")
    await client.delete_namespace(first.id)
    await refused(central, edgekv.ErrorKind.NAMESPACE_NOT_FOUND, client.get_namespace(first.id))
    await refused(central, edgekv.ErrorKind.NAMESPACE_NOT_FOUND, client.delete_namespace(first.id))


async def test_list_namespaces_pages_past_the_end_are_empty(central: Central) -> None:
    for i in range(5):
        await central.client.create_namespace(f"ns-{i}")
    stub = central.client.stub
    page = await stub.ListNamespaces(
        pb.ListNamespacesRequest(page=2, per_page=2, order=pb.NAMESPACE_ORDER_TITLE)
    )
    assert [ns.title for ns in page.namespaces] == ["ns-2", "ns-3"]
    assert page.total_count == 5
    desc = await stub.ListNamespaces(
        pb.ListNamespacesRequest(per_page=2, order=pb.NAMESPACE_ORDER_TITLE, descending=True)
    )
    assert [ns.title for ns in desc.namespaces] == ["ns-4", "ns-3"]
    past = await stub.ListNamespaces(pb.ListNamespacesRequest(page=4, per_page=2))
    assert list(past.namespaces) == []
    assert len(await central.client.list_namespaces()) == 5


# -- revisions ---------------------------------------------------------------------------


async def test_every_write_answers_with_a_new_revision(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    first = await kv.put("a", "1")
    second = await kv.put("b", "2")
    assert second.revision == first.revision + 1
    read = await kv.get_with_metadata("a")
    assert read.info.revision == first.revision
    assert read.info.commit_time == first.commit_time == central.clock.now()
    missing_delete = await kv.delete("never-written")
    assert missing_delete.revision == second.revision
    assert central.revision == second.revision


@pytest.mark.parametrize(
    "storage_url", ["sqlite", "redis"], indirect=True
)  # memory: is not durable
async def test_data_survives_a_restart_of_the_central_server(
    start_central_at: StartCentral,
) -> None:
    central = await start_central_at()
    ns = await central.client.create_namespace("durable")
    await central.client.namespace(ns.id).put("k", "v", metadata={"m": 1})
    await central.server.stop(grace_s=0)
    again = await start_central_at()
    kv = again.client.namespace(ns.id)
    result = await kv.get_with_metadata("k")
    assert (result.value, result.metadata, again.revision) == ("v", {"m": 1}, 1)
