"""Fan-out of committed changes to the watchers of each namespace.

Theory of operation: the service publishes every committed change to the hub;
each watcher owns a bounded backlog. A watcher that falls more than its
backlog behind is not slowed down for — it is marked *overflowed* and its
stream ends with WATCH_LAGGING, naming the revision to resume from, and it
can catch up from the change log. Deleting a namespace ends its watchers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable

from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.core.model import Change


def _change_bytes(change: Change) -> int:
    version = change.version
    held = len(change.key.encode("utf-8"))
    if version is not None:
        held += len(version.value) + len((version.metadata_json or "").encode("utf-8"))
    return held


class Subscription:
    def __init__(self, namespace_id: str, backlog: int) -> None:
        self.namespace_id = namespace_id
        self.backlog = backlog
        self._pending: deque[Change] = deque()
        self._wake = asyncio.Event()
        self._failure: KVError | None = None
        self._overflowed = False

    def offer(self, change: Change) -> None:
        if self._overflowed:
            return
        if len(self._pending) >= self.backlog:
            self._overflowed = True
        else:
            self._pending.append(change)
        self._wake.set()

    def pending_bytes(self) -> int:
        """The bytes of the changes waiting to be sent (computed when asked: rarely)."""
        return sum(_change_bytes(change) for change in list(self._pending))

    def fail(self, failure: KVError) -> None:
        self._failure = failure
        self._wake.set()

    async def next_batch(self, last_sent: int) -> list[Change]:
        """The changes after ``last_sent``; raises when the stream cannot go on."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._failure is not None:
                raise self._failure
            if self._overflowed:
                raise error(ErrorKind.WATCH_LAGGING, backlog=self.backlog, resume=last_sent + 1)
            batch = [change for change in self._pending if change.revision > last_sent]
            self._pending.clear()
            if batch:
                return batch


class WatchHub:
    def __init__(self) -> None:
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, namespace_id: str, backlog: int) -> Subscription:
        subscription = Subscription(namespace_id, backlog)
        self._subscriptions[namespace_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self._subscriptions.get(subscription.namespace_id)
        if watchers is not None:
            watchers.discard(subscription)
            if not watchers:
                del self._subscriptions[subscription.namespace_id]

    def publish(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for subscription in self._subscriptions.get(change.namespace_id, ()):
                subscription.offer(change)

    def backlog(self) -> tuple[int, int]:
        """How many watchers there are, and the bytes of changes they have not been sent
        (keys, values, metadata) — read by the metrics, from another thread."""
        watchers = [s for group in list(self._subscriptions.values()) for s in list(group)]
        return len(watchers), sum(s.pending_bytes() for s in watchers)

    def end_namespace(self, namespace_id: str) -> None:
        failure = error(ErrorKind.NAMESPACE_NOT_FOUND, operation="watch", namespace_id=namespace_id)
        for subscription in self._subscriptions.pop(namespace_id, set()):
            subscription.fail(failure)
