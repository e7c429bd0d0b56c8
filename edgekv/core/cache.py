"""The edge's cache policy: when a cached copy may answer a read, and how.

Theory of operation: an edge keeps *copies* of what central answered — a
version, or "not found" (negative caching) — stamped with when they were
fetched. A read brings its own ``cacheTtl`` T:

* a copy younger than T whose key has not expired is a **HIT** (a later read
  with a smaller T therefore treats an older copy as expired — Workers KV
  documents exactly that), and if refresh-ahead is on and the copy is in the
  last ``refresh_fraction`` of T, a background refresh is due;
* otherwise the edge fetches from central: **MISS** when it had no copy,
  **REVALIDATED** when central still has the version the copy held,
  **EXPIRED** when central has another;
* when central cannot be reached, an old copy may be served as **STALE** if it
  is less than ``max_stale_s`` past its freshness; a copy whose key has
  expired is served as "not found" then, since the copy itself says the key is
  gone. With no usable copy the read fails: the edge never invents data.

A copy never outlives its key's expiration. Nothing here reads a clock:
``now`` comes in, decisions go out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgekv.core.model import Version

# Bytes a cache entry costs beyond its key, value and metadata (bookkeeping),
# so that a cache of many tiny entries is still bounded.
ENTRY_OVERHEAD_BYTES = 200


class CacheStatus(enum.Enum):
    HIT = "HIT"
    MISS = "MISS"
    EXPIRED = "EXPIRED"
    STALE = "STALE"
    REVALIDATED = "REVALIDATED"


class Freshness(enum.Enum):
    FRESH = "fresh"  # answer from the copy
    FRESH_REFRESH = "fresh, refresh ahead"  # answer from the copy and refresh it
    TOO_OLD = "too old"  # fetch from central


@dataclass(frozen=True, slots=True)
class CachedValue:
    """A copy of what central answered for one key."""

    namespace_id: str
    key: str
    # None is a negative entry: central said the key does not exist.
    version: Version | None
    # Simulated time the copy was fetched from central (or written through here).
    fetched_at: float
    # Central's newest revision when the copy was fetched.
    fetched_at_revision: int

    @property
    def revision(self) -> int:
        return 0 if self.version is None else self.version.revision

    @property
    def expires_at(self) -> float | None:
        return None if self.version is None else self.version.expiration

    @property
    def size_bytes(self) -> int:
        size = ENTRY_OVERHEAD_BYTES + len(self.key.encode("utf-8"))
        if self.version is not None:
            size += len(self.version.value) + len(self.version.metadata_json or "")
        return size

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.fetched_at)

    def served_version(self, now: float) -> Version | None:
        """What the copy says now: its version, or None once the key has expired."""
        if self.version is None or not self.version.is_live(now):
            return None
        return self.version


def judge(
    fetched_at: float,
    expires_at: float | None,
    cache_ttl_s: float,
    now: float,
    refresh_fraction: float = 0.0,
) -> Freshness:
    """May a copy fetched at ``fetched_at`` answer a read with this cacheTtl now?"""
    if expires_at is not None and now >= expires_at:
        return Freshness.TOO_OLD
    age_s = now - fetched_at
    if age_s >= cache_ttl_s:
        return Freshness.TOO_OLD
    if refresh_fraction > 0 and age_s >= cache_ttl_s * (1 - refresh_fraction):
        return Freshness.FRESH_REFRESH
    return Freshness.FRESH


def status_after_fetch(previous_revision: int | None, fetched_revision: int) -> CacheStatus:
    """The status of a read that went to central; ``previous_revision`` None: no copy."""
    if previous_revision is None:
        return CacheStatus.MISS
    if previous_revision == fetched_revision:
        return CacheStatus.REVALIDATED
    return CacheStatus.EXPIRED


def may_serve_stale(fetched_at: float, cache_ttl_s: float, now: float, max_stale_s: float) -> bool:
    """Is a copy at most ``max_stale_s`` past the end of its freshness?"""
    return now - (fetched_at + cache_ttl_s) <= max_stale_s


def retention_s(cache_ttl_s: float, max_stale_s: float) -> float:
    """How long a store should keep a copy: fresh for the filling read, then stale-servable."""
    return cache_ttl_s + max_stale_s
