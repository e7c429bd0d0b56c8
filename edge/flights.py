"""Single-flight: concurrent fetches of one slot share one upstream call.

Theory of operation: the first caller of a slot (a key, a list page) starts
the work in a task of its own and registers a future for the slot; every
caller, the first one included, then waits on that future. The work belongs
to no caller: one that goes away (cancelled, or out of time) stops waiting
and nothing else changes — the others still get the answer, which may still
fill the cache. :meth:`SingleFlight.start` starts work without waiting for it
(a background refresh, registered at once so that the reads right after it
share it rather than start another); :meth:`SingleFlight.run_many` starts ONE
piece of work for all the slots nobody is fetching yet (a bulk read asks
central once) and shares the others.

The work runs on the budget of the caller that started it. Each caller waits
no later than its own ``deadline`` (event-loop time): past it, it gets
DEADLINE_EXCEEDED, a transient failure the node answers as it answers central
not answering — STALE if it may, else UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from edgekv.core.errors import ErrorKind, error

SlotT = TypeVar("SlotT", bound=Hashable)
AnswerT = TypeVar("AnswerT")


class SingleFlight(Generic[SlotT, AnswerT]):
    def __init__(self) -> None:
        self._running: dict[SlotT, asyncio.Future[AnswerT]] = {}
        # The tasks doing the work, kept so that none is collected while running.
        # In the order they started (a dict as an ordered set, so a simulation replays).
        self._tasks: dict[asyncio.Task[list[AnswerT]], None] = {}

    def is_running(self, slot: SlotT) -> bool:
        return slot in self._running

    def start(
        self, slots: Sequence[SlotT], work: Callable[[list[SlotT]], Awaitable[list[AnswerT]]]
    ) -> dict[SlotT, asyncio.Future[AnswerT]]:
        """Each slot's future: ONE ``work(slots nobody fetches yet)``, the rest shared.

        The futures are shared: await them shielded (as :meth:`run` does), or a
        caller that is cancelled cancels them for everyone.
        """
        futures = {slot: self._running[slot] for slot in slots if slot in self._running}
        led = [slot for slot in slots if slot not in futures]
        if not led:
            return futures
        loop = asyncio.get_running_loop()
        promised = {slot: loop.create_future() for slot in led}
        self._running.update(promised)
        task = asyncio.ensure_future(work(led))
        self._tasks[task] = None
        task.add_done_callback(lambda done: self._settle(done, promised))
        return {**futures, **promised}

    def _settle(
        self, task: asyncio.Task[list[AnswerT]], promised: dict[SlotT, asyncio.Future[AnswerT]]
    ) -> None:
        self._tasks.pop(task, None)
        for slot in promised:
            del self._running[slot]
        if task.cancelled():
            for future in promised.values():
                future.cancel()
            return
        failure = task.exception()
        answers = [] if failure is not None else task.result()
        for index, future in enumerate(promised.values()):
            if future.done():  # cancelled by someone who awaited it unshielded
                continue
            if failure is not None:
                future.set_exception(failure)
                future.exception()  # retrieved here, so a failure nobody awaits logs nothing
            else:
                future.set_result(answers[index])

    def start_one(
        self, slot: SlotT, work: Callable[[], Awaitable[AnswerT]]
    ) -> asyncio.Future[AnswerT]:
        """The future of ``work()`` for ``slot``, or of the work already running for it."""
        [future] = self.start([slot], lambda slots: _one(work)).values()
        return future

    async def run(
        self,
        slot: SlotT,
        work: Callable[[], Awaitable[AnswerT]],
        deadline: float | None = None,
    ) -> AnswerT:
        """``work()``'s answer for ``slot``, shared with every caller meanwhile, by ``deadline``."""
        return await _wait(self.start_one(slot, work), deadline)

    async def run_many(
        self,
        slots: Sequence[SlotT],
        work: Callable[[list[SlotT]], Awaitable[list[AnswerT]]],
        deadline: float | None = None,
    ) -> dict[SlotT, AnswerT]:
        """Answers for ``slots``: ONE ``work(slots nobody fetches yet)``; the rest shared."""
        futures = self.start(slots, work)
        return {slot: await _wait(future, deadline) for slot, future in futures.items()}

    async def close(self) -> None:
        """Cancel the work still running (the node is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _one(work: Callable[[], Awaitable[AnswerT]]) -> list[AnswerT]:
    return [await work()]


async def _wait(future: asyncio.Future[AnswerT], deadline: float | None) -> AnswerT:
    """The work's answer (shielded: a caller that gives up cancels nothing), by ``deadline``."""
    if deadline is None:
        return await asyncio.shield(future)
    try:
        return await asyncio.wait_for(
            asyncio.shield(future), deadline - asyncio.get_running_loop().time()
        )
    except TimeoutError:
        raise error(
            ErrorKind.DEADLINE_EXCEEDED,
            detail="the caller's deadline came while a fetch of the same key was still running",
        ) from None
