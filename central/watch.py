"""Fan-out of committed changes to the watchers of each namespace.

Theory of operation: the service publishes every committed change to the hub;
each watcher owns a backlog of the changes it has not been sent yet, bounded
twice: in changes (``backlog``) and in bytes (``backlog_bytes``, keys and — for
a watcher that asked for them — values, plus a fixed cost per change; a
watcher that did not ask for values is kept none). The bytes of the message
being sent count until the watcher's stream takes the next one, so a watcher
that stops reading holds at most ``backlog_bytes`` of changes here. A watcher
that falls behind either bound is not slowed down for — it is marked
*overflowed*, what it held is let go at once, and its stream ends with
WATCH_LAGGING, naming the revision to resume from; it can catch up from the
change log. A message carries at most ``MAX_BATCH_BYTES`` of changes (always
at least one). Deleting a namespace ends its watchers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import replace

from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.model import Change

MiB = 1024 * 1024
# What a watcher that stops reading may cost central, at most.
DEFAULT_BACKLOG_BYTES = 64 * MiB
# Changes per Watch message, in bytes: many small changes go together, a big value alone.
MAX_BATCH_BYTES = 4 * MiB
# Bookkeeping per change beyond its key and value: the objects and the message's fields.
CHANGE_OVERHEAD_BYTES = 200


def change_bytes(change: Change) -> int:
    """What holding ``change`` costs, as the backlog counts it."""
    size = CHANGE_OVERHEAD_BYTES + len(change.key)
    if change.version is not None:
        size += len(change.version.value) + len(change.version.metadata_json or "")
    return size


def _amount(size_bytes: int) -> str:
    """``64 MiB`` for a whole number of MiB, else ``10,000 bytes``."""
    if size_bytes >= MiB and size_bytes % MiB == 0:
        return f"{size_bytes // MiB} MiB"
    return f"{size_bytes:,} bytes"


class Subscription:
    def __init__(
        self,
        namespace_id: str,
        backlog: int,
        backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        include_values: bool = True,
    ) -> None:
        self.namespace_id = namespace_id
        self.backlog = backlog
        self.backlog_bytes = backlog_bytes
        self.include_values = include_values
        self._pending: deque[tuple[Change, int]] = deque()
        self._pending_bytes = 0
        # The bytes of the batch last handed out: held until the next one is asked for.
        self._sending_bytes = 0
        self._wake = asyncio.Event()
        self._failure: KVError | None = None
        self._overflow: str | None = None

    def offer(self, change: Change) -> None:
        if self._overflow is not None:
            return
        if not self.include_values and change.version is not None:
            change = replace(change, version=None)  # never sent: not kept either
        size = change_bytes(change)
        if len(self._pending) >= self.backlog:
            self._overflowed(f"{self.backlog} changes")
        elif self._pending_bytes + self._sending_bytes + size > self.backlog_bytes:
            self._overflowed(f"{_amount(self.backlog_bytes)} of changes")
        else:
            self._pending.append((change, size))
            self._pending_bytes += size
        self._wake.set()

    def pending_bytes(self) -> int:
        """The bytes of the changes waiting to be sent (what the backlog bound counts)."""
        return self._pending_bytes

    def lag(self, why: str) -> None:
        """End the stream with WATCH_LAGGING (resume from the change log): ``why`` it
        cannot be sent what it missed."""
        self._overflowed(why)
        self._wake.set()

    def _overflowed(self, bound: str) -> None:
        self._overflow = bound
        # The stream ends without sending them: let them go now, not when it ends.
        self._pending.clear()
        self._pending_bytes = 0

    def fail(self, failure: KVError) -> None:
        self._failure = failure
        self._wake.set()

    async def next_batch(self, last_sent: int) -> list[Change]:
        """The changes after ``last_sent`` (the batch before this one has been sent);
        raises when the stream cannot go on."""
        self._sending_bytes = 0
        while True:
            if self._failure is not None:
                raise self._failure
            if self._overflow is not None:
                raise error(ErrorKind.WATCH_LAGGING, backlog=self._overflow, resume=last_sent + 1)
            batch = self._take(last_sent)
            if batch:
                return batch
            self._wake.clear()
            await self._wake.wait()

    def _take(self, last_sent: int) -> list[Change]:
        """Pending changes after ``last_sent``, up to MAX_BATCH_BYTES (at least one)."""
        batch: list[Change] = []
        while self._pending:
            change, size = self._pending[0]
            if batch and self._sending_bytes + size > MAX_BATCH_BYTES:
                break
            self._pending.popleft()
            self._pending_bytes -= size
            if change.revision > last_sent:
                batch.append(change)
                self._sending_bytes += size
        return batch


class WatchHub:
    def __init__(self) -> None:
        # Per namespace, its watchers in the order they came (a dict as an ordered set):
        # a change reaches them in that order, the same in every run of a simulation,
        # where a set of objects would iterate in the order of their memory addresses.
        self._subscriptions: dict[str, dict[Subscription, None]] = defaultdict(dict)

    def subscribe(
        self,
        namespace_id: str,
        backlog: int,
        backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        include_values: bool = True,
    ) -> Subscription:
        subscription = Subscription(namespace_id, backlog, backlog_bytes, include_values)
        self._subscriptions[namespace_id][subscription] = None
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self._subscriptions.get(subscription.namespace_id)
        if watchers is not None:
            watchers.pop(subscription, None)
            if not watchers:
                del self._subscriptions[subscription.namespace_id]

    def watched(self, namespace_id: str) -> bool:
        """Whether anyone watches the namespace (else its changes need not be read)."""
        return namespace_id in self._subscriptions

    def lag(self, namespace_id: str | None, why: str) -> None:
        """End the watch streams of a namespace (of all, for None) with WATCH_LAGGING."""
        groups = (
            list(self._subscriptions.values())
            if namespace_id is None
            else [self._subscriptions.get(namespace_id, {})]
        )
        for group in groups:
            for subscription in list(group):
                subscription.lag(why)

    def publish(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for subscription in self._subscriptions.get(change.namespace_id, ()):
                subscription.offer(change)

    def backlog(self) -> tuple[int, int]:
        """How many watchers there are, and the bytes of changes they have not been sent
        (as the backlog bound counts them) — read by the metrics, from another thread."""
        watchers = [s for group in list(self._subscriptions.values()) for s in list(group)]
        return len(watchers), sum(s.pending_bytes() for s in watchers)

    def end_namespace(self, namespace_id: str) -> None:
        failure = error(ErrorKind.NAMESPACE_NOT_FOUND, operation="watch", namespace_id=namespace_id)
        for subscription in self._subscriptions.pop(namespace_id, {}):
            subscription.fail(failure)
