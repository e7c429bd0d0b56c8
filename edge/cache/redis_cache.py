"""``redis://HOST:PORT/DB`` — an edge cache kept in a real Redis, shared by a region.

Theory of operation:

* **Layout.** One Redis string per cached copy::

      {prefix}{region}:{namespace_id}:{key as UTF-8 bytes}

  (``edgekv-cache:`` is the default prefix.) Every edge process of a region
  that points at the same Redis database reads and fills the same keys, so one
  process's fill is the other's HIT; other regions live under other names and
  never see them. The key part is binary-safe: it is the last field, so ``:``
  or glob characters in a key need no escaping. Namespace ids are validated
  hex before they reach a cache, and a region may not contain ``:``, so the
  fields cannot run into each other.
* **Value.** A fixed little-endian header (:data:`_HEADER`) then the metadata
  and value bytes — no pickle, nothing executable, and floats travel as IEEE
  doubles, so a copy comes back bit for bit::

      B  format (1)           q  revision        (0 for a negative copy)
      d  fetched_at           d  commit_time     (0.0 for a negative copy)
      q  fetched_at_revision  q  expiration      (0 = never)
      B  found (1) / not (0)  i  metadata length (-1 = no metadata)

  A value that does not parse (another format, a truncated write by hand) is
  a miss, counted in :attr:`RedisCache.errors`, never an exception.
* **Retention** is Redis's: each SET carries ``PX``, the simulated
  ``retention_s`` turned into real milliseconds by the edge's clock, at least
  ``min_ttl_ms`` (1000 by default). The floor exists because a fast
  :class:`~edgekv.clock.ScaledClock` can turn retention into a fraction of a
  real millisecond, and a :class:`~edgekv.clock.ManualClock` into zero: such a
  copy would vanish before the reads it was fetched for. Keeping a copy longer
  than asked is always safe — the policy (:mod:`edgekv.core.cache`) judges
  freshness, key expiration and stale-serving from the copy's ``fetched_at``
  and ``expiration``, never from its presence — so the TTL is not cut short at
  the key's own expiration either: until retention ends, an expired copy still
  lets an edge cut off from central answer "not found" as STALE.
* **Failures.** A cache is an optimisation and central is authoritative, so a
  Redis that is down or refuses a command never breaks a read: ``get`` answers
  None (a miss), ``put`` and ``delete`` do nothing; each failure adds one to
  :attr:`RedisCache.errors` and a burst of them logs one warning (and one
  "reachable again" line when a call next succeeds). The client gives up
  fast: one retry (it replaces a pooled connection that a Redis restart
  closed), short socket timeouts. ``flush`` and ``occupancy`` are operator
  requests whose answer would be a lie if it were made up, so they raise
  UNAVAILABLE instead.
* **Ordering is per process.** An edge looks a copy up, weighs its answer
  against it (:func:`edgekv.core.cache.worth_keeping`) and then SETs: two
  steps, not one atomic compare-and-set. Two processes of a region filling one
  key at once can therefore leave the older of their two answers — each
  within its own cacheTtl of central, as any copy is, but a process may see
  the key go back to the older one. Doing it atomically would take a Lua
  script comparing the stored header on every fill; not done.
* **Occupancy** counts this region's keys with SCAN (O(keys), for stats and
  tests, not a hot path). ``bytes_cached`` and ``evictions`` are 0: the cache
  is shared, so no node knows its size, and Redis's own eviction counters are
  per server, not per region.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, cast

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edge.cache.base import Occupancy
from edgekv.clock import Clock
from edgekv.core.cache import CachedValue
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.model import Version
from edgekv.redis_urls import check_url, first_line, redacted

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "edgekv-cache:"
# A copy lives at least this long in real time (see the module docstring).
DEFAULT_MIN_TTL_MS = 1000
# Redis refuses an expiry that overflows its clock; ~100 years is "forever".
MAX_TTL_MS = 100 * 365 * 24 * 3600 * 1000
CONNECT_TIMEOUT_S = 1.0
# Long enough to move a 25 MiB value, short enough that a hung Redis costs a
# read seconds, not forever.
SOCKET_TIMEOUT_S = 3.0
SCAN_COUNT = 1000
UNLINK_BATCH = 500

FORMAT = 1
_HEADER = struct.Struct("<BdqBqdqi")
# Errors of a call to Redis that mean "the cache is unavailable", not a bug here.
_REDIS_FAILURES: tuple[type[BaseException], ...] = (redis_errors.RedisError, OSError)


class CorruptEntry(ValueError):
    """A cache value that is not in :data:`FORMAT`."""


def encode(copy: CachedValue) -> bytes:
    """``copy`` as header + metadata + value (its namespace and key are the Redis key)."""
    version = copy.version
    if version is None:
        return _HEADER.pack(FORMAT, copy.fetched_at, copy.fetched_at_revision, 0, 0, 0.0, 0, -1)
    metadata = b"" if version.metadata_json is None else version.metadata_json.encode("utf-8")
    header = _HEADER.pack(
        FORMAT,
        copy.fetched_at,
        copy.fetched_at_revision,
        1,
        version.revision,
        version.commit_time,
        version.expiration or 0,
        -1 if version.metadata_json is None else len(metadata),
    )
    return b"".join((header, metadata, version.value))


def decode(namespace_id: str, key: str, raw: bytes) -> CachedValue:
    """The copy :func:`encode` wrote; CorruptEntry if ``raw`` is not one."""
    if len(raw) < _HEADER.size:
        raise CorruptEntry(f"{len(raw)} bytes is shorter than the header")
    (
        layout,
        fetched_at,
        fetched_at_revision,
        found,
        revision,
        commit_time,
        expiration,
        metadata_len,
    ) = _HEADER.unpack_from(raw)
    if layout != FORMAT:
        raise CorruptEntry(f"format {layout}, expected {FORMAT}")
    if found == 0:
        return CachedValue(namespace_id, key, None, fetched_at, fetched_at_revision)
    if found != 1:
        raise CorruptEntry(f"found flag {found}")
    body = memoryview(raw)[_HEADER.size :]
    if metadata_len < -1 or metadata_len > len(body):
        raise CorruptEntry(f"metadata length {metadata_len} with {len(body)} bytes left")
    metadata_json: str | None = None
    if metadata_len >= 0:
        try:
            metadata_json = bytes(body[:metadata_len]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptEntry(f"metadata is not UTF-8: {exc}") from None
    value = bytes(body[max(0, metadata_len) :])
    version = Version(
        key=key,
        value=value,
        metadata_json=metadata_json,
        expiration=expiration or None,
        revision=revision,
        commit_time=commit_time,
    )
    return CachedValue(namespace_id, key, version, fetched_at, fetched_at_revision)


def ttl_ms(real_seconds: float, min_ttl_ms: int) -> int:
    """Real seconds as a Redis PX: whole milliseconds, at least ``min_ttl_ms``, capped."""
    millis = real_seconds * 1000
    if not millis < MAX_TTL_MS:  # also inf and NaN
        return MAX_TTL_MS
    return max(min_ttl_ms, 1, round(millis))


def glob_escape(text: bytes) -> bytes:
    """``text`` as a literal in a Redis MATCH pattern."""
    escaped = bytearray()
    for byte in text:
        if byte in b"\\*?[]":
            escaped += b"\\"
        escaped.append(byte)
    return bytes(escaped)


class RedisCache:
    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        *,
        clock: Clock,
        region: str,
        prefix: str = DEFAULT_PREFIX,
        min_ttl_ms: int = DEFAULT_MIN_TTL_MS,
    ) -> None:
        """Wrap a client; use :meth:`open`, which also checks the URL and that Redis answers."""
        if not region or ":" in region:
            raise ValueError(f"a cache region must be non-empty and without ':', got {region!r}")
        if min_ttl_ms < 1:
            raise ValueError(f"min_ttl_ms must be at least 1, got {min_ttl_ms}")
        self._client = client
        self._url = redacted(url)
        self._clock = clock
        self.region = region
        self._region_prefix = f"{prefix}{region}:".encode()
        self._min_ttl_ms = min_ttl_ms
        # Redis calls that failed (get, put, delete, flush, occupancy) and
        # values that did not parse; a failing burst logs one warning.
        self.errors = 0
        self._failing = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Clock,
        region: str,
        prefix: str = DEFAULT_PREFIX,
        min_ttl_ms: int = DEFAULT_MIN_TTL_MS,
    ) -> RedisCache:
        """Connect to ``url`` (``redis://HOST:PORT/DB``) and check Redis answers.

        Raises ValueError for a malformed URL, a bad region or a Redis that
        refuses us (no such database, wrong password), ConnectionError when
        Redis cannot be reached; each message is one line without the password.
        """
        shown = redacted(url)
        try:
            check_url(url)
            client = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
                retry=Retry(NoBackoff(), 1, (redis_errors.ConnectionError,)),
            )
        except ValueError as exc:
            raise ValueError(f"cannot use Redis cache URL {shown}: {first_line(exc)}") from None
        try:
            cache = cls(
                client, url, clock=clock, region=region, prefix=prefix, min_ttl_ms=min_ttl_ms
            )
        except ValueError:
            await client.aclose()
            raise
        try:
            await client.ping()
        except (redis_errors.ResponseError, redis_errors.AuthenticationError) as exc:
            await client.aclose()
            raise ValueError(f"cannot use Redis cache at {shown}: {first_line(exc)}") from None
        except _REDIS_FAILURES as exc:
            await client.aclose()
            raise ConnectionError(
                f"cannot reach Redis cache at {shown}: {first_line(exc)}"
            ) from None
        return cache

    # -- Redis key names ------------------------------------------------------------

    def _redis_key(self, namespace_id: str, key: str) -> bytes:
        return b"".join(
            (self._region_prefix, namespace_id.encode("utf-8"), b":", key.encode("utf-8"))
        )

    def _pattern(self, namespace_id: str | None) -> bytes:
        """MATCH pattern for this region's keys (of one namespace)."""
        literal = self._region_prefix
        if namespace_id is not None:
            literal += namespace_id.encode("utf-8") + b":"
        return glob_escape(literal) + b"*"

    # -- failure bookkeeping --------------------------------------------------------

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.errors += 1
        if not self._failing:
            self._failing = True
            log.warning(
                "Redis cache at %s failed (%s: %s); serving without it until it answers",
                self._url,
                operation,
                first_line(exc),
            )

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            log.warning(
                "Redis cache at %s answers again (%d failed calls so far)", self._url, self.errors
            )

    def _unavailable(self, operation: str, exc: BaseException) -> KVError:
        self._failed(operation, exc)
        return error(
            ErrorKind.UNAVAILABLE,
            detail=f"Redis cache at {self._url} failed ({operation}): {first_line(exc)}",
        )

    # -- CacheStore -------------------------------------------------------------------

    async def get(self, namespace_id: str, key: str) -> CachedValue | None:
        try:
            raw = await self._client.get(self._redis_key(namespace_id, key))
        except _REDIS_FAILURES as exc:
            self._failed("get", exc)
            return None
        self._succeeded()
        if raw is None:
            return None
        try:
            return decode(namespace_id, key, cast(bytes, raw))
        except CorruptEntry as exc:
            self.errors += 1
            log.warning("Redis cache entry for %s/%r is unreadable: %s", namespace_id, key, exc)
            return None

    async def put(self, copy: CachedValue, retention_s: float) -> None:
        px = ttl_ms(self._clock.real_seconds(retention_s), self._min_ttl_ms)
        try:
            await self._client.set(
                self._redis_key(copy.namespace_id, copy.key), encode(copy), px=px
            )
        except _REDIS_FAILURES as exc:
            self._failed("put", exc)
            return
        self._succeeded()

    async def delete(self, namespace_id: str, key: str) -> None:
        try:
            await self._client.unlink(self._redis_key(namespace_id, key))
        except _REDIS_FAILURES as exc:
            self._failed("delete", exc)
            return
        self._succeeded()

    async def flush(self, namespace_id: str | None = None) -> int:
        """Drop this region's entries (of one namespace); other regions keep theirs."""
        dropped = 0
        batch: list[Any] = []
        try:
            async for name in self._client.scan_iter(
                match=self._pattern(namespace_id), count=SCAN_COUNT
            ):
                batch.append(name)
                if len(batch) >= UNLINK_BATCH:
                    dropped += int(await self._client.unlink(*batch))
                    batch.clear()
            if batch:
                dropped += int(await self._client.unlink(*batch))
        except _REDIS_FAILURES as exc:
            raise self._unavailable("flush", exc) from None
        self._succeeded()
        return dropped

    async def occupancy(self) -> Occupancy:
        entries = 0
        try:
            async for _ in self._client.scan_iter(match=self._pattern(None), count=SCAN_COUNT):
                entries += 1
        except _REDIS_FAILURES as exc:
            raise self._unavailable("occupancy", exc) from None
        self._succeeded()
        return Occupancy(entries=entries, bytes_cached=0, evictions=0)

    async def close(self) -> None:
        await self._client.aclose()
