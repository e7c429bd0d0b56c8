"""Who may read or write through an edge: central decides, the edge remembers a while.

Theory of operation: an edge's cache is shared by every caller, so a HIT must
not answer a caller central would refuse. When a call carries an API token
(``authorization: Bearer …``), the edge asks central once whether that token
may read — or write — that namespace (``Authorize``, through the modelled link
like any call), and keeps a yes for :data:`DEFAULT_LIFETIME_S` real seconds: a
revoked token reaches what it reached for at most that long at an edge (central
itself refuses it at once). A no is not kept: the caller gets central's
answer (NOT_FOUND for another account's namespace, PERMISSION_DENIED,
UNAUTHENTICATED), and asking again costs only the asker.

The caller's token then travels with the edge's own calls to central made for
that call — a MISS's fetch, a write — through :data:`CALLER_AUTHORIZATION`, a
context variable the upstream reads, so central enforces the same rules again.
Calls the edge makes for itself (watches) carry the edge's own token, if it
has one. A call without a token is refused with TOKEN_MISSING when the edge
runs with ``--auth`` (as its central does); otherwise it is the operator's, as
in a cluster without tokens, and costs nothing here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol

from edgekv.core.accounts import token_digest
from edgekv.core.errors import ErrorKind, error

# How long a yes from central is kept (real seconds).
DEFAULT_LIFETIME_S = 10.0
# Kept answers at most; past that the oldest are dropped.
MAX_KEPT = 10_000

# The ``authorization`` of the call being served, for the upstream calls made for it.
CALLER_AUTHORIZATION: ContextVar[str | None] = ContextVar("caller_authorization", default=None)


class Authorizer(Protocol):
    async def authorize(
        self, namespace_id: str, write: bool, authorization: str, deadline: float | None
    ) -> None: ...


class AccessChecks:
    def __init__(
        self,
        central: Authorizer,
        *,
        require_token: bool = False,
        lifetime_s: float = DEFAULT_LIFETIME_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._central = central
        self.require_token = require_token
        self._lifetime_s = lifetime_s
        self._now = now
        # (token digest, namespace id, write) → when the yes expires
        self._kept: dict[tuple[str, str, bool], float] = {}

    async def check(
        self, authorization: str | None, namespace_id: str, *, write: bool, deadline: float | None
    ) -> None:
        """Return if the caller may; raise central's refusal otherwise. Sets the caller's
        token for the upstream calls made while serving it."""
        if authorization is None:
            if self.require_token:
                raise error(ErrorKind.TOKEN_MISSING)
            return
        CALLER_AUTHORIZATION.set(authorization)
        asked = (token_digest(authorization), namespace_id, write)
        now = self._now()
        if self._kept.get(asked, 0.0) > now:
            return
        await self._central.authorize(namespace_id, write, authorization, deadline)
        if len(self._kept) >= MAX_KEPT:
            self._forget_oldest(now)
        self._kept[asked] = now + self._lifetime_s

    def _forget_oldest(self, now: float) -> None:
        live = {asked: until for asked, until in self._kept.items() if until > now}
        if len(live) >= MAX_KEPT:  # all live: drop the half that expires first
            keep = sorted(live.items(), key=lambda item: item[1])[MAX_KEPT // 2 :]
            live = dict(keep)
        self._kept = live
