"""The one error registry: every domain error edgekv can give, in one table.

Theory of operation: an error is a *kind* (a member of :class:`ErrorKind`) plus
the facts that fill its message. The registry row of a kind says

* which gRPC status carries it (by name, so this module imports no ``grpc``),
* the message template, worded as Workers KV words it,
* whether it is *definite* — the operation surely did not happen.

A third fact follows from the status: an error is *transient* when the
server could not be reached or did not answer in time (UNAVAILABLE,
DEADLINE_EXCEEDED). Callers retry transient reads freely, and transient
writes only when definite, so that a retry never applies a write twice.

Everything that raises builds a :class:`KVError` from a kind; the gRPC shells
turn it into a status at one boundary (``edgekv.rpc``) and back into the same
exception class on the client side. Users catch :class:`KVError` or one of its
subclasses, which group kinds by what a caller would do about them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class UsageError(ValueError):
    """A way of running edgekv that cannot work — a flag, a file, an address, a URL.

    Its message says what to change. The ``edgekv`` command prints it (and a
    :class:`KVError`, and an OSError about a file or a socket) as one line;
    anything else that escapes a command is a bug and keeps its traceback.
    """


class KVError(Exception):
    """Base of every error edgekv raises on purpose. ``.message`` is Workers-KV worded."""

    kind: ErrorKind

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def definite(self) -> bool:
        """True when the operation surely did not take effect."""
        return REGISTRY[self.kind].definite

    @property
    def transient(self) -> bool:
        """True for failures of reaching a server (UNAVAILABLE, DEADLINE_EXCEEDED)."""
        return self.status in ("UNAVAILABLE", "DEADLINE_EXCEEDED")

    @property
    def status(self) -> str:
        """The gRPC status name that carries this error, e.g. ``"NOT_FOUND"``."""
        return REGISTRY[self.kind].status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message))


class InvalidRequestError(KVError):
    """The request breaks a rule (a limit, a malformed argument); fix it, don't retry."""


class NotFoundError(KVError):
    """The namespace named in the request does not exist."""


class AlreadyExistsError(KVError):
    """A namespace with that title exists already."""


class RateLimitedError(KVError):
    """Too many writes (to one key, or of namespaces); wait and retry."""


class UnavailableError(KVError):
    """The store could not be reached or could not answer; the call may be retried."""


class WatchError(KVError):
    """A watch stream cannot go on from where it is; resume from a revision."""


class ErrorKind(enum.StrEnum):
    KEY_EMPTY = "KEY_EMPTY"
    KEY_RESERVED = "KEY_RESERVED"
    KEY_TOO_LONG = "KEY_TOO_LONG"
    KEY_NOT_UTF8 = "KEY_NOT_UTF8"
    VALUE_TOO_LARGE = "VALUE_TOO_LARGE"
    METADATA_TOO_LARGE = "METADATA_TOO_LARGE"
    METADATA_NOT_JSON = "METADATA_NOT_JSON"
    EXPIRATION_TTL_TOO_SMALL = "EXPIRATION_TTL_TOO_SMALL"
    EXPIRATION_TOO_SOON = "EXPIRATION_TOO_SOON"
    CACHE_TTL_TOO_SMALL = "CACHE_TTL_TOO_SMALL"
    LIST_LIMIT_TOO_LARGE = "LIST_LIMIT_TOO_LARGE"
    CURSOR_INVALID = "CURSOR_INVALID"
    PREFIX_NOT_UTF8 = "PREFIX_NOT_UTF8"
    GET_MANY_EMPTY = "GET_MANY_EMPTY"
    GET_MANY_TOO_MANY = "GET_MANY_TOO_MANY"
    BULK_EMPTY = "BULK_EMPTY"
    BULK_TOO_MANY = "BULK_TOO_MANY"
    BULK_TOO_LARGE = "BULK_TOO_LARGE"
    WRITE_RATE_LIMITED = "WRITE_RATE_LIMITED"
    NAMESPACE_ID_INVALID = "NAMESPACE_ID_INVALID"
    NAMESPACE_NOT_FOUND = "NAMESPACE_NOT_FOUND"
    NAMESPACE_TITLE_INVALID = "NAMESPACE_TITLE_INVALID"
    NAMESPACE_TITLE_EXISTS = "NAMESPACE_TITLE_EXISTS"
    NAMESPACE_LIMIT = "NAMESPACE_LIMIT"
    PAGE_INVALID = "PAGE_INVALID"
    WATCH_COMPACTED = "WATCH_COMPACTED"
    WATCH_LAGGING = "WATCH_LAGGING"
    LINK_SETTINGS_INVALID = "LINK_SETTINGS_INVALID"
    LINK_DOWN = "LINK_DOWN"
    REQUEST_LOST = "REQUEST_LOST"
    RESPONSE_LOST = "RESPONSE_LOST"
    UNAVAILABLE = "UNAVAILABLE"
    # A server could not pass a write on, and knows it never arrived.
    UNAVAILABLE_NOT_APPLIED = "UNAVAILABLE_NOT_APPLIED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"
    # -- what storage must hold, and storage that cannot keep what it acknowledged --
    EXPIRATION_TOO_LATE = "EXPIRATION_TOO_LATE"
    EXPIRATION_TTL_TOO_LARGE = "EXPIRATION_TTL_TOO_LARGE"
    STORE_FILE_GONE = "STORE_FILE_GONE"
    STORE_WENT_BACK = "STORE_WENT_BACK"
    # What the error boundary, storage and the client say of input no rule above covers.
    MESSAGE_INVALID = "MESSAGE_INVALID"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    STORAGE_FAILED = "STORAGE_FAILED"
    VALUE_NOT_JSON = "VALUE_NOT_JSON"
    VALUE_NOT_TEXT = "VALUE_NOT_TEXT"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One registry row."""

    status: str
    template: str
    exception: type[KVError]
    definite: bool = True
    # Whether the facts may come from a request, and so are clipped (see error()); False
    # for errors whose facts are central's own words (paths, what to do).
    clipped: bool = True


_INVALID = InvalidRequestError

REGISTRY: dict[ErrorKind, ErrorSpec] = {
    ErrorKind.KEY_EMPTY: ErrorSpec("INVALID_ARGUMENT", "Key name cannot be empty.", _INVALID),
    ErrorKind.KEY_RESERVED: ErrorSpec(
        "INVALID_ARGUMENT", '"{key}" is not allowed as a key name.', _INVALID
    ),
    ErrorKind.KEY_TOO_LONG: ErrorSpec(
        "INVALID_ARGUMENT",
        "UTF-8 encoded length of {length} exceeds key length limit of {limit}.",
        _INVALID,
    ),
    ErrorKind.KEY_NOT_UTF8: ErrorSpec(
        "INVALID_ARGUMENT", "Key name is not valid UTF-8: {detail}.", _INVALID
    ),
    ErrorKind.VALUE_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT", "Value length of {length} exceeds limit of {limit}.", _INVALID
    ),
    ErrorKind.METADATA_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT", "Metadata length of {length} exceeds limit of {limit}.", _INVALID
    ),
    ErrorKind.METADATA_NOT_JSON: ErrorSpec(
        "INVALID_ARGUMENT", "Metadata is not valid JSON: {detail}.", _INVALID
    ),
    ErrorKind.EXPIRATION_TTL_TOO_SMALL: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration_ttl of {ttl}. Expiration TTL must be at least {minimum}.",
        _INVALID,
    ),
    ErrorKind.EXPIRATION_TOO_SOON: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration of {expiration}. "
        "Expiration times must be at least {minimum} seconds in the future.",
        _INVALID,
    ),
    ErrorKind.CACHE_TTL_TOO_SMALL: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid cache_ttl of {ttl}. Cache TTL must be at least {minimum}.",
        _INVALID,
    ),
    ErrorKind.LIST_LIMIT_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid key_count_limit of {limit}. Please specify an integer less than {maximum}.",
        _INVALID,
    ),
    ErrorKind.CURSOR_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", "Invalid cursor {cursor!r}: pass back a cursor from list.", _INVALID
    ),
    ErrorKind.PREFIX_NOT_UTF8: ErrorSpec(
        "INVALID_ARGUMENT", "Prefix is not valid UTF-8: {detail}.", _INVALID
    ),
    ErrorKind.GET_MANY_EMPTY: ErrorSpec(
        "INVALID_ARGUMENT", "You must request at least one key.", _INVALID
    ),
    ErrorKind.GET_MANY_TOO_MANY: ErrorSpec(
        "INVALID_ARGUMENT",
        "You can request at most {limit} keys at once; {count} were requested.",
        _INVALID,
    ),
    ErrorKind.BULK_EMPTY: ErrorSpec(
        "INVALID_ARGUMENT", "A bulk request needs at least one entry.", _INVALID
    ),
    ErrorKind.BULK_TOO_MANY: ErrorSpec(
        "INVALID_ARGUMENT",
        "A bulk request can hold at most {limit} entries; this one has {count}.",
        _INVALID,
    ),
    ErrorKind.BULK_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Total size of request of {length} bytes exceeds the limit of {limit} bytes.",
        _INVALID,
    ),
    ErrorKind.WRITE_RATE_LIMITED: ErrorSpec(
        "RESOURCE_EXHAUSTED",
        "KV {method} failed: 429 Too Many Requests",
        RateLimitedError,
    ),
    ErrorKind.NAMESPACE_ID_INVALID: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid namespace id {namespace_id!r}: expected 32 hexadecimal characters.",
        _INVALID,
    ),
    ErrorKind.NAMESPACE_NOT_FOUND: ErrorSpec(
        "NOT_FOUND", "{operation}: 'namespace not found' ({namespace_id})", NotFoundError
    ),
    ErrorKind.NAMESPACE_TITLE_INVALID: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid namespace title: {detail}.",
        _INVALID,
    ),
    ErrorKind.NAMESPACE_TITLE_EXISTS: ErrorSpec(
        "ALREADY_EXISTS",
        "A KV namespace with the title {title!r} already exists.",
        AlreadyExistsError,
    ),
    ErrorKind.NAMESPACE_LIMIT: ErrorSpec(
        "RESOURCE_EXHAUSTED",
        "This store already has {limit} namespaces, the most it may hold.",
        RateLimitedError,
    ),
    ErrorKind.PAGE_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", "Invalid {field} of {value}: {detail}.", _INVALID
    ),
    ErrorKind.WATCH_COMPACTED: ErrorSpec(
        "OUT_OF_RANGE",
        "Required revision {revision} has been compacted; the oldest kept is {oldest}.",
        WatchError,
    ),
    ErrorKind.WATCH_LAGGING: ErrorSpec(
        "ABORTED",
        # {backlog}: the bound passed, e.g. "10000 changes" or "64 MiB of changes".
        "Watcher fell more than {backlog} behind; resume with start_revision={resume}.",
        WatchError,
    ),
    ErrorKind.LINK_SETTINGS_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", "Invalid link settings: {detail}.", _INVALID
    ),
    # The modelled link between an edge and central. A partition or a request lost on
    # the way out is *definite* (central never saw the call: even a write may be
    # retried); a response lost on the way back is not (the write may have happened).
    ErrorKind.LINK_DOWN: ErrorSpec(
        "UNAVAILABLE",
        "The link from {node} to the central store is partitioned.",
        UnavailableError,
    ),
    ErrorKind.REQUEST_LOST: ErrorSpec(
        "UNAVAILABLE",
        "A call from {node} to the central store was lost on the way out.",
        UnavailableError,
    ),
    ErrorKind.RESPONSE_LOST: ErrorSpec(
        "UNAVAILABLE",
        "The answer of the central store to {node} was lost on the way back.",
        UnavailableError,
        definite=False,
    ),
    ErrorKind.UNAVAILABLE: ErrorSpec("UNAVAILABLE", "{detail}", UnavailableError, definite=False),
    ErrorKind.UNAVAILABLE_NOT_APPLIED: ErrorSpec(
        "UNAVAILABLE", "{detail}", UnavailableError, definite=True
    ),
    ErrorKind.DEADLINE_EXCEEDED: ErrorSpec(
        "DEADLINE_EXCEEDED", "{detail}", UnavailableError, definite=False
    ),
    ErrorKind.INTERNAL: ErrorSpec("INTERNAL", "{detail}", KVError, definite=False),
    # -- what storage must hold, and storage that cannot keep what it acknowledged --
    # An expiration must fit every store and the wire (edgekv/core/limits.py says why
    # 9999's last second); worded as Miniflare words the lower bounds.
    ErrorKind.EXPIRATION_TOO_LATE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration of {expiration}. Expiration times must be at most {maximum} "
        "({maximum_utc}).",
        _INVALID,
    ),
    ErrorKind.EXPIRATION_TTL_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration_ttl of {ttl}. Expiration TTL must be at most {maximum}, "
        "so that the key expires by {latest} ({latest_utc}).",
        _INVALID,
    ),
    # The SQLite file was removed, renamed or replaced under central: writes would not
    # survive a restart. Not definite: the write that found out went into the lost file.
    ErrorKind.STORE_FILE_GONE: ErrorSpec(
        "UNAVAILABLE",
        "The database file {path} {what} while central ran: central refuses writes, which "
        "would be lost when it restarts; reads still answer from the file it holds open. "
        "{remedy}",
        UnavailableError,
        definite=False,
        clipped=False,
    ),
    # The store lost writes central acknowledged (a Redis flushed, or restarted from an
    # older file): central refuses writes rather than give their revisions again.
    ErrorKind.STORE_WENT_BACK: ErrorSpec(
        "DATA_LOSS",
        "{store} went back: {detail}. Central already acknowledged revision {revision} from "
        "it and refuses writes rather than acknowledge lower revisions again. {remedy}",
        UnavailableError,
        clipped=False,
    ),
    # A request whose bytes do not parse as its message (not protobuf, or a string
    # field that is not UTF-8): grpc would answer UNKNOWN; the boundary answers this.
    ErrorKind.MESSAGE_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", "Invalid {method} request: it does not parse ({detail}).", _INVALID
    ),
    # A message over what its receiver accepts (an edge takes at most a Put; central a
    # bulk write of 100 MiB): grpc refuses it before any handler, so no kind came with it.
    ErrorKind.MESSAGE_TOO_LARGE: ErrorSpec(
        "RESOURCE_EXHAUSTED",
        "A message to or from {server} was larger than its receiver accepts: {detail}.",
        _INVALID,
    ),
    # The central store's storage refused a change (disk full, I/O error, Redis out of
    # memory). Not definite: a failed commit may still have reached the disk.
    ErrorKind.STORAGE_FAILED: ErrorSpec(
        "UNAVAILABLE",
        "The central store's storage failed: {detail}.",
        UnavailableError,
        definite=False,
    ),
    # Client side: a value read with type "json" or "text" that is not that.
    ErrorKind.VALUE_NOT_JSON: ErrorSpec(
        "INVALID_ARGUMENT",
        "The value of key {key!r} is not JSON ({detail}); read it as text or bytes.",
        _INVALID,
    ),
    ErrorKind.VALUE_NOT_TEXT: ErrorSpec(
        "INVALID_ARGUMENT",
        "The value of key {key!r} is not UTF-8 text ({detail}); read it as bytes.",
        _INVALID,
    ),
}

# A message quotes at most this much of any value it was given, so that a megabyte
# of bad input is never echoed back (a status message travels in a trailer of a few
# KiB); ``detail`` — edgekv's own words, which may quote an exception — gets more.
MAX_QUOTED_CHARS = 64
MAX_DETAIL_CHARS = 512


def error(kind: ErrorKind, **facts: object) -> KVError:
    """Build the exception for ``kind``, its message filled from ``facts``."""
    spec = REGISTRY[kind]
    if spec.clipped:
        facts = {name: _clipped(name, value) for name, value in facts.items()}
    return spec.exception(kind, spec.template.format(**facts))


def _clipped(name: str, value: object) -> object:
    """``value``, or a prefix of it and "…" when it is text longer than a message may quote."""
    if not isinstance(value, str | bytes):
        return value
    most = MAX_DETAIL_CHARS if name == "detail" else MAX_QUOTED_CHARS
    if len(value) <= most:
        return value
    # Quoted with !r, a clipped str shows as 'abc…' and clipped bytes as b'abc...'.
    if isinstance(value, str):
        return value[:most] + "…"
    return value[:most] + b"..."


def from_kind_name(kind_name: str, message: str) -> KVError:
    """Rebuild an error received over the wire (kind name + message) as the same class."""
    try:
        kind = ErrorKind(kind_name)
    except ValueError:
        return KVError(ErrorKind.INTERNAL, message)
    return REGISTRY[kind].exception(kind, message)
