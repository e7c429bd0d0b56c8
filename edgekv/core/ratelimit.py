"""The one-write-per-second-per-key limit of Workers KV.

Theory of operation: the limiter remembers when each key was last written.
A write to a key written less than ``interval_s`` ago is refused (Workers KV
answers 429). Entries older than the interval can never refuse anything, so
they are pruned in arrival order; memory stays proportional to the keys
written in the last second. ``now`` is passed in: the limiter never reads a clock.
"""

from __future__ import annotations

from collections import deque

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, error


class KeyWriteLimiter:
    def __init__(
        self, interval_s: float = limits.WRITES_PER_KEY_INTERVAL_S, enabled: bool = True
    ) -> None:
        self.interval_s = interval_s
        self.enabled = enabled
        self._last_write: dict[tuple[str, str], float] = {}
        self._order: deque[tuple[float, tuple[str, str]]] = deque()

    def check(self, namespace_id: str, key: str, now: float) -> None:
        """Raise WRITE_RATE_LIMITED when the key was written too recently; else record it."""
        if not self.enabled:
            return
        self._prune(now)
        slot = (namespace_id, key)
        last = self._last_write.get(slot)
        if last is not None and now - last < self.interval_s:
            raise error(ErrorKind.WRITE_RATE_LIMITED)
        self._last_write[slot] = now
        self._order.append((now, slot))

    def is_limited(self, namespace_id: str, key: str, now: float) -> bool:
        """Would :meth:`check` refuse a write of the key now? (Records nothing.)"""
        if not self.enabled:
            return False
        last = self._last_write.get((namespace_id, key))
        return last is not None and now - last < self.interval_s

    def forget(self, namespace_id: str, key: str, written_at: float) -> None:
        """Undo :meth:`check`'s record of a write at ``written_at`` that failed to commit.

        A write the store refused was never made, so it must not cost the key its
        one write of the second. The slot is kept between check and commit, so
        concurrent writes to one key are still refused while the first commits.
        """
        slot = (namespace_id, key)
        if self._last_write.get(slot) == written_at:
            del self._last_write[slot]

    def _prune(self, now: float) -> None:
        while self._order and now - self._order[0][0] >= self.interval_s:
            written_at, slot = self._order.popleft()
            if self._last_write.get(slot) == written_at:
                del self._last_write[slot]

    def __len__(self) -> int:
        return len(self._last_write)
