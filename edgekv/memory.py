"""Giving the memory a node has freed back to the system.

Theory of operation: glibc's malloc keeps what a process frees, for reuse,
and gives back only what lies at the top of a heap. A node that receives a
big message allocates it many times over — gRPC's receive buffers, the joined
bytes, the parsed message, the value — in the heaps (arenas) of several
threads, gRPC's pollers among them; freed, those pieces leave holes that stay
resident. Measured on central after rounds of eight refused 110 MiB puts
(benchmarks/README.md): neither ``MALLOC_ARENA_MAX=2`` nor a fixed
``MALLOC_MMAP_THRESHOLD_`` gave memory back, ``malloc_trim(0)`` gave back all
of it (every whole free page of every arena) in milliseconds.

So a node runs :class:`FreedMemoryReturn` in its event loop: every
``interval_s`` it asks malloc how much it holds free (``mallinfo2``, which sums
every arena) and, past ``threshold_bytes``, trims — in a thread, since ctypes
lets go of the GIL during the call and the loop goes on serving meanwhile. A
node that frees little never trims. Where the C library is not glibc (no
``malloc_trim``), it does nothing.

The trimming thread is its own and starts with the node, not at the first
trim: a node's thread count then stays what it was at start, so a soak that
watches threads for leaks sees no step twenty minutes in (asyncio's default
executor, which ``asyncio.to_thread`` uses, starts its threads lazily).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_THRESHOLD_BYTES = 32 * MiB
DEFAULT_INTERVAL_S = 2.0


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): sizes in bytes, as size_t."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",  # free bytes malloc holds: what a trim may give back
            "keepcost",
        )
    ]


def _glibc() -> Any | None:
    """The C library, if it is a glibc with ``mallinfo2`` and ``malloc_trim``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def malloc_free_bytes() -> int | None:
    """Bytes malloc holds free, in every arena (None where this is not glibc)."""
    if _LIBC is None:
        return None
    return int(_LIBC.mallinfo2().fordblks)


def give_back() -> None:
    """Return every whole free page malloc holds to the system (glibc's malloc_trim(0))."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class FreedMemoryReturn:
    """Trims malloc whenever it holds more than ``threshold_bytes`` free; see the module."""

    def __init__(
        self, threshold_bytes: int = DEFAULT_THRESHOLD_BYTES, interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self.threshold_bytes = threshold_bytes
        self.interval_s = interval_s
        self.trims = 0
        self._task: asyncio.Task[None] | None = None
        self._trimmer: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if _LIBC is not None and self._task is None:
            self._trimmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="malloc-trim")
            self._trimmer.submit(lambda: None)  # its one thread exists from now on
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._trimmer is not None:
            self._trimmer.shutdown(wait=False)
            self._trimmer = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            free = malloc_free_bytes()
            if free is not None and free > self.threshold_bytes:
                assert self._trimmer is not None  # started with the task
                await asyncio.get_running_loop().run_in_executor(self._trimmer, give_back)
                self.trims += 1
                log.debug("gave back up to %.0f MiB that malloc held free", free / MiB)
