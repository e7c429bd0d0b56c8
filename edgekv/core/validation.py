"""Validation of every request field, exactly at Workers KV's limits.

Theory of operation: each function takes raw request fields (and ``now`` where
time matters), returns the validated value, or raises the registry's
:class:`~edgekv.core.errors.KVError`. Validation happens before anything is
written, so a rejected request changes nothing. Central and edge call the same
functions, so they refuse the same input with the same words — and, since a
request with several faults is refused for the first one found, in the same
order: the namespace id's form first, then the request's other fields, and
only then whether the namespace exists (which only central knows).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, error
from edgekv.core.model import Delete, Put

# A regex match is three times cheaper than a set of the id's characters, and a
# namespace id is checked on every request.
_NAMESPACE_ID = re.compile(f"[0-9a-f]{{{limits.NAMESPACE_ID_HEX_CHARS}}}")


def validate_key(
    raw: bytes,
    empty: ErrorKind = ErrorKind.KEY_EMPTY,
    reserved: ErrorKind = ErrorKind.KEY_RESERVED,
) -> str:
    """A key is 1..512 UTF-8 bytes and not ``.`` or ``..``.

    ``empty`` and ``reserved`` are the kinds to refuse those keys with: a bulk read
    words them otherwise (Workers' binding refuses them in a single-key call itself).
    """
    if not raw:
        raise error(empty)
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(ErrorKind.KEY_NOT_UTF8) from None
    if key in limits.RESERVED_KEYS:
        raise error(reserved, key=key)
    if len(raw) > limits.MAX_KEY_BYTES:
        raise error(ErrorKind.KEY_TOO_LONG, length=len(raw), limit=limits.MAX_KEY_BYTES)
    return key


def validate_value(value: bytes) -> bytes:
    if len(value) > limits.MAX_VALUE_BYTES:
        raise error(ErrorKind.VALUE_TOO_LARGE, length=len(value), limit=limits.MAX_VALUE_BYTES)
    return value


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON value")


def parse_json(text: str) -> Any:
    """JSON text as RFC 8259 defines it (and JSON.parse reads it), or ValueError saying why not.

    Python's ``json`` also reads ``NaN``, ``Infinity`` and ``-Infinity``, which
    are not JSON (a Workers binding could not even send them: it serialises NaN
    as ``null``); and it recurses once per level of nesting, so ``[[[[…`` a
    thousand deep raises RecursionError — both are refused here as not JSON.
    It takes text, not bytes: given bytes, ``json`` would skip a leading byte
    order mark, which JSON.parse refuses (and so does ``json`` in a str).
    """
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def validate_metadata(metadata_json: str | None) -> str | None:
    """Metadata is JSON text of at most 1024 UTF-8 bytes; JSON ``null`` means none."""
    if metadata_json is None:
        return None
    length = len(metadata_json.encode("utf-8"))
    if length > limits.MAX_METADATA_BYTES:
        raise error(ErrorKind.METADATA_TOO_LARGE, length=length, limit=limits.MAX_METADATA_BYTES)
    try:
        parsed = parse_json(metadata_json)
    except ValueError as exc:
        raise error(ErrorKind.METADATA_NOT_JSON, detail=str(exc)) from None
    return None if parsed is None else metadata_json


def resolve_expiration(
    now: float, expiration: int | None, expiration_ttl: int | None
) -> int | None:
    """The absolute expiration (Unix seconds) a put asks for, or None for "never".

    ``expiration_ttl`` wins when both are given, as in Workers KV; only the one
    that is used is validated. Both count in whole seconds, as Workers KV does:
    from the whole second ``now`` is in, so an expiration 60 s after it is
    accepted all through that second. Either way the result is at most
    :data:`limits.MAX_EXPIRATION_S`, so every store and the wire can hold it.
    """
    now_s = math.floor(now)
    if expiration_ttl is not None:
        if expiration_ttl <= 0:
            raise error(ErrorKind.EXPIRATION_TTL_NOT_POSITIVE, ttl=expiration_ttl)
        if expiration_ttl < limits.MIN_EXPIRATION_TTL_S:
            raise error(
                ErrorKind.EXPIRATION_TTL_TOO_SMALL,
                ttl=expiration_ttl,
                minimum=limits.MIN_EXPIRATION_TTL_S,
            )
        largest_ttl_s = limits.MAX_EXPIRATION_S - now_s
        if expiration_ttl > largest_ttl_s:
            raise error(
                ErrorKind.EXPIRATION_TTL_TOO_LARGE,
                ttl=expiration_ttl,
                maximum=largest_ttl_s,
                latest=limits.MAX_EXPIRATION_S,
                latest_utc=limits.MAX_EXPIRATION_UTC,
            )
        return now_s + expiration_ttl
    if expiration is not None:
        if expiration <= now_s:
            raise error(ErrorKind.EXPIRATION_NOT_FUTURE, expiration=expiration)
        if expiration - now_s < limits.MIN_EXPIRATION_AHEAD_S:
            raise error(
                ErrorKind.EXPIRATION_TOO_SOON,
                expiration=expiration,
                minimum=limits.MIN_EXPIRATION_AHEAD_S,
            )
        if expiration > limits.MAX_EXPIRATION_S:
            raise error(
                ErrorKind.EXPIRATION_TOO_LATE,
                expiration=expiration,
                maximum=limits.MAX_EXPIRATION_S,
                maximum_utc=limits.MAX_EXPIRATION_UTC,
            )
        return expiration
    return None


def validate_put(
    namespace_id: str,
    raw_key: bytes,
    value: bytes,
    metadata_json: str | None,
    expiration: int | None,
    expiration_ttl: int | None,
    now: float,
) -> Put:
    return Put(
        namespace_id=validate_namespace_id(namespace_id),
        key=validate_key(raw_key),
        value=validate_value(value),
        metadata_json=validate_metadata(metadata_json),
        expiration=resolve_expiration(now, expiration, expiration_ttl),
        expiration_ttl=expiration_ttl,
    )


def validate_delete(namespace_id: str, raw_key: bytes) -> Delete:
    return Delete(namespace_id=validate_namespace_id(namespace_id), key=validate_key(raw_key))


def validate_read(namespace_id: str, raw_key: bytes) -> tuple[str, str]:
    """A read of one key: the namespace id and the key."""
    return validate_namespace_id(namespace_id), validate_key(raw_key)


def validate_read_many(namespace_id: str, raw_keys: Sequence[bytes]) -> tuple[str, list[str]]:
    """A read of several keys: the namespace id and the keys."""
    return validate_namespace_id(namespace_id), validate_get_many_keys(raw_keys)


def validate_get_many_keys(raw_keys: Sequence[bytes]) -> list[str]:
    if not raw_keys:
        raise error(ErrorKind.GET_MANY_EMPTY)
    if len(raw_keys) > limits.MAX_GET_MANY_KEYS:
        raise error(
            ErrorKind.GET_MANY_TOO_MANY, limit=limits.MAX_GET_MANY_KEYS, count=len(raw_keys)
        )
    return [
        validate_key(raw, ErrorKind.GET_MANY_KEY_EMPTY, ErrorKind.GET_MANY_KEY_RESERVED)
        for raw in raw_keys
    ]


def validate_bulk_shape(entry_count: int, total_bytes: int) -> None:
    """Request-wide limits of a bulk write; checked before any entry is looked at."""
    if entry_count == 0:
        raise error(ErrorKind.BULK_EMPTY)
    if entry_count > limits.MAX_BULK_ENTRIES:
        raise error(ErrorKind.BULK_TOO_MANY, limit=limits.MAX_BULK_ENTRIES, count=entry_count)
    if total_bytes > limits.MAX_BULK_BYTES:
        raise error(ErrorKind.BULK_TOO_LARGE, length=total_bytes, limit=limits.MAX_BULK_BYTES)


def validate_cache_ttl(cache_ttl_s: int | None) -> int:
    """The reader's cacheTtl: default 60, at least 30."""
    if cache_ttl_s is None:
        return limits.DEFAULT_CACHE_TTL_S
    if cache_ttl_s < limits.MIN_CACHE_TTL_S:
        raise error(ErrorKind.CACHE_TTL_TOO_SMALL, ttl=cache_ttl_s, minimum=limits.MIN_CACHE_TTL_S)
    return cache_ttl_s


def validate_namespace_id(namespace_id: str) -> str:
    if _NAMESPACE_ID.fullmatch(namespace_id) is None:
        raise error(ErrorKind.NAMESPACE_ID_INVALID, namespace_id=namespace_id)
    return namespace_id


def validate_title(title: str) -> str:
    if not title.strip():
        raise error(ErrorKind.NAMESPACE_TITLE_INVALID, detail="it cannot be empty")
    if len(title) > limits.MAX_NAMESPACE_TITLE_CHARS:
        raise error(
            ErrorKind.NAMESPACE_TITLE_INVALID,
            detail=f"{len(title)} characters exceed the limit of "
            f"{limits.MAX_NAMESPACE_TITLE_CHARS}",
        )
    return title
