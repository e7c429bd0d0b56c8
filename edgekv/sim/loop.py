"""An asyncio event loop on virtual time: it never sleeps, it jumps to the next timer.

Theory of operation: asyncio's loop runs whatever is ready, then asks its
selector to wait for I/O until the earliest timer is due. Here the selector
is :class:`_TimeJump`: there is no I/O to wait for (every call between nodes
goes through :mod:`edgekv.inprocess`), so instead of waiting it moves the
loop's clock straight to that timer. ``loop.time()`` is therefore virtual
seconds since the loop began, ``asyncio.sleep`` and ``wait_for`` and every
deadline run on it, and a simulated day passes as fast as the callbacks run.

The order of events is a pure function of the code and its inputs: ready
callbacks run first-in first-out, timers by due time and then by the order
they were scheduled, and nothing here reads the host's clock. Two things
would break that and are refused rather than tolerated: a thread (work
handed to one, ``run_in_executor`` or ``asyncio.to_thread``, would finish at
a moment the host decides: a simulation runs SQLite's writer inline) and a
loop with nothing ready and no timer — every task waiting on something that
can never happen — which ends the run with :class:`SimulationStalled` instead
of hanging.

:func:`run_virtual` runs a coroutine on a fresh loop of this kind. It is
called from a worker thread by the experiment command, so that the real loop
in the main thread keeps its signal handling; ``stop`` (a
:class:`threading.Event`) lets that thread end the run between two events.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# asyncio's own cap on one wait: a jump over a longer gap takes several steps.
_LONGEST_WAIT_S = 24 * 3600.0


class SimulationStalled(RuntimeError):
    """Nothing is ready and no timer is set: every task waits for what cannot come."""


class SimulationStopped(RuntimeError):
    """The run was stopped from outside (Ctrl-C or SIGTERM in the command's main thread)."""


class _TimeJump(selectors.BaseSelector):
    """A selector that waits for nothing: ``select(timeout)`` moves virtual time on."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        # Only the loop's own self-pipe is ever registered; nothing writes to it here.
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self._loop.check_stop()
        if timeout is None:
            raise SimulationStalled(
                f"at {self._loop.time():.6f} virtual s nothing is ready and no timer is set"
            )
        if timeout > 0:
            self._loop.jump(timeout)
        return []


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is virtual and whose waits take no time."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._virtual_now = 0.0
        self._stop_requested = stop
        super().__init__(_TimeJump(self))
        # asyncio runs timers due within its clock's resolution, read from the host;
        # fixed here, so that which timers run together does not depend on the host.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._virtual_now

    def jump(self, timeout_s: float) -> None:
        """Move the clock to the earliest timer (exactly), or on by ``timeout_s``."""
        scheduled: list[Any] = self._scheduled  # type: ignore[attr-defined]
        if timeout_s < _LONGEST_WAIT_S and scheduled:
            self._virtual_now = max(self._virtual_now, scheduled[0].when())
        else:
            self._virtual_now += timeout_s

    def check_stop(self) -> None:
        if self._stop_requested is not None and self._stop_requested.is_set():
            raise SimulationStopped("the simulation was stopped")

    def winding_down(self) -> None:
        """Stop checking for a stop: what is left runs its cleanup (see run_virtual)."""
        self._stop_requested = None

    def run_in_executor(  # type: ignore[override]  # it refuses whatever it is given
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        raise RuntimeError(
            f"a simulated node asked for a thread ({getattr(func, '__qualname__', func)}): "
            "nothing may run in threads on virtual time, where their order would depend "
            "on the host"
        )


def run_virtual(main: Coroutine[Any, Any, T], stop: threading.Event | None = None) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop`; close it after."""
    loop = VirtualTimeLoop(stop)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        loop.winding_down()
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: VirtualTimeLoop) -> None:
    """Cancel what is left, as asyncio.run does, and let it finish."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


async def in_virtual_time(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on virtual time in a worker thread; from the caller's real loop.

    Cancelling the caller (Ctrl-C, SIGTERM) stops the simulation at its next
    event and waits for it to wind down (its cleanup runs) before re-raising.
    """
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    running = loop.run_in_executor(None, lambda: run_virtual(main(), stop))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(SimulationStopped):
            await running
        raise
