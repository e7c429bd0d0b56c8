"""The sans-IO core on its own: no sockets, no clock, no randomness."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgekv.clock import ManualClock, ScaledClock
from edgekv.core import limits
from edgekv.core.errors import REGISTRY, ErrorKind, KVError, error, from_kind_name
from edgekv.core.listing import (
    ListQuery,
    ScanResult,
    decode_cursor,
    encode_cursor,
    make_page,
    parse_list_request,
    prefix_upper_bound,
)
from edgekv.core.model import KeyInfo, Namespace
from edgekv.core.namespaces import page_namespaces
from edgekv.core.ratelimit import KeyWriteLimiter
from edgekv.core.validation import (
    resolve_expiration,
    validate_cache_ttl,
    validate_key,
    validate_metadata,
    validate_namespace_id,
    validate_value,
)

CORE = Path(__file__).resolve().parents[2] / "edgekv" / "core"
FORBIDDEN_IMPORTS = {"grpc", "redis", "asyncio", "time", "random", "socket", "sqlite3", "os"}


def kind_of(call: object, *args: object) -> ErrorKind:
    with pytest.raises(KVError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.kind


def test_core_imports_no_io_time_or_randomness() -> None:
    for module in CORE.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN_IMPORTS, f"{module.name} imports {name}"
                if top == "edgekv":
                    assert name.startswith("edgekv.core"), f"{module.name} imports {name}"


def test_every_error_kind_has_a_registry_row_with_a_grpc_status() -> None:
    import grpc

    assert set(REGISTRY) == set(ErrorKind)
    for spec in REGISTRY.values():
        assert grpc.StatusCode[spec.status]


def test_errors_rebuild_from_their_wire_form() -> None:
    original = error(ErrorKind.WRITE_RATE_LIMITED, method="PUT")
    rebuilt = from_kind_name(original.kind.value, original.message)
    assert type(rebuilt) is type(original)
    assert (rebuilt.kind, rebuilt.message, rebuilt.transient) == (
        original.kind,
        "KV PUT failed: 429 Too Many Requests",
        False,
    )
    assert from_kind_name("NO_SUCH_KIND", "x").kind is ErrorKind.INTERNAL


def test_key_rules() -> None:
    assert validate_key(b"a" * 512) == "a" * 512
    assert kind_of(validate_key, b"a" * 513) is ErrorKind.KEY_TOO_LONG
    assert kind_of(validate_key, b"") is ErrorKind.KEY_EMPTY
    assert kind_of(validate_key, b".") is ErrorKind.KEY_RESERVED
    assert kind_of(validate_key, b"..") is ErrorKind.KEY_RESERVED
    assert kind_of(validate_key, b"\x80") is ErrorKind.KEY_NOT_UTF8
    assert validate_key("😀".encode() * 128) == "😀" * 128  # 4 bytes x 128 = 512


def test_value_and_metadata_rules() -> None:
    assert len(validate_value(b"x" * limits.MAX_VALUE_BYTES)) == 26_214_400
    assert kind_of(validate_value, b"x" * (limits.MAX_VALUE_BYTES + 1)) is ErrorKind.VALUE_TOO_LARGE
    assert validate_metadata(None) is None
    assert validate_metadata("null") is None
    exactly = '"' + "é" * 511 + '"'  # 2 + 1022 bytes: multi-byte characters count as bytes
    assert validate_metadata(exactly) == exactly
    assert kind_of(validate_metadata, '"' + "é" * 511 + 'x"') is ErrorKind.METADATA_TOO_LARGE
    assert kind_of(validate_metadata, "{") is ErrorKind.METADATA_NOT_JSON


def test_expiration_rules() -> None:
    now = 1000.5
    assert resolve_expiration(now, None, None) is None
    assert resolve_expiration(now, None, 60) == 1060
    assert kind_of(resolve_expiration, now, None, 59) is ErrorKind.EXPIRATION_TTL_TOO_SMALL
    assert kind_of(resolve_expiration, now, None, 0) is ErrorKind.EXPIRATION_TTL_TOO_SMALL
    assert resolve_expiration(1000.0, 1060, None) == 1060
    assert kind_of(resolve_expiration, 1000.0, 1059, None) is ErrorKind.EXPIRATION_TOO_SOON
    assert resolve_expiration(1000.0, 1, 60) == 1060  # the TTL wins; the bad expiration is unused


def test_expirations_end_with_the_last_second_of_9999() -> None:
    latest = limits.MAX_EXPIRATION_S
    assert datetime.fromtimestamp(latest, UTC).isoformat() == "9999-12-31T23:59:59+00:00"
    assert latest < 2**53, "an expiration must compare exactly with a float now"
    now = 1_700_000_000.9
    assert resolve_expiration(now, latest, None) == latest
    assert kind_of(resolve_expiration, now, latest + 1, None) is ErrorKind.EXPIRATION_TOO_LATE
    assert kind_of(resolve_expiration, now, 2**63 - 1, None) is ErrorKind.EXPIRATION_TOO_LATE
    largest_ttl = latest - 1_700_000_000
    assert resolve_expiration(now, None, largest_ttl) == latest
    too_large = ErrorKind.EXPIRATION_TTL_TOO_LARGE
    assert kind_of(resolve_expiration, now, None, largest_ttl + 1) is too_large
    assert kind_of(resolve_expiration, now, None, 2**63 - 1) is too_large
    # Only the value in use is checked: the TTL wins over an expiration out of range.
    assert resolve_expiration(now, latest + 1, 60) == 1_700_000_060


def test_cache_ttl_rules() -> None:
    assert validate_cache_ttl(None) == 60
    assert validate_cache_ttl(30) == 30
    with pytest.raises(KVError) as caught:
        validate_cache_ttl(29)
    assert caught.value.message == "Invalid cache_ttl of 29. Cache TTL must be at least 30."


def test_namespace_ids() -> None:
    assert validate_namespace_id("0123456789abcdef" * 2)
    for bad in ("0123456789ABCDEF" * 2, "abc", "g" * 32, "0" * 33):
        assert kind_of(validate_namespace_id, bad) is ErrorKind.NAMESPACE_ID_INVALID


def test_cursors_round_trip_and_refuse_garbage() -> None:
    for key in ("a", "é/😀", "with space", "a" * 512):
        assert decode_cursor(encode_cursor(key)) == key
    for bad in ("", "c1.", "x1.YQ", "c1.YQ=", "c1.gA", "c1.!"):
        assert kind_of(decode_cursor, bad) is ErrorKind.CURSOR_INVALID


def test_list_request_limits() -> None:
    namespace_id = "0" * 32
    assert parse_list_request(namespace_id, b"", 0, "").limit == 1000
    assert parse_list_request(namespace_id, b"", -1, "").limit == 1000
    assert parse_list_request(namespace_id, b"", 1000, "").limit == 1000
    assert (
        kind_of(parse_list_request, namespace_id, b"", 1001, "") is ErrorKind.LIST_LIMIT_TOO_LARGE
    )
    assert kind_of(parse_list_request, namespace_id, b"\xff", 10, "") is ErrorKind.PREFIX_NOT_UTF8
    assert kind_of(parse_list_request, "n", b"\xff", 1001, "") is ErrorKind.NAMESPACE_ID_INVALID
    query = parse_list_request(namespace_id, b"p", 5, encode_cursor("p1"))
    assert query == ListQuery(namespace_id, "p", "p1", 5)
    assert query.matches("p2") and not query.matches("p1") and not query.matches("q")


def test_pages_say_whether_more_may_follow() -> None:
    key = KeyInfo("k", None, None)
    done = make_page(ScanResult([key], resume_after=None))
    assert (done.list_complete, done.cursor) == (True, None)
    more = make_page(ScanResult([], resume_after="k"))
    assert (more.list_complete, more.keys) == (False, [])
    assert more.cursor is not None and decode_cursor(more.cursor) == "k"


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound(b"") is None
    assert prefix_upper_bound(b"ab") == b"ac"
    assert prefix_upper_bound(b"a\xff") == b"b"
    assert prefix_upper_bound(b"\xff\xff") is None


def test_write_limiter_allows_one_write_per_key_per_second() -> None:
    limiter = KeyWriteLimiter()
    limiter.check("ns", "k", 100.0)
    assert kind_of(limiter.check, "ns", "k", 100.999) is ErrorKind.WRITE_RATE_LIMITED
    limiter.check("ns", "other", 100.5)
    limiter.check("other-ns", "k", 100.5)
    limiter.check("ns", "k", 101.0)
    limiter.check("ns", "unrelated", 200.0)
    assert len(limiter) == 1, "entries older than the interval are pruned"
    KeyWriteLimiter(enabled=False).check("ns", "k", 0.0)


def test_write_limiter_forgets_a_write_that_failed_to_commit() -> None:
    limiter = KeyWriteLimiter()
    limiter.check("ns", "k", 100.0)
    limiter.forget("ns", "k", 100.0)
    limiter.check("ns", "k", 100.5)  # the failed write did not count
    limiter.forget("ns", "k", 100.0)  # not the write recorded now: nothing to forget
    assert kind_of(limiter.check, "ns", "k", 100.6) is ErrorKind.WRITE_RATE_LIMITED
    limiter.check("ns", "k", 101.5)
    assert len(limiter) == 1


def test_namespace_pages() -> None:
    namespaces = [Namespace(f"{i:032x}", title, 0.0) for i, title in enumerate("cab")]
    by_title = page_namespaces(
        namespaces, page=1, per_page=2, order_by_title=True, descending=False
    )
    assert [ns.title for ns in by_title.namespaces] == ["a", "b"]
    assert by_title.total_count == 3
    assert page_namespaces(namespaces, 3, 2, False, False).namespaces == []
    with pytest.raises(KVError):
        page_namespaces(namespaces, 1, 1001, False, False)


async def test_manual_clock_wakes_sleepers_only_when_advanced() -> None:
    import asyncio

    clock = ManualClock(start=0.0)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    tasks = [asyncio.create_task(sleeper(s)) for s in (10, 5)]
    await asyncio.sleep(0)
    clock.advance(4)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(6)
    await asyncio.gather(*tasks)
    assert woke == [10.0, 10.0]


def test_scaled_clock_runs_faster_around_its_anchor() -> None:
    import time

    clock = ScaledClock(scale=60.0, anchor=time.time() - 1.0)
    assert clock.now() - time.time() == pytest.approx(59.0, abs=0.5)
    assert clock.real_seconds(60) == 1.0
    with pytest.raises(ValueError, match="must be a positive number"):
        ScaledClock(scale=0)
