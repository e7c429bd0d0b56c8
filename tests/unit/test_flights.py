"""Single-flight: the work belongs to no caller, so no caller can take it from the others."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.flights import SingleFlight
from edgekv.core.errors import ErrorKind, KVError


class Upstream:
    """Work that finishes when the test says so, counting how often it was started."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()

    async def fetch(self, slots: list[str]) -> list[str]:
        self.calls.append(slots)
        await self.release.wait()
        return [slot.upper() for slot in slots]

    async def fetch_one(self) -> str:
        [answer] = await self.fetch(["k"])
        return answer


async def test_callers_of_one_slot_share_one_piece_of_work() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    readers = [asyncio.ensure_future(flights.run("k", upstream.fetch_one)) for _ in range(3)]
    await asyncio.sleep(0)
    upstream.release.set()
    assert await asyncio.gather(*readers) == ["K"] * 3
    assert upstream.calls == [["k"]]
    assert not flights.is_running("k")


async def test_the_first_caller_going_away_leaves_the_work_to_the_others() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    first = asyncio.ensure_future(flights.run("k", upstream.fetch_one))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(flights.run("k", upstream.fetch_one))
    await asyncio.sleep(0)
    first.cancel()  # as when its gRPC call is cancelled
    with pytest.raises(asyncio.CancelledError):
        await first
    upstream.release.set()
    assert await second == "K"
    assert upstream.calls == [["k"]]


async def test_a_caller_stops_at_its_own_deadline_and_the_work_goes_on() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    loop = asyncio.get_running_loop()
    patient = asyncio.ensure_future(flights.run("k", upstream.fetch_one))
    await asyncio.sleep(0)
    with pytest.raises(KVError) as caught:
        await flights.run("k", upstream.fetch_one, deadline=loop.time() + 0.01)
    assert caught.value.kind is ErrorKind.DEADLINE_EXCEEDED
    upstream.release.set()
    assert await patient == "K"


async def test_work_started_for_nobody_is_shared_by_the_reads_after_it() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    [background] = flights.start(["k"], upstream.fetch).values()
    assert flights.is_running("k"), "registered before the work has even begun"
    reader = asyncio.ensure_future(flights.run("k", upstream.fetch_one))
    await asyncio.sleep(0)
    upstream.release.set()
    assert await reader == "K" and await background == "K"
    assert upstream.calls == [["k"]]


async def test_many_slots_start_one_piece_of_work_for_those_nobody_fetches() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    first = asyncio.ensure_future(flights.run("a", upstream.fetch_one))
    await asyncio.sleep(0)
    many = asyncio.ensure_future(flights.run_many(["a", "b", "c"], upstream.fetch))
    await asyncio.sleep(0)
    upstream.release.set()
    assert await many == {"a": "K", "b": "B", "c": "C"}, "a shared the first caller's work"
    assert await first == "K"
    assert upstream.calls == [["k"], ["b", "c"]]


async def test_a_failure_reaches_every_caller() -> None:
    flights: SingleFlight[str, str] = SingleFlight()

    async def failing() -> str:
        await asyncio.sleep(0)
        raise KVError(ErrorKind.UNAVAILABLE, "central is away")

    readers = [asyncio.ensure_future(flights.run("k", failing)) for _ in range(2)]
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert [type(result) for result in results] == [KVError, KVError]
    assert not flights.is_running("k")


async def test_closing_cancels_the_work_still_running() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    [running] = flights.start(["k"], upstream.fetch).values()
    await asyncio.sleep(0)
    await flights.close()
    assert running.cancelled() and not flights.is_running("k")


async def test_a_future_cancelled_by_an_unshielded_waiter_settles_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    upstream = Upstream()
    futures = flights.start(["a", "b"], upstream.fetch)
    futures["a"].cancel()  # as an unshielded waiter that was cancelled would
    upstream.release.set()
    with caplog.at_level(logging.ERROR):
        answered = await asyncio.wait_for(futures["b"], timeout=5)
    assert answered == "B", "the other slot is still answered"
    assert caplog.records == [] and not flights.is_running("a")
