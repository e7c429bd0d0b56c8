"""The sans-IO core on its own: no sockets, no clock, no randomness."""

from __future__ import annotations

import ast
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgekv.clock import ManualClock, ScaledClock
from edgekv.core import limits
from edgekv.core.errors import (
    REGISTRY,
    ErrorKind,
    InvalidRequestError,
    KVError,
    RateLimitedError,
    binding_error,
    error,
    from_kind_name,
)
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
    validate_get_many_keys,
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


def message_of(call: object, *args: object) -> str:
    with pytest.raises(KVError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.message


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
    original = error(ErrorKind.WRITE_RATE_LIMITED)
    rebuilt = from_kind_name(original.kind.value, original.message)
    assert type(rebuilt) is type(original)
    assert (rebuilt.kind, rebuilt.message, rebuilt.transient) == (
        original.kind,
        "Too Many Requests",
        False,
    )
    assert from_kind_name("NO_SUCH_KIND", "x").kind is ErrorKind.INTERNAL


def test_the_registry_keeps_bare_messages_and_the_binding_adds_its_prefix() -> None:
    """The core says what Cloudflare's REST API says; a Worker's binding prefixes it with
    the operation and the HTTP status (worded as Miniflare's binding words them)."""
    limited = binding_error(error(ErrorKind.WRITE_RATE_LIMITED), "PUT")
    assert isinstance(limited, RateLimitedError) and limited.kind is ErrorKind.WRITE_RATE_LIMITED
    assert (limited.message, limited.reason) == (
        "KV PUT failed: 429 Too Many Requests",
        "Too Many Requests",
    )
    assert binding_error(limited, "PUT") is limited, "prefixed once"
    too_long = binding_error(error(ErrorKind.KEY_TOO_LONG, length=513, limit=512), "GET_BULK")
    assert too_long.message == (
        "KV GET_BULK failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."
    )
    value = binding_error(error(ErrorKind.VALUE_TOO_LARGE, length=2, limit=1), "PUT")
    assert value.message == "KV PUT failed: 413 Value length of 2 exceeds limit of 1."
    missing = error(ErrorKind.NAMESPACE_NOT_FOUND, operation="get", namespace_id="0" * 32)
    assert binding_error(missing, "GET").message.startswith("KV GET failed: 404 get: ")
    # What Workers' binding refuses itself is a TypeError, bare.
    empty = binding_error(error(ErrorKind.KEY_EMPTY), "GET")
    assert empty.message == "Key name cannot be empty."
    assert isinstance(empty, TypeError) and isinstance(empty, InvalidRequestError)
    assert pickle.loads(pickle.dumps(limited)).reason == "Too Many Requests"


def test_every_registry_row_has_an_http_status() -> None:
    for kind, spec in REGISTRY.items():
        assert 400 <= spec.http_status <= 599, kind
        if spec.raised_by_binding and kind is not ErrorKind.VALUE_NOT_JSON:
            assert issubclass(spec.exception, TypeError), kind


def test_key_rules() -> None:
    assert validate_key(b"a" * 512) == "a" * 512
    assert kind_of(validate_key, b"a" * 513) is ErrorKind.KEY_TOO_LONG
    assert kind_of(validate_key, b"") is ErrorKind.KEY_EMPTY
    assert kind_of(validate_key, b".") is ErrorKind.KEY_RESERVED
    assert kind_of(validate_key, b"..") is ErrorKind.KEY_RESERVED
    assert kind_of(validate_key, b"\x80") is ErrorKind.KEY_NOT_UTF8
    # A lone surrogate, as a Worker's binding sends it (WTF-8): what Workers answers.
    assert message_of(validate_key, b"\xed\xb0\x80") == "Could not URL-decode key name"
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
    assert message_of(resolve_expiration, now, None, 59) == (
        "Invalid expiration_ttl of 59. Expiration TTL must be at least 60."
    )
    for ttl in (0, -1):
        assert message_of(resolve_expiration, now, None, ttl) == (
            f"Invalid expiration_ttl of {ttl}. Please specify integer greater than 0."
        )
    assert resolve_expiration(1000.0, 1060, None) == 1060
    assert kind_of(resolve_expiration, 1000.0, 1059, None) is ErrorKind.EXPIRATION_TOO_SOON
    assert message_of(resolve_expiration, 1000.0, 1059, None) == (
        "Invalid expiration of 1059. Expiration times must be at least 60 seconds in the future."
    )
    for past in (1000, 100, 0, -1):
        assert message_of(resolve_expiration, 1000.5, past, None) == (
            f"Invalid expiration of {past}. Please specify integer greater than the current "
            "number of seconds since the UNIX epoch."
        )
    assert resolve_expiration(1000.0, 1, 60) == 1060  # the TTL wins; the bad expiration is unused


def test_expirations_count_in_whole_seconds() -> None:
    """As Workers KV: 60 s after the whole second ``now`` is in, all through that second."""
    for now in (1000.0, 1000.5, 1000.999):
        assert resolve_expiration(now, 1060, None) == 1060
        assert kind_of(resolve_expiration, now, 1059, None) is ErrorKind.EXPIRATION_TOO_SOON
        assert kind_of(resolve_expiration, now, 1000, None) is ErrorKind.EXPIRATION_NOT_FUTURE
        assert resolve_expiration(now, 1001, 60) == 1060


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
    assert parse_list_request(namespace_id, b"a" * 512, 10, "").prefix == "a" * 512
    # No key could start with a longer prefix: refused as Workers refuses it (414).
    too_long = "UTF-8 encoded length of 514 exceeds key length limit of 512."
    assert message_of(parse_list_request, namespace_id, "é".encode() * 257, 10, "") == too_long
    assert (
        kind_of(parse_list_request, namespace_id, b"a" * 513, 10, "") is ErrorKind.PREFIX_TOO_LONG
    )
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


def test_write_limiter_says_whether_it_would_refuse_without_recording() -> None:
    limiter = KeyWriteLimiter()
    assert not limiter.is_limited("ns", "k", 100.0)
    limiter.check("ns", "k", 100.0)
    assert limiter.is_limited("ns", "k", 100.5) and not limiter.is_limited("ns", "k", 101.0)
    assert not limiter.is_limited("ns", "other", 100.5)
    assert not KeyWriteLimiter(enabled=False).is_limited("ns", "k", 100.0)


def test_bulk_read_keys_are_refused_in_the_bulk_reads_words() -> None:
    """Workers' binding refuses an empty or reserved key itself (TypeError) in a single-key
    call; in a bulk read its server does, in other words (as Miniflare's)."""
    assert message_of(validate_get_many_keys, [b"k", b""]) == "Key names must not be empty"
    assert message_of(validate_get_many_keys, [b".."]) == (
        'Illegal key name "..". Please use a different name.'
    )
    assert message_of(validate_get_many_keys, []) == "You must request a minimum of 1 key"
    hundred_and_one = [b"k%d" % i for i in range(101)]
    assert message_of(validate_get_many_keys, hundred_and_one) == (
        "You can request a maximum of 100 keys"
    )
    assert message_of(validate_get_many_keys, [b"\xff"]) == "Could not URL-decode key name"


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
