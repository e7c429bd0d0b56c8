"""Accounts, API tokens and who may do what: the rules, with no I/O.

Theory of operation: as in Cloudflare, every namespace belongs to an
*account*, named by 32 hexadecimal characters. An account is nothing but its
id: it exists once a namespace or a token names it. Namespaces made without a
token — over gRPC with central's ``--auth`` off, and every namespace stored
before accounts existed — belong to :data:`DEFAULT_ACCOUNT_ID`.

A caller is a :class:`Principal`. An API token (``Authorization: Bearer …``)
stands for its account, maybe read-only, maybe limited to some namespaces. The
*operator* — a call without a token to a central that does not require one,
or one made with central's operator token — lists and creates in the default
account and may reach any namespace by its id (edges and watchers act for
every account).

Central stores a token's SHA-256, never the token: a token is 240 random bits,
so a fast hash is as safe to keep as a slow one, and a lookup is one dict
access. A caller who may not see a namespace is told it does not exist
(NAMESPACE_NOT_FOUND, 404), so that ids do not leak across accounts; a
read-only token that writes is refused with TOKEN_READ_ONLY (403).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from edgekv.core.errors import ErrorKind, error
from edgekv.core.model import DEFAULT_ACCOUNT_ID

__all__ = ["DEFAULT_ACCOUNT_ID", "OPERATOR", "Principal", "Token"]

_ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")
# What a bearer token may look like: printable, no spaces, of a sane length. Tokens
# edgekv makes are 40 URL-safe characters, as Cloudflare's are.
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")


def validate_account_id(account_id: str) -> str:
    if _ACCOUNT_ID.fullmatch(account_id) is None:
        raise error(ErrorKind.ACCOUNT_ID_INVALID, account_id=account_id)
    return account_id


def token_digest(token: str) -> str:
    """What central stores of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization`` value ``Bearer TOKEN``; TOKEN_INVALID otherwise."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or _TOKEN.fullmatch(token) is None:
        raise error(ErrorKind.TOKEN_INVALID)
    return token


@dataclass(frozen=True, slots=True)
class Token:
    """An API token as central keeps it: its digest, never the token itself."""

    # 32 hex characters: how ``edgekv token list`` shows it and ``revoke`` names it.
    token_id: str
    digest: str
    account_id: str
    read_only: bool
    # The namespaces it may reach; empty for every namespace of its account.
    namespace_ids: tuple[str, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a call, and so what it may see and do."""

    account_id: str
    read_only: bool = False
    # None: every namespace of the account (or, for the operator, of every account).
    namespace_ids: frozenset[str] | None = None
    operator: bool = False
    # The token's id, for logs and for an edge's cache of checks; "" without a token.
    token_id: str = ""

    def may_see(self, namespace_id: str, account_id: str) -> bool:
        """Whether this caller may know that the namespace exists."""
        if self.operator:
            return True
        if account_id != self.account_id:
            return False
        return self.namespace_ids is None or namespace_id in self.namespace_ids

    def lists(self, namespace_id: str, account_id: str) -> bool:
        """Whether a listing of namespaces shows this one: the caller's account's only."""
        return account_id == self.account_id and (
            self.namespace_ids is None or namespace_id in self.namespace_ids
        )

    def require_writer(self) -> None:
        if self.read_only:
            raise error(ErrorKind.TOKEN_READ_ONLY)


# A call without a token to a central that does not require one.
OPERATOR = Principal(DEFAULT_ACCOUNT_ID, operator=True)


def principal_of(token: Token) -> Principal:
    return Principal(
        token.account_id,
        read_only=token.read_only,
        namespace_ids=frozenset(token.namespace_ids) if token.namespace_ids else None,
        token_id=token.token_id,
    )


def sorted_tokens(tokens: Iterable[Token]) -> list[Token]:
    """Tokens as ``edgekv token list`` shows them: by account, then oldest first."""
    return sorted(tokens, key=lambda token: (token.account_id, token.created_at, token.token_id))
