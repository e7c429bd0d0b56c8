"""Single-flight: concurrent fetches of one slot share one upstream call.

Theory of operation: the first caller of a slot (a key, a list page) *leads*:
it registers a future for the slot, does the work, and resolves the future
with the answer or the failure. Callers that arrive meanwhile *follow*: they
await the leader's future (shielded, so a follower that gives up does not
cancel the leader's call). :meth:`SingleFlight.run_many` leads many slots with
ONE piece of work (a bulk read asks central once for all the keys nobody is
fetching yet) and follows the rest.

The work runs on its leader's budget. A follower may have less time than the
leader: given a ``deadline`` (event-loop time), it stops waiting there with
DEADLINE_EXCEEDED, a transient failure the node answers as it answers central
not answering — STALE if it may, else UNAVAILABLE — while the leader's call
goes on and may still fill the cache.
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

    def is_running(self, slot: SlotT) -> bool:
        return slot in self._running

    async def run(
        self,
        slot: SlotT,
        work: Callable[[], Awaitable[AnswerT]],
        deadline: float | None = None,
    ) -> AnswerT:
        """``await work()``, unless a call for ``slot`` is running: then share its answer
        (waiting no later than ``deadline``)."""
        running = self._running.get(slot)
        if running is not None:
            return await _follow(running, deadline)
        [answer] = await self._lead([slot], lambda slots: _one(work))
        return answer

    async def run_many(
        self,
        slots: Sequence[SlotT],
        work: Callable[[list[SlotT]], Awaitable[list[AnswerT]]],
        deadline: float | None = None,
    ) -> dict[SlotT, AnswerT]:
        """Answers for ``slots``: ONE ``work(slots nobody fetches yet)``; the rest shared."""
        followed = {slot: self._running[slot] for slot in slots if slot in self._running}
        led = [slot for slot in slots if slot not in followed]
        answers: dict[SlotT, AnswerT] = {}
        if led:
            answers.update(zip(led, await self._lead(led, work), strict=True))
        for slot, running in followed.items():
            answers[slot] = await _follow(running, deadline)
        return answers

    async def _lead(
        self, slots: list[SlotT], work: Callable[[list[SlotT]], Awaitable[list[AnswerT]]]
    ) -> list[AnswerT]:
        loop = asyncio.get_running_loop()
        promised = [loop.create_future() for _ in slots]
        self._running.update(zip(slots, promised, strict=True))
        try:
            answers = await work(slots)
        except BaseException as exc:
            for future in promised:
                future.set_exception(exc)
                future.exception()  # retrieved here, so a failure nobody followed logs nothing
            raise
        else:
            for future, answer in zip(promised, answers, strict=True):
                future.set_result(answer)
            return answers
        finally:
            for slot in slots:
                del self._running[slot]


async def _one(work: Callable[[], Awaitable[AnswerT]]) -> list[AnswerT]:
    return [await work()]


async def _follow(running: asyncio.Future[AnswerT], deadline: float | None) -> AnswerT:
    """The leader's answer (shielded: giving up does not cancel it), by ``deadline``."""
    if deadline is None:
        return await asyncio.shield(running)
    try:
        return await asyncio.wait_for(
            asyncio.shield(running), deadline - asyncio.get_running_loop().time()
        )
    except TimeoutError:
        raise error(
            ErrorKind.DEADLINE_EXCEEDED,
            detail="the caller's deadline came while a fetch of the same key was still running",
        ) from None
