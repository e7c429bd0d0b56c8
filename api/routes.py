"""Which KV route a request names: the raw, still-encoded path in, a route out.

Theory of operation: Cloudflare's KV routes all live under
``/client/v4/accounts/{account}/storage/kv/namespaces``. A key is the one path
segment after ``values/`` or ``metadata/``, percent-encoded by the client;
it may hold ``%2F`` (a ``/`` in the key), ``%3F`` and ``%25``. So routing
must happen on the *raw* path, and the key be decoded exactly once, after
routing — a framework's router, which decodes first, would send ``a%2Fb`` to a
route that does not exist. ``+`` is not a space in a path: it stays ``+``.
The key is decoded to bytes; central checks that they are UTF-8
(KEY_NOT_UTF8), so the rule lives in one place.

A base URL given with a trailing slash makes some clients send
``/client/v4//accounts/…``: empty segments before ``accounts`` are skipped.
Anywhere else an empty segment is no route — in particular wrangler turns the
key ``..`` into ``PUT …/namespaces/ID/`` (its URL parser removes the dot
segment), which must not be taken for a rename of the namespace.

No I/O here: :func:`match` is a pure function, tested on its own.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from edgekv.core.errors import ErrorKind, error

PREFIX = "/client/v4"
_ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")


class Op(enum.Enum):
    LIST_NAMESPACES = "list namespaces"
    CREATE_NAMESPACE = "create namespace"
    GET_NAMESPACE = "get namespace"
    RENAME_NAMESPACE = "rename namespace"
    DELETE_NAMESPACE = "delete namespace"
    GET_VALUE = "get value"
    PUT_VALUE = "put value"
    DELETE_VALUE = "delete value"
    GET_METADATA = "get metadata"
    LIST_KEYS = "list keys"
    BULK_PUT = "bulk put"
    BULK_DELETE = "bulk delete"
    BULK_GET = "bulk get"
    # Outside an account: who the token is (wrangler asks for its memberships when no
    # account id is set; the SDKs verify a token).
    MEMBERSHIPS = "list memberships"
    VERIFY_TOKEN = "verify token"


# (tail of the path after the namespace id, method) → operation. "" is the namespace
# itself; "values/*" a key.
_NAMESPACE_ROUTES: dict[tuple[str, str], Op] = {
    ("", "GET"): Op.GET_NAMESPACE,
    ("", "PUT"): Op.RENAME_NAMESPACE,
    ("", "DELETE"): Op.DELETE_NAMESPACE,
    ("values/*", "GET"): Op.GET_VALUE,
    ("values/*", "PUT"): Op.PUT_VALUE,
    ("values/*", "DELETE"): Op.DELETE_VALUE,
    ("metadata/*", "GET"): Op.GET_METADATA,
    ("keys", "GET"): Op.LIST_KEYS,
    ("bulk", "PUT"): Op.BULK_PUT,
    # wrangler's route for a bulk delete; the current API and SDKs use bulk/delete.
    ("bulk", "DELETE"): Op.BULK_DELETE,
    ("bulk/delete", "POST"): Op.BULK_DELETE,
    ("bulk/get", "POST"): Op.BULK_GET,
}
_ACCOUNT_ROUTES: dict[str, Op] = {"GET": Op.LIST_NAMESPACES, "POST": Op.CREATE_NAMESPACE}
# Routes of no account: path after /client/v4/ → (method → operation).
_TOKEN_ROUTES: dict[str, dict[str, Op]] = {
    "memberships": {"GET": Op.MEMBERSHIPS},
    "user/tokens/verify": {"GET": Op.VERIFY_TOKEN},
}
ACCOUNTLESS = frozenset({Op.MEMBERSHIPS, Op.VERIFY_TOKEN})


@dataclass(frozen=True, slots=True)
class Route:
    op: Op
    # The account the path names; "" for the routes of no account (ACCOUNTLESS).
    account_id: str
    # The namespace id as the path gives it (central checks its form); "" for none.
    namespace_id: str = ""
    # The key, percent-decoded once, as bytes; b"" for none.
    key: bytes = b""


def match(method: str, raw_path: str) -> Route:
    """The route ``method`` and the raw ``raw_path`` (no query) name.

    ROUTE_NOT_FOUND when the path is none of the KV routes, METHOD_NOT_ALLOWED when
    it is one but not for ``method``.
    """
    if not raw_path.startswith(PREFIX + "/"):
        raise _no_route(raw_path)
    rest_of_path = raw_path[len(PREFIX) + 1 :].lstrip("/")
    if rest_of_path in _TOKEN_ROUTES:
        return Route(_allowed(_TOKEN_ROUTES[rest_of_path].get(method), method, raw_path), "")
    segments = rest_of_path.split("/")
    head, rest = segments[:5], segments[5:]
    if len(head) < 5 or head[0] != "accounts" or head[2:] != ["storage", "kv", "namespaces"]:
        raise _no_route(raw_path)
    account_id = head[1]
    if _ACCOUNT_ID.fullmatch(account_id) is None:
        raise _no_route(raw_path)
    if not rest:
        return Route(_allowed(_ACCOUNT_ROUTES.get(method), method, raw_path), account_id)
    namespace_id, tail = rest[0], rest[1:]
    if not namespace_id or "" in tail:
        raise _no_route(raw_path)
    if len(tail) >= 2 and tail[0] in ("values", "metadata"):
        shape, key = f"{tail[0]}/*", unquote_to_bytes("/".join(tail[1:]))
    else:
        shape, key = "/".join(tail), b""
    known = {m: op for (s, m), op in _NAMESPACE_ROUTES.items() if s == shape}
    if not known:
        raise _no_route(raw_path)
    return Route(_allowed(known.get(method), method, raw_path), account_id, namespace_id, key)


def _allowed(op: Op | None, method: str, raw_path: str) -> Op:
    if op is None:
        raise error(ErrorKind.METHOD_NOT_ALLOWED, method=method, path=raw_path)
    return op


def _no_route(raw_path: str) -> Exception:
    return error(ErrorKind.ROUTE_NOT_FOUND, path=raw_path)
