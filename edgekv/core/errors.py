"""The one error registry: every domain error edgekv can give, in one table.

Theory of operation: an error is a *kind* (a member of :class:`ErrorKind`) plus
the facts that fill its message. The registry row of a kind says

* which gRPC status carries it (by name, so this module imports no ``grpc``),
* the HTTP status Workers KV answers it with (400 unless said),
* the message template, worded as Workers KV words it — the bare message, as
  Cloudflare's REST API returns it,
* whether it is *definite* — the operation surely did not happen,
* whether Workers' binding raises it itself, before any request: a
  ``TypeError`` (an empty key, a bad type, a number out of range) or a
  ``SyntaxError`` from ``JSON.parse``.

A Worker's binding reports every other error as ``KV {OP} failed: {HTTP
status} {message}`` (``KV PUT failed: 429 Too Many Requests``), OP being GET,
PUT, DELETE or GET_BULK (a list's errors say GET too). The core and the gRPC
services keep the bare message; the Workers-style Python API adds the prefix
(:func:`binding_error`), so a Python caller reads what a Worker would.

One more fact follows from the status: an error is *transient* when the
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

    def __init__(self, kind: ErrorKind, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        # The bare message, without the binding's "KV GET failed: 400 " (see binding_error).
        self.reason = message if reason is None else reason

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

    @property
    def http_status(self) -> int:
        """The HTTP status Workers KV answers this error with, e.g. 414."""
        return REGISTRY[self.kind].http_status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message, self.reason))


class InvalidRequestError(KVError):
    """The request breaks a rule (a limit, a malformed argument); fix it, don't retry."""


class InvalidTypeError(InvalidRequestError, TypeError):
    """An argument Workers' binding itself refuses with a ``TypeError`` (an empty key, an
    unknown type, a number out of int32's range), or a Python argument of the wrong type.

    Both a :class:`KVError` and a :class:`TypeError`, so that ``except TypeError`` catches
    what it would catch in a Worker, and ``except KVError`` everything edgekv refuses.
    """


class NotFoundError(KVError):
    """The namespace named in the request does not exist."""


class AlreadyExistsError(KVError):
    """A namespace with that title exists already."""


class RateLimitedError(KVError):
    """Too many writes (to one key, or of namespaces); wait and retry."""


class UnavailableError(KVError):
    """The store could not be reached or could not answer; the call may be retried."""


class AuthError(KVError):
    """The call's token is missing, unknown or revoked, or may not do what was asked."""


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
    EXPIRATION_TTL_NOT_POSITIVE = "EXPIRATION_TTL_NOT_POSITIVE"
    EXPIRATION_TTL_TOO_SMALL = "EXPIRATION_TTL_TOO_SMALL"
    EXPIRATION_NOT_FUTURE = "EXPIRATION_NOT_FUTURE"
    EXPIRATION_TOO_SOON = "EXPIRATION_TOO_SOON"
    CACHE_TTL_TOO_SMALL = "CACHE_TTL_TOO_SMALL"
    LIST_LIMIT_TOO_LARGE = "LIST_LIMIT_TOO_LARGE"
    CURSOR_INVALID = "CURSOR_INVALID"
    PREFIX_NOT_UTF8 = "PREFIX_NOT_UTF8"
    PREFIX_TOO_LONG = "PREFIX_TOO_LONG"
    GET_MANY_EMPTY = "GET_MANY_EMPTY"
    GET_MANY_TOO_MANY = "GET_MANY_TOO_MANY"
    GET_MANY_KEY_EMPTY = "GET_MANY_KEY_EMPTY"
    GET_MANY_KEY_RESERVED = "GET_MANY_KEY_RESERVED"
    GET_MANY_TYPE_INVALID = "GET_MANY_TYPE_INVALID"
    GET_MANY_VALUE_NOT_JSON = "GET_MANY_VALUE_NOT_JSON"
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
    # What Workers' binding refuses itself, before any request (TypeErrors).
    TYPE_UNKNOWN = "TYPE_UNKNOWN"
    VALUE_OUT_OF_RANGE = "VALUE_OUT_OF_RANGE"
    ARGUMENT_TYPE = "ARGUMENT_TYPE"
    ACCOUNT_ID_INVALID = "ACCOUNT_ID_INVALID"
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_READ_ONLY = "TOKEN_READ_ONLY"
    OPERATOR_ONLY = "OPERATOR_ONLY"
    API_KEY_UNSUPPORTED = "API_KEY_UNSUPPORTED"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    ACCOUNT_FORBIDDEN = "ACCOUNT_FORBIDDEN"
    KEY_NOT_FOUND = "KEY_NOT_FOUND"
    ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    BODY_INVALID = "BODY_INVALID"
    PARAMETER_INVALID = "PARAMETER_INVALID"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One registry row."""

    status: str
    template: str
    exception: type[KVError]
    definite: bool = True
    # What Workers KV answers over HTTP: a Worker's binding shows it in its message.
    http_status: int = 400
    # Raised by Workers' binding itself, before any request, so without "KV GET failed: …".
    raised_by_binding: bool = False
    # Whether the facts may come from a request, and so are clipped (see error()); False
    # for errors whose facts are central's own words (paths, what to do).
    clipped: bool = True
    # The code Cloudflare's v4 REST API puts in ``errors[].code`` (edgekv's API node
    # answers with it); 10001, a validation error, unless the API has its own.
    api_code: int = 10001


_INVALID = InvalidRequestError
_TYPE = InvalidTypeError

REGISTRY: dict[ErrorKind, ErrorSpec] = {
    # A Worker's binding refuses these keys itself, with a TypeError; in a bulk read the
    # server refuses them, in other words (GET_MANY_KEY_*).
    ErrorKind.KEY_EMPTY: ErrorSpec(
        "INVALID_ARGUMENT", "Key name cannot be empty.", _TYPE, raised_by_binding=True
    ),
    ErrorKind.KEY_RESERVED: ErrorSpec(
        "INVALID_ARGUMENT",
        '"{key}" is not allowed as a key name.',
        _TYPE,
        raised_by_binding=True,
    ),
    ErrorKind.KEY_TOO_LONG: ErrorSpec(
        "INVALID_ARGUMENT",
        "UTF-8 encoded length of {length} exceeds key length limit of {limit}.",
        _INVALID,
        http_status=414,
    ),
    # Bytes that are not UTF-8: what Workers answers for a key holding a lone surrogate,
    # which its binding sends percent-encoded as WTF-8.
    ErrorKind.KEY_NOT_UTF8: ErrorSpec(
        "INVALID_ARGUMENT", "Could not URL-decode key name", _INVALID
    ),
    ErrorKind.VALUE_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Value length of {length} exceeds limit of {limit}.",
        _INVALID,
        http_status=413,
    ),
    ErrorKind.METADATA_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Metadata length of {length} exceeds limit of {limit}.",
        _INVALID,
        http_status=413,
    ),
    ErrorKind.METADATA_NOT_JSON: ErrorSpec(
        "INVALID_ARGUMENT", "Metadata is not valid JSON: {detail}.", _INVALID
    ),
    ErrorKind.EXPIRATION_TTL_NOT_POSITIVE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration_ttl of {ttl}. Please specify integer greater than 0.",
        _INVALID,
    ),
    ErrorKind.EXPIRATION_TTL_TOO_SMALL: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration_ttl of {ttl}. Expiration TTL must be at least {minimum}.",
        _INVALID,
    ),
    ErrorKind.EXPIRATION_NOT_FUTURE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid expiration of {expiration}. Please specify integer greater than the current "
        "number of seconds since the UNIX epoch.",
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
    ErrorKind.PREFIX_TOO_LONG: ErrorSpec(
        "INVALID_ARGUMENT",
        "UTF-8 encoded length of {length} exceeds key length limit of {limit}.",
        _INVALID,
        http_status=414,
    ),
    ErrorKind.GET_MANY_EMPTY: ErrorSpec(
        "INVALID_ARGUMENT", "You must request a minimum of 1 key", _INVALID
    ),
    ErrorKind.GET_MANY_TOO_MANY: ErrorSpec(
        "INVALID_ARGUMENT", "You can request a maximum of {limit} keys", _INVALID
    ),
    ErrorKind.GET_MANY_KEY_EMPTY: ErrorSpec(
        "INVALID_ARGUMENT", "Key names must not be empty", _INVALID
    ),
    ErrorKind.GET_MANY_KEY_RESERVED: ErrorSpec(
        "INVALID_ARGUMENT", 'Illegal key name "{key}". Please use a different name.', _INVALID
    ),
    ErrorKind.GET_MANY_TYPE_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", '"{type}" is not a valid type. Use "json" or "text"', _INVALID
    ),
    # Client side: a bulk read with type "json" found a value that is not JSON.
    ErrorKind.GET_MANY_VALUE_NOT_JSON: ErrorSpec(
        "INVALID_ARGUMENT",
        "At least one of the requested keys corresponds to a non-json value",
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
        http_status=413,
    ),
    ErrorKind.WRITE_RATE_LIMITED: ErrorSpec(
        "RESOURCE_EXHAUSTED", "Too Many Requests", RateLimitedError, http_status=429
    ),
    ErrorKind.NAMESPACE_ID_INVALID: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid namespace id {namespace_id!r}: expected 32 hexadecimal characters.",
        _INVALID,
    ),
    ErrorKind.NAMESPACE_NOT_FOUND: ErrorSpec(
        "NOT_FOUND",
        "{operation}: 'namespace not found' ({namespace_id})",
        NotFoundError,
        http_status=404,
        api_code=10013,
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
        api_code=10014,
    ),
    ErrorKind.NAMESPACE_LIMIT: ErrorSpec(
        "RESOURCE_EXHAUSTED",
        "This account already has {limit} namespaces, the most it may hold.",
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
        http_status=503,
    ),
    ErrorKind.REQUEST_LOST: ErrorSpec(
        "UNAVAILABLE",
        "A call from {node} to the central store was lost on the way out.",
        UnavailableError,
        http_status=503,
    ),
    ErrorKind.RESPONSE_LOST: ErrorSpec(
        "UNAVAILABLE",
        "The answer of the central store to {node} was lost on the way back.",
        UnavailableError,
        definite=False,
        http_status=503,
    ),
    ErrorKind.UNAVAILABLE: ErrorSpec(
        "UNAVAILABLE", "{detail}", UnavailableError, definite=False, http_status=503
    ),
    ErrorKind.UNAVAILABLE_NOT_APPLIED: ErrorSpec(
        "UNAVAILABLE", "{detail}", UnavailableError, definite=True, http_status=503
    ),
    ErrorKind.DEADLINE_EXCEEDED: ErrorSpec(
        "DEADLINE_EXCEEDED", "{detail}", UnavailableError, definite=False, http_status=504
    ),
    ErrorKind.INTERNAL: ErrorSpec("INTERNAL", "{detail}", KVError, definite=False, http_status=500),
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
        http_status=503,
    ),
    # The store lost writes central acknowledged (a Redis flushed, or restarted from an
    # older file): central refuses writes rather than give their revisions again.
    ErrorKind.STORE_WENT_BACK: ErrorSpec(
        "DATA_LOSS",
        "{store} went back: {detail}. Central already acknowledged revision {revision} from "
        "it and refuses writes rather than acknowledge lower revisions again. {remedy}",
        UnavailableError,
        clipped=False,
        http_status=503,
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
        http_status=413,
    ),
    # The central store's storage refused a change (disk full, I/O error, Redis out of
    # memory). Not definite: a failed commit may still have reached the disk.
    ErrorKind.STORAGE_FAILED: ErrorSpec(
        "UNAVAILABLE",
        "The central store's storage failed: {detail}.",
        UnavailableError,
        definite=False,
        http_status=503,
    ),
    # Client side: a value read with type "json" that is not JSON. A Worker's JSON.parse
    # raises a SyntaxError of its own there, without a request's status.
    ErrorKind.VALUE_NOT_JSON: ErrorSpec(
        "INVALID_ARGUMENT",
        "The value of key {key!r} is not JSON ({detail}); read it as text or bytes.",
        _INVALID,
        raised_by_binding=True,
    ),
    # -- what Workers' binding refuses itself, with a TypeError, before any request --------
    ErrorKind.TYPE_UNKNOWN: ErrorSpec(
        "INVALID_ARGUMENT",
        'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
        _TYPE,
        raised_by_binding=True,
    ),
    # The binding takes expiration, expirationTtl, cacheTtl and limit as int32 (a fraction
    # is dropped); the gRPC API takes any int64 (edgekv/core/limits.py).
    ErrorKind.VALUE_OUT_OF_RANGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Value out of range. Must be between {minimum} and {maximum} (inclusive).",
        _TYPE,
        raised_by_binding=True,
    ),
    # A Python argument of a type the API does not take (a str for a number, say).
    ErrorKind.ARGUMENT_TYPE: ErrorSpec(
        "INVALID_ARGUMENT",
        "KVNamespace.{method}(): {argument} must be {expected}, not {actual}.",
        _TYPE,
        raised_by_binding=True,
        clipped=False,  # the API's own words and a type's name
    ),
    # -- accounts and API tokens (edgekv.core.accounts) ---------------------------------
    ErrorKind.ACCOUNT_ID_INVALID: ErrorSpec(
        "INVALID_ARGUMENT",
        "Invalid account id {account_id!r}: expected 32 hexadecimal characters.",
        _INVALID,
    ),
    ErrorKind.TOKEN_MISSING: ErrorSpec(
        "UNAUTHENTICATED",
        "Authentication error: this call needs an API token (Authorization: Bearer TOKEN).",
        AuthError,
        http_status=401,
        api_code=10000,
    ),
    ErrorKind.TOKEN_INVALID: ErrorSpec(
        "UNAUTHENTICATED",
        "Authentication error: the API token is not valid (malformed, unknown or revoked).",
        AuthError,
        http_status=401,
        api_code=10000,
    ),
    ErrorKind.TOKEN_READ_ONLY: ErrorSpec(
        "PERMISSION_DENIED",
        "Authentication error: this API token is read-only and cannot write.",
        AuthError,
        http_status=403,
        api_code=10000,
    ),
    ErrorKind.OPERATOR_ONLY: ErrorSpec(
        "PERMISSION_DENIED",
        "Authentication error: {operation} needs central's operator token.",
        AuthError,
        http_status=403,
        api_code=10000,
    ),
    # A path naming an account the token does not belong to.
    ErrorKind.ACCOUNT_FORBIDDEN: ErrorSpec(
        "PERMISSION_DENIED",
        "Authentication error: this API token cannot reach account {account_id}.",
        AuthError,
        http_status=403,
        api_code=10000,
    ),
    ErrorKind.TOKEN_NOT_FOUND: ErrorSpec(
        "NOT_FOUND", "No API token has the id {token_id!r}.", NotFoundError, http_status=404
    ),
    # The legacy X-Auth-Email/X-Auth-Key pair: Cloudflare's code for an unknown API key.
    ErrorKind.API_KEY_UNSUPPORTED: ErrorSpec(
        "UNAUTHENTICATED",
        "Unknown X-Auth-Key or X-Auth-Email: edgekv takes API tokens only; send "
        "Authorization: Bearer TOKEN (CLOUDFLARE_API_TOKEN) instead.",
        AuthError,
        http_status=400,
        api_code=9103,
    ),
    # -- what only the REST API answers (the api package): HTTP's own ways to go wrong ----
    # A read of a key that holds no value (gRPC answers found = false instead).
    ErrorKind.KEY_NOT_FOUND: ErrorSpec(
        "NOT_FOUND", "{operation}: 'key not found'", NotFoundError, http_status=404, api_code=10009
    ),
    # Cloudflare's words for a path it does not serve.
    ErrorKind.ROUTE_NOT_FOUND: ErrorSpec(
        "NOT_FOUND",
        "Could not route to {path}, perhaps your object identifier is invalid?",
        NotFoundError,
        http_status=400,
        api_code=7003,
    ),
    ErrorKind.METHOD_NOT_ALLOWED: ErrorSpec(
        "INVALID_ARGUMENT",
        "Method {method} not allowed for {path}.",
        _INVALID,
        http_status=405,
        api_code=10405,
    ),
    ErrorKind.BODY_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", "Invalid request body: {detail}.", _INVALID, api_code=10001
    ),
    ErrorKind.PARAMETER_INVALID: ErrorSpec(
        "INVALID_ARGUMENT", "Invalid {name} of {value!r}: {detail}.", _INVALID, api_code=10001
    ),
    ErrorKind.BODY_TOO_LARGE: ErrorSpec(
        "INVALID_ARGUMENT",
        "Request body of {length} bytes exceeds the limit of {limit} bytes.",
        _INVALID,
        http_status=413,
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


def binding_error(exc: KVError, operation: str) -> KVError:
    """``exc`` as a Worker's binding reports it: ``KV {operation} failed: {status} {message}``.

    ``operation`` is GET, PUT, DELETE or GET_BULK (a list's errors say GET, as Workers'
    do). Errors the binding raises itself (TypeErrors, JSON's SyntaxError) keep their bare
    message, as does an error that has its prefix already. The class and kind stay.
    """
    spec = REGISTRY[exc.kind]
    if spec.raised_by_binding or exc.message != exc.reason:
        return exc
    message = f"KV {operation} failed: {spec.http_status} {exc.message}"
    return type(exc)(exc.kind, message, reason=exc.message)


def from_kind_name(kind_name: str, message: str) -> KVError:
    """Rebuild an error received over the wire (kind name + message) as the same class."""
    try:
        kind = ErrorKind(kind_name)
    except ValueError:
        return KVError(ErrorKind.INTERNAL, message)
    return REGISTRY[kind].exception(kind, message)
