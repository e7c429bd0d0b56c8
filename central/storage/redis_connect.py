"""How central reaches its Redis: a ``redis://`` URL directly, or ``redis+sentinel://``
through Redis Sentinel, so that after a failover central follows the new primary.

Theory of operation:

* **The Sentinel address**, exactly::

      redis+sentinel://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]

  - ``HOST:PORT``, one or more, comma-separated: the Sentinels to ask (an IPv6
    host in brackets, ``[::1]:26379``). The port is required: there is no
    default to guess wrong.
  - ``MASTER_NAME``: the name the Sentinels monitor the primary under (their
    ``sentinel monitor MASTER_NAME HOST PORT QUORUM``), percent-encoded if it
    holds a ``/``; not empty.
  - ``DB``: the database number on the primary, 0 when left out.
  - ``USER`` and ``PASSWORD``, percent-encoded: what central logs in to the
    Redis servers (the primary, whichever that is) with. The Sentinels are
    asked without a password. A URL without a password takes the one of
    ``--redis-password-file`` or ``EDGEKV_REDIS_PASSWORD``, and every printed
    line shows it as ``***`` (:mod:`edgekv.redis_urls`), as for ``redis://``.
  - Nothing else: no query string, no fragment, no empty host.

* **Opening.** Before central connects to any Redis it asks every Sentinel
  which masters it monitors (``SENTINEL MASTERS``): a master name no
  reachable Sentinel knows is refused (ValueError, naming the ones they do
  know), and no Sentinel reachable is a ConnectionError. Then redis-py's
  :meth:`~redis.asyncio.sentinel.Sentinel.master_for` makes the client: every
  new connection asks the Sentinels for the primary's address first, so once
  Sentinel has promoted a replica, the next connection goes to it. Until then
  calls fail (STORAGE_FAILED, not definite), as for a Redis out of reach.
* **Never resent.** Both kinds of client get the store's retry (none): a
  commit whose connection broke is not sent again, to this primary or the
  next one — it may have been applied already.
* **One client type.** :class:`CentralRedis` closes the Sentinel clients with
  its own, and with ``--durability replicated`` makes each single write
  script wait for a replica (:mod:`central.storage.redis_replication`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.commands.core import AsyncScript

from central.storage import redis_guard, redis_replication
from edgekv.redis_urls import SENTINEL_SCHEME, check_url, first_line, redacted

SENTINEL_FORM = f"{SENTINEL_SCHEME}://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"


@dataclass(frozen=True)
class SentinelAddress:
    """A parsed ``redis+sentinel://`` URL (see the module's docstring)."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The address a ``redis+sentinel://`` URL names; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME or not url.startswith(f"{SENTINEL_SCHEME}://"):
        raise ValueError(f"expected {SENTINEL_FORM}")
    if parts.query or parts.fragment:
        raise ValueError(f"a Sentinel URL takes no query string or fragment: {SENTINEL_FORM}")
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = tuple(_sentinel(item) for item in hosts.split(","))
    master_name, _, db = parts.path.removeprefix("/").partition("/")
    if not master_name:
        raise ValueError(f"no master name after the Sentinels: {SENTINEL_FORM}")
    if db and not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    return SentinelAddress(
        sentinels,
        unquote(master_name),
        int(db or 0),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def _sentinel(item: str) -> tuple[str, int]:
    parts = urlsplit(f"//{item}")
    try:
        port = parts.port  # ValueError for a port out of range
    except ValueError:
        raise ValueError(f"Sentinel {item!r}: its port is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"Sentinel {item!r}: its port is not a number from 1 to 65535")
    if not parts.hostname or port is None:
        raise ValueError(f"Sentinel {item!r} is not HOST:PORT")
    return parts.hostname, port


class CentralRedis(aioredis.Redis):
    """The client central's Redis store uses: redis-py's, plus what central adds.

    ``sentinels`` (when it came through Sentinel) is closed with the client.
    With ``wait_for_replica``, a guarded write script called on its own (not in
    a pipeline: the group commit asks in its own) is sent in a pipeline with
    ``WAIT``, and fails unless a replica acknowledged it.
    """

    sentinels: Sentinel | None = None
    wait_for_replica = False
    shown_url = ""

    # redis-py types register_script as its sync client's (Script); this client's is async.
    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        guarded = isinstance(script, str) and script.startswith(redis_guard.GUARD_LUA)
        if self.wait_for_replica and guarded:
            return redis_replication.ReplicatedScript(self, script, self.shown_url)
        return AsyncScript(self, script)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()


async def open_client(
    url: str, *, wait_for_replica: bool, connect_timeout_s: float, retry: Retry
) -> CentralRedis:
    """A client for ``url`` (``redis://`` or ``redis+sentinel://``), not yet connected to
    the primary; ValueError or ConnectionError, each one line, when it cannot be had."""
    shown = redacted(url)
    try:
        if urlsplit(url).scheme == SENTINEL_SCHEME:
            address = parse_sentinel_url(url)
        else:
            check_url(url)
            client = cast(
                CentralRedis,
                CentralRedis.from_url(url, socket_connect_timeout=connect_timeout_s, retry=retry),
            )
            return _configured(client, shown, wait_for_replica)
    except ValueError as exc:
        raise ValueError(f"cannot use Redis URL {shown}: {exc}") from None
    # Sentinels answer at once or not at all: no retries, and a bounded wait for each.
    sentinel_options = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": connect_timeout_s,
        "retry": retry,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels), sentinel_kwargs=sentinel_options
    )
    try:
        await _check_master_known(sentinel, address, shown)
    except BaseException:
        await sentinel.aclose()
        raise
    client = cast(
        CentralRedis,
        sentinel.master_for(
            address.master_name,
            redis_class=CentralRedis,
            db=address.db,
            username=address.username,
            password=address.password,
            socket_connect_timeout=connect_timeout_s,
            retry=retry,
        ),
    )
    client.sentinels = sentinel
    return _configured(client, shown, wait_for_replica)


def _configured(client: CentralRedis, shown: str, wait_for_replica: bool) -> CentralRedis:
    client.shown_url = shown
    client.wait_for_replica = wait_for_replica
    return client


async def _check_master_known(sentinel: Sentinel, address: SentinelAddress, shown: str) -> None:
    """Refuse a master name no reachable Sentinel monitors, or Sentinels none of which
    answers, each in one line that says which."""
    unreachable: list[str] = []
    known: set[str] = set()
    for (host, port), client in zip(address.sentinels, sentinel.sentinels, strict=True):
        try:
            masters = cast(dict[str, Any], await client.sentinel_masters())
        except (redis_errors.RedisError, OSError) as exc:
            unreachable.append(f"{host}:{port}: {first_line(exc)}")
            continue
        if address.master_name in masters:
            return
        known.update(masters)
    if len(unreachable) == len(address.sentinels):
        raise ConnectionError(f"cannot reach any Sentinel of {shown} ({'; '.join(unreachable)})")
    monitored = ", ".join(repr(name) for name in sorted(known)) or "none"
    also = f"; unreachable: {'; '.join(unreachable)}" if unreachable else ""
    raise ValueError(
        f"no Sentinel of {shown} monitors a master named {address.master_name!r} (they "
        f"monitor: {monitored}{also}): after the Sentinels' addresses, put the name their "
        "'sentinel monitor' line gives"
    )
