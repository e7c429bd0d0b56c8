"""Following a shared store's feed: how a central learns what the other centrals did.

Theory of operation: several central processes may serve one Redis store
(:class:`~central.storage.base.SharedStorage`). Each keeps in memory what it
reads on every call — which namespaces exist and whose they are, the API
tokens — and streams changes to its own watchers. Every script that changes
any of that adds an event to the store's feed in the same atomic call, so the
feed is the commit order; a :class:`FeedFollower` reads it from where the
store was when central loaded its memory, and hands each event, in order, to
the service (which applies it and publishes commits to its watchers, its own
commits included: one path, so a watcher sees every central's changes in
revision order).

* **Catching up.** What a central has not heard of yet it may still be told
  by a client: a namespace made a moment ago through another central, a token
  just created. Before refusing such a call, central asks the store for the
  feed's newest event and waits (briefly) until it has applied up to there
  (:meth:`FeedFollower.catch_up`) — the read barrier of a replicated log
  (etcd's ReadIndex). A deletion or a revocation reaches the other centrals
  within the feed's delay (milliseconds); until then they answer as before it.
* **Falling behind.** A central whose feed position was trimmed away (it was
  cut off from Redis for long) cannot know what it missed: it reloads what it
  keeps in memory from the store and ends every watch stream with
  WATCH_LAGGING, naming where to resume from the change log.
* **Batching.** Under a stream of commits the follower waits BATCH_PAUSE_S after each
  read that found events, so that one read carries many; after a quiet spell the first
  event is read at once.
* **Failures.** A Redis out of reach is retried with a backoff (100 ms, up to
  1 s); the follower resumes from its position, and the calls central serves
  meanwhile fail or succeed as the store lets them. Any other failure applying
  an event is logged whole and the event tried again; one that fails
  MAX_APPLY_FAILURES times in a row is given up, and the central reloads from
  the store. The task never ends but by :meth:`FeedFollower.stop`, which waits
  at most STOP_TIMEOUT_S for a read in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from central.storage.base import SharedStorage
from edgekv.core.errors import KVError
from edgekv.core.model import FeedEvent

log = logging.getLogger(__name__)

# Events asked for per read, and how long one read waits for the first of them — which
# is also how long stopping may wait: a blocked read is let end, never cancelled (on
# Python 3.11 a cancel that meets redis-py's read timeout can be lost, and the read
# then waits for data forever).
READ_COUNT = 1000
READ_BLOCK_MS = 100
# How long a call waits for the follower to catch up before it is answered anyway.
CATCH_UP_TIMEOUT_S = 2.0
# After a read that found events, wait this long before the next: under a stream of
# commits, one read then carries many (each read costs a central ~100 µs, and every
# central reads every commit), while the first event after a quiet spell is read at
# once — so a lone write reaches other centrals' watchers without this delay.
BATCH_PAUSE_S = 0.005
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 1.0
# An event that fails to apply this many times in a row is given up: the central starts
# again from the store (resync) rather than stop following for good.
MAX_APPLY_FAILURES = 5
# How long stopping waits for the read in progress before cancelling it.
STOP_TIMEOUT_S = 5.0


def stream_id(text: str) -> tuple[int, int]:
    """A Redis stream id ``MS-SEQ`` as a pair that compares as the stream orders ids."""
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class FeedFollower:
    def __init__(
        self,
        storage: SharedStorage,
        apply: Callable[[FeedEvent], Awaitable[None]],
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        """``apply`` is called with each event in order; ``resync`` when events were lost."""
        self._storage = storage
        self._apply = apply
        self._resync = resync
        self._position = "0-0"
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def mark(self) -> None:
        """Start from the feed's newest event: call before loading what central keeps, so
        that nothing committed while it loads is missed (an event applied twice is fine:
        every one sets or removes, never adds)."""
        self._position = await self._storage.feed_position()

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="central feed")

    async def stop(self) -> None:
        """Stop once the read in progress ends (READ_BLOCK_MS, unless Redis is out of reach:
        then after STOP_TIMEOUT_S, cancelled)."""
        self._stopping.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait([self._task], timeout=STOP_TIMEOUT_S)
        if not done:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=1.0)  # a lost cancel must not hang us

    @property
    def position(self) -> str:
        return self._position

    async def catch_up(self) -> None:
        """Wait until every event the feed holds now has been applied (at most
        CATCH_UP_TIMEOUT_S: a follower cut off from Redis must not hold calls forever)."""
        try:
            target = stream_id(await self._storage.feed_position())
        except KVError:
            return  # the store is away: the call goes on with what central knows
        async with self._advanced:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._advanced.wait_for(lambda: stream_id(self._position) >= target),
                    CATCH_UP_TIMEOUT_S,
                )

    async def _follow(self) -> None:
        delay_s = FIRST_RETRY_S
        failures = 0  # in a row, at the event after self._position
        while not self._stopping.is_set():
            try:
                await self._read_and_apply()
                delay_s, failures = FIRST_RETRY_S, 0
                continue
            except KVError as exc:
                log.warning("cannot read the store's feed (retrying): %s", exc.message)
            except Exception:
                # A bug must not end the task silently: this central would serve a stale
                # directory from then on. Logged whole, and the same event tried again —
                # MAX_APPLY_FAILURES times, then given up for a fresh start from the store.
                failures += 1
                log.exception("could not apply the store's feed (attempt %d)", failures)
                if failures >= MAX_APPLY_FAILURES:
                    failures = 0
                    try:
                        await self._give_up_next_event()
                    except Exception:
                        log.exception("could not start again from the store (retrying)")
            await self._pause(delay_s)
            delay_s = min(delay_s * 2, MAX_RETRY_S)

    async def _read_and_apply(self) -> None:
        events, trimmed = await self._storage.read_feed(self._position, READ_COUNT, READ_BLOCK_MS)
        if trimmed:
            log.warning("the feed was trimmed past this central's position: reloading")
            await self._resync()
        for position, event in events:
            await self._apply(event)
            self._position = position
        if events:
            async with self._advanced:
                self._advanced.notify_all()
            await self._pause(BATCH_PAUSE_S)

    async def _give_up_next_event(self) -> None:
        """Skip the event that keeps failing, and start again from the store."""
        events, _ = await self._storage.read_feed(self._position, 1, 0)
        if events:
            log.error("giving up the feed event %s; reloading from the store", events[0][0])
            self._position = events[0][0]
        await self._resync()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if central is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
