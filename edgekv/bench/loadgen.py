"""The load generator: open-loop arrivals, latency from the intended start, HdrHistograms.

Theory of operation: a run is planned before it starts. :func:`schedule` gives
the offsets (seconds after the start) at which calls are due: evenly spaced
for a constant rate, or a Poisson process with exactly rate x duration
arrivals (uniform order statistics: the Poisson process given its count).
:func:`open_loop` sends each call when it is due whether or not earlier calls
have answered, and measures its latency from when it was *due*, not from when
it was sent — so a server (or a generator) that stalls is charged for every
call that waited behind the stall, and coordinated omission cannot hide it.
Every latency goes into an HdrHistogram (µs); how late the generator itself
sent each call goes into another. A call due while ``max_in_flight`` calls are
outstanding is dropped and counted (queueing it would close the loop). A run
is *valid* only if nothing was dropped, at most 1 % of calls were sent later
than ``late_ms``, and the achieved sending rate is within 2 % of the target:
otherwise the numbers describe the generator, not the server.

:func:`run_workers` spreads one run over several processes, each with its own
event loop and share of the rate, all starting at the same instant, and
merges their histograms; :func:`closed_loop` runs N callers back to back, the
right tool only for "throughput at N concurrent callers".
"""

from __future__ import annotations

import asyncio
import base64
import math
import multiprocessing
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hdrh.histogram import HdrHistogram

# HdrHistogram range, in µs: 1 µs .. 120 s, 3 significant digits.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 120_000_000
HDR_DIGITS = 3
# A run is valid when the generator kept up: these are the tolerances.
MAX_LATE_FRACTION = 0.01
MIN_RATE_FRACTION = 0.98

Arrival = Literal["constant", "poisson"]
CallFn = Callable[[int], Awaitable[object]]
# Opens whatever a call needs (channels, clients) and yields the call; runs in each worker.
Connector = Callable[[dict[str, Any]], AbstractAsyncContextManager[CallFn]]


def new_histogram() -> Any:
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def schedule(rate_per_s: float, duration_s: float, arrival: Arrival, seed: int) -> list[float]:
    """Offsets (s) at which calls are due: exactly round(rate x duration) of them."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate_per_s}, {duration_s}")
    count = max(1, round(rate_per_s * duration_s))
    if arrival == "constant":
        return [index / rate_per_s for index in range(count)]
    rng = random.Random(seed)
    return sorted(rng.uniform(0, duration_s) for _ in range(count))


@dataclass
class LoadSettings:
    rate_per_s: float
    duration_s: float
    arrival: Arrival = "poisson"
    seed: int = 1
    max_in_flight: int = 10_000
    late_ms: float = 5.0


@dataclass
class LoadResult:
    """What one open-loop run measured. Histograms are in µs."""

    settings: LoadSettings
    latency: Any = field(default_factory=new_histogram)
    send_lag: Any = field(default_factory=new_histogram)
    planned: int = 0
    sent: int = 0
    completed: int = 0
    errors: int = 0
    dropped: int = 0
    late: int = 0
    # Seconds from the start until the last call was sent, and until the last one answered.
    send_span_s: float = 0.0
    finish_span_s: float = 0.0
    first_error: str = ""

    @property
    def achieved_rate_per_s(self) -> float:
        """Calls sent per second over the planned duration (longer if sending ran late)."""
        return self.sent / max(self.settings.duration_s, self.send_span_s)

    @property
    def throughput_per_s(self) -> float:
        """Calls answered per second, until the last answer."""
        return self.completed / self.finish_span_s if self.finish_span_s else 0.0

    def problems(self) -> list[str]:
        """Why the run does not describe the server (empty: it is valid)."""
        found = []
        if self.dropped:
            found.append(
                f"{self.dropped} calls dropped (over {self.settings.max_in_flight} in flight)"
            )
        if self.late > 1 and self.late / max(1, self.sent) > MAX_LATE_FRACTION:
            found.append(
                f"{self.late / self.sent:.1%} of calls sent more than "
                f"{self.settings.late_ms:g} ms late"
            )
        if self.achieved_rate_per_s < MIN_RATE_FRACTION * self.settings.rate_per_s:
            found.append(
                f"achieved {self.achieved_rate_per_s:.0f}/s of {self.settings.rate_per_s:.0f}/s"
            )
        return found

    @property
    def valid(self) -> bool:
        return not self.problems()

    def merge(self, other: LoadResult) -> None:
        self.latency.add(other.latency)
        self.send_lag.add(other.send_lag)
        for name in ("planned", "sent", "completed", "errors", "dropped", "late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.send_span_s = max(self.send_span_s, other.send_span_s)
        self.finish_span_s = max(self.finish_span_s, other.finish_span_s)
        self.first_error = self.first_error or other.first_error

    def to_wire(self) -> dict[str, Any]:
        """A picklable form, for sending between processes."""
        counts = {
            name: getattr(self, name)
            for name in (
                "planned",
                "sent",
                "completed",
                "errors",
                "dropped",
                "late",
                "send_span_s",
                "finish_span_s",
                "first_error",
            )
        }
        return {
            **counts,
            "latency": base64.b64encode(self.latency.encode()).decode(),
            "send_lag": base64.b64encode(self.send_lag.encode()).decode(),
        }

    @classmethod
    def from_wire(cls, settings: LoadSettings, wire: dict[str, Any]) -> LoadResult:
        result = cls(settings)
        for name, value in wire.items():
            if name in ("latency", "send_lag"):
                getattr(result, name).decode_and_add(base64.b64decode(value))
            else:
                setattr(result, name, value)
        return result


async def open_loop(
    call: CallFn,
    settings: LoadSettings,
    start_at: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LoadResult:
    """Send every planned call when it is due; measure each from when it was due."""
    offsets = schedule(settings.rate_per_s, settings.duration_s, settings.arrival, settings.seed)
    result = LoadResult(settings, planned=len(offsets))
    start = clock() if start_at is None else start_at
    in_flight: set[asyncio.Task[None]] = set()
    late_s = settings.late_ms / 1000

    async def one(index: int, due: float) -> None:
        try:
            await call(index)
        except Exception as exc:  # a failed call is data: count it, keep its latency
            result.errors += 1
            result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"[:300]
        finished = clock()
        result.completed += 1
        result.latency.record_value(_us(finished - due))
        result.finish_span_s = max(result.finish_span_s, finished - start)

    for index, offset in enumerate(offsets):
        due = start + offset
        wait_s = due - clock()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        sent_at = clock()
        result.send_lag.record_value(_us(sent_at - due))
        result.late += sent_at - due > late_s
        if len(in_flight) >= settings.max_in_flight:
            result.dropped += 1
            continue
        result.sent += 1
        result.send_span_s = sent_at - start
        task = asyncio.create_task(one(index, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    return result


def _us(seconds: float) -> int:
    return max(HDR_LOWEST_US, min(HDR_HIGHEST_US, round(seconds * 1e6)))


async def closed_loop(
    call: CallFn, callers: int, duration_s: float, clock: Callable[[], float] = time.monotonic
) -> LoadResult:
    """``callers`` coroutines, each calling again as soon as its last call answered."""
    settings = LoadSettings(rate_per_s=math.inf, duration_s=duration_s, arrival="constant")
    result = LoadResult(settings)
    start = clock()
    counter = iter(range(10**12))

    async def caller() -> None:
        while clock() - start < duration_s:
            began = clock()
            try:
                await call(next(counter))
            except Exception as exc:
                result.errors += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"[:300]
            result.latency.record_value(_us(clock() - began))
            result.completed += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    result.sent = result.planned = result.completed
    result.finish_span_s = result.send_span_s = clock() - start
    return result


# -- several worker processes -------------------------------------------------------------


def run_workers(
    connect: Connector, targets: dict[str, Any], settings: LoadSettings, workers: int
) -> LoadResult:
    """One open-loop run spread over ``workers`` processes, starting together."""
    if workers <= 1:
        return asyncio.run(_connected_run(connect, targets, settings, None, None))
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    share = replace(settings, rate_per_s=settings.rate_per_s / workers)
    processes = [
        context.Process(
            target=_worker_main,
            args=(connect, targets, _seeded(share, index), ready, go, start_at, results),
            daemon=True,
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=60)
        start_at.value = time.monotonic() + 0.2
        go.set()
        merged = LoadResult(settings)
        for _ in processes:
            outcome = results.get(timeout=settings.duration_s + 120)
            if isinstance(outcome, str):
                raise RuntimeError(f"a load worker failed: {outcome}")
            merged.merge(LoadResult.from_wire(share, outcome))
        return merged
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def _seeded(settings: LoadSettings, index: int) -> LoadSettings:
    """Each worker's own arrivals: the run's seed and the worker's index."""
    return replace(settings, seed=settings.seed * 1000 + index)


def _worker_main(
    connect: Connector,
    targets: dict[str, Any],
    settings: LoadSettings,
    ready: Any,
    go: Any,
    start_at: Any,
    results: Any,
) -> None:
    try:
        result = asyncio.run(_connected_run(connect, targets, settings, ready, (go, start_at)))
        results.put(result.to_wire())
    except BaseException as exc:  # report, so the parent does not wait forever
        results.put(f"{type(exc).__name__}: {exc}")


async def _connected_run(
    connect: Connector,
    targets: dict[str, Any],
    settings: LoadSettings,
    ready: Any,
    start: tuple[Any, Any] | None,
) -> LoadResult:
    async with connect(targets) as call:
        await call(-1)  # a warm-up call (index -1): connections exist before the clock runs
        if ready is not None:
            ready.put(True)
        start_at = None
        if start is not None:
            go, shared = start
            await asyncio.to_thread(go.wait)
            start_at = shared.value
        return await open_loop(call, settings, start_at)
