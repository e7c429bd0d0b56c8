"""List paging: prefix, limit and cursor, exactly as Workers KV pages keys.

Theory of operation: a page is "the first ``limit`` live keys with this prefix
that sort after the cursor's key", in UTF-8 byte order. A cursor is an opaque
token that names the last key of the previous page ("start after this key"),
so pages stay correct while keys are written between calls. Storage back-ends
answer a :class:`ListQuery` with a :class:`ScanResult`; :func:`make_page` turns
that into what the caller sees. A back-end may stop scanning early (after
skipping many expired keys); it then says where it stopped, and the page comes
back with fewer keys — possibly none — and ``list_complete`` false, which is
what Workers KV does too.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, error
from edgekv.core.model import KeyInfo
from edgekv.core.validation import validate_namespace_id

_CURSOR_TAG = "c1."


@dataclass(frozen=True, slots=True)
class ListQuery:
    namespace_id: str
    prefix: str
    # Start strictly after this key; None for the first page.
    start_after: str | None
    limit: int

    def matches(self, name: str) -> bool:
        """True when ``name`` belongs on a page after ``start_after``."""
        return name.startswith(self.prefix) and (
            self.start_after is None or name > self.start_after
        )


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a back-end found: live keys in order, and where to go on from."""

    keys: list[KeyInfo]
    # The last key looked at when more may follow; None when the scan reached
    # the end of the prefix.
    resume_after: str | None


@dataclass(frozen=True, slots=True)
class ListPage:
    keys: list[KeyInfo]
    list_complete: bool
    cursor: str | None


def parse_list_request(namespace_id: str, raw_prefix: bytes, limit: int, cursor: str) -> ListQuery:
    """Validate a list request; ``limit`` 0 or negative means the maximum."""
    validate_namespace_id(namespace_id)
    try:
        prefix = raw_prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            ErrorKind.PREFIX_NOT_UTF8, detail=f"invalid byte at offset {exc.start}"
        ) from None
    if limit > limits.MAX_LIST_LIMIT:
        raise error(ErrorKind.LIST_LIMIT_TOO_LARGE, limit=limit, maximum=limits.MAX_LIST_LIMIT)
    if len(raw_prefix) > limits.MAX_KEY_BYTES:  # no key could start with it
        raise error(ErrorKind.PREFIX_TOO_LONG, length=len(raw_prefix), limit=limits.MAX_KEY_BYTES)
    effective_limit = limit if limit > 0 else limits.MAX_LIST_LIMIT
    start_after = decode_cursor(cursor) if cursor else None
    return ListQuery(namespace_id, prefix, start_after, effective_limit)


def encode_cursor(key: str) -> str:
    token = base64.urlsafe_b64encode(key.encode("utf-8")).rstrip(b"=").decode("ascii")
    return _CURSOR_TAG + token


def decode_cursor(cursor: str) -> str:
    if not cursor.startswith(_CURSOR_TAG):
        raise error(ErrorKind.CURSOR_INVALID, cursor=cursor)
    token = cursor[len(_CURSOR_TAG) :]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise error(ErrorKind.CURSOR_INVALID, cursor=cursor) from None
    if not key or encode_cursor(key) != cursor:
        raise error(ErrorKind.CURSOR_INVALID, cursor=cursor)
    return key


def scan_with_lookahead(query: ListQuery, live_keys: list[KeyInfo]) -> ScanResult:
    """For back-ends that fetched up to ``limit + 1`` live keys in order."""
    if len(live_keys) > query.limit:
        page = live_keys[: query.limit]
        return ScanResult(page, resume_after=page[-1].name)
    return ScanResult(live_keys, resume_after=None)


def make_page(scan: ScanResult) -> ListPage:
    if scan.resume_after is None:
        return ListPage(scan.keys, list_complete=True, cursor=None)
    return ListPage(scan.keys, list_complete=False, cursor=encode_cursor(scan.resume_after))


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    None when there is no such bound (empty prefix, or all 0xff bytes).
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
