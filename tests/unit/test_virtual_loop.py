"""The virtual-time loop: sleeps are jumps, order is fixed, threads and stalls are refused."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from edgekv.clock import SIMULATION_EPOCH, LoopClock
from edgekv.sim.loop import SimulationStalled, SimulationStopped, run_virtual


def test_three_days_of_sleep_take_no_real_time_and_land_exactly() -> None:
    async def main() -> tuple[float, float]:
        clock = LoopClock()
        await clock.sleep(3 * 86400)
        await asyncio.sleep(0.25)
        return asyncio.get_running_loop().time(), clock.now()

    began = time.monotonic()
    loop_s, now = run_virtual(main())
    assert time.monotonic() - began < 1.0
    assert loop_s == 3 * 86400 + 0.25
    assert now == SIMULATION_EPOCH + 3 * 86400 + 0.25


def test_timers_fire_by_due_time_then_by_the_order_they_were_set() -> None:
    async def main() -> list[str]:
        fired: list[str] = []

        async def at(delay_s: float, name: str) -> None:
            await asyncio.sleep(delay_s)
            fired.append(name)

        await asyncio.gather(at(2.0, "c"), at(1.0, "a"), at(1.0, "b"), at(0.0, "now"))
        return fired

    assert run_virtual(main()) == ["now", "a", "b", "c"]


def test_a_deadline_runs_on_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), timeout=30)
        return loop.time()

    assert run_virtual(main()) == 30


def test_waiting_for_what_can_never_come_ends_the_run_instead_of_hanging() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimulationStalled, match="nothing is ready and no timer is set"):
        run_virtual(main())


def test_a_thread_is_refused_by_name() -> None:
    def blocking_work() -> int:
        return 1

    async def main() -> int:
        return await asyncio.to_thread(blocking_work)

    with pytest.raises(RuntimeError, match="blocking_work"):
        run_virtual(main())


def test_a_stop_from_another_thread_ends_the_run_at_its_next_event() -> None:
    stop = threading.Event()

    async def main() -> None:
        while True:
            await asyncio.sleep(1.0)
            stop.set()  # as the command's main thread would, on Ctrl-C

    with pytest.raises(SimulationStopped):
        run_virtual(main(), stop)


def test_a_stopped_run_still_runs_its_cleanup() -> None:
    stop = threading.Event()
    cleaned: list[str] = []

    async def main() -> None:
        try:
            await asyncio.sleep(5.0)
            stop.set()
            await asyncio.sleep(5.0)
        finally:
            await asyncio.sleep(1.0)  # cleanup that itself waits, as closing a cluster does
            cleaned.append("closed")

    with pytest.raises(SimulationStopped):
        run_virtual(main(), stop)
    assert cleaned == ["closed"]
