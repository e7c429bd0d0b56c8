"""Faults under load, through edges in every mode: nothing acknowledged lost, nothing invented.

Each test runs writers and readers through two edges of real processes
(:mod:`tests.support.faults`) on a clock 20 times faster than real time,
injects a fault — central killed with SIGKILL and restarted on its port over
the same file, or stopped with SIGSTOP and continued; Redis killed under
central and restarted over its append-only file; central's disk filled to
the last byte, then freed — and then checks the
history: every acknowledged write is at central, every value read was
written by someone, no STALE copy was older than its bound. The time from
the repair to the first acknowledged write is printed (``-s`` shows it) and
bounded.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import edgekv
from tests.support import disks
from tests.support.central_process import CentralLauncher, CentralProcess
from tests.support.edge_process import EdgeLauncher
from tests.support.faults import Workload, check, recovery_s
from tests.support.redis_server import start_redis

pytestmark = pytest.mark.slow

MAX_STALE_S = 60.0
MODES = ("ttl", "invalidate", "push")
RECOVERY_BOUND_S = 8.0
# Simulated seconds per real second: a reader's 30 s cacheTtl passes in 1.5 s, so the
# outage outlasts copies' freshness and the edges must choose between STALE and failing.
TIME_SCALE = 20.0
SMALL_DISK_BYTES = 8 * 1024 * 1024


@dataclass
class Rig:
    centrals: CentralLauncher
    edges: EdgeLauncher
    storage: str
    central: CentralProcess | None = None
    anchor: float = field(default_factory=time.time)
    extra: list[str] = field(default_factory=list)

    @property
    def time_flags(self) -> list[str]:
        return ["--time-scale", str(TIME_SCALE), "--time-anchor", repr(self.anchor)]

    def start_central(self, port: int = 0) -> CentralProcess:
        flags = ["--no-write-rate-limit", "--listen", f"127.0.0.1:{port}", *self.time_flags]
        self.central = self.centrals.start(self.storage, [*flags, *self.extra])
        return self.central

    def start_edges(self, mode: str) -> list[str]:
        assert self.central is not None
        flags = ["--mode", mode, "--max-stale-s", str(MAX_STALE_S), *self.time_flags]
        return [
            self.edges.start(
                self.central.address, region, [*flags, "--node", f"{region}-1"]
            ).address
            for region in ("eu-west", "us-west")
        ]


@pytest.fixture
def launchers(tmp_path: Path) -> Iterator[tuple[CentralLauncher, EdgeLauncher]]:
    with CentralLauncher(tmp_path / "logs") as centrals, EdgeLauncher(tmp_path / "logs") as edges:
        yield centrals, edges


@pytest.fixture
def rig(launchers: tuple[CentralLauncher, EdgeLauncher], tmp_path: Path) -> Rig:
    return Rig(*launchers, f"sqlite:{tmp_path / 'central.db'}")


async def seeded_namespace(central: str, workload_keys: int = 40) -> str:
    async with edgekv.Client(central=central) as client:
        namespace = await client.create_namespace("faults")
        await client.namespace(namespace.id).bulk_put(
            [{"key": f"k{index}", "value": "seed"} for index in range(workload_keys)]
        )
    return namespace.id


async def run_with_fault(
    rig: Rig, mode: str, fault: Callable[[], Awaitable[None]]
) -> tuple[Workload, float]:
    """Load through two edges, ``fault()`` (which breaks something and repairs it), more load;
    the history and when the repair was done."""
    central = rig.start_central()
    edges = rig.start_edges(mode)
    workload = Workload(edges, await seeded_namespace(central.address))
    stop = asyncio.Event()
    running = asyncio.create_task(workload.run(stop))
    await asyncio.sleep(1.5)
    await fault()
    repaired_at_s = workload.now_s()
    await asyncio.sleep(3.0)
    stop.set()
    await running
    return workload, repaired_at_s


async def judged(rig: Rig, mode: str, what: str, run: tuple[Workload, float]) -> Workload:
    """Nothing lost or invented, STALE within bound; writes back within the recovery bound."""
    workload, repaired_at_s = run
    assert rig.central is not None
    await check(workload, rig.central.address, max_stale_s=MAX_STALE_S)
    recovered_s = recovery_s(workload, repaired_at_s)
    history = workload.history
    recovered = "never" if recovered_s is None else f"{recovered_s:.3f} s after the repair"
    print(
        f"\n{what}, {mode}: {len(history.acked_at_s)} writes acknowledged and "
        f"{len(history.reads)} reads checked, nothing lost; writes acknowledged again "
        f"{recovered}; errors meanwhile: {dict(history.errors)}"
    )
    assert recovered_s is not None and recovered_s < RECOVERY_BOUND_S
    return workload


def assert_told_as_central_said(workload: Workload) -> None:
    """Central was up and its storage failed: through an edge, every call that failed says
    so (STORAGE_FAILED), none that the edge could not reach central."""
    kinds = {error.split()[1] for error in workload.history.errors}
    assert kinds <= {"STORAGE_FAILED"}, dict(workload.history.errors)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
async def test_central_killed_under_load_loses_nothing_and_recovers(rig: Rig, mode: str) -> None:
    async def kill_and_restart() -> None:
        assert rig.central is not None
        port = rig.central.port
        rig.central.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(rig.start_central, port)

    run = await run_with_fault(rig, mode, kill_and_restart)
    workload = await judged(rig, mode, "central killed", run)
    statuses = {read.cache_status for read in workload.history.reads}
    assert "STALE" in statuses, f"no copy outlived its cacheTtl while central was away: {statuses}"


@pytest.mark.timeout(120)
async def test_central_stopped_under_load_loses_nothing_and_recovers(rig: Rig) -> None:
    async def stop_and_continue() -> None:
        assert rig.central is not None
        rig.central.child.signal(signal.SIGSTOP)
        await asyncio.sleep(2.0)
        rig.central.child.signal(signal.SIGCONT)

    await judged(rig, "ttl", "central stopped", await run_with_fault(rig, "ttl", stop_and_continue))


@pytest.mark.redis
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
async def test_redis_killed_under_load_loses_nothing_and_recovers(
    launchers: tuple[CentralLauncher, EdgeLauncher], tmp_path: Path, mode: str
) -> None:
    redis = start_redis(tmp_path / "redis")  # appendfsync always: what central requires
    rig = Rig(*launchers, redis.url(), extra=["--store-record", str(tmp_path / "record.json")])

    async def kill_and_restart_redis() -> None:
        redis.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis.restart)

    try:
        workload = await judged(
            rig, mode, "Redis killed", await run_with_fault(rig, mode, kill_and_restart_redis)
        )
    finally:
        redis.stop()
    assert_told_as_central_said(workload)


@pytest.mark.timeout(120)
async def test_a_full_disk_under_load_loses_nothing_and_recovers(
    launchers: tuple[CentralLauncher, EdgeLauncher], tmp_path: Path
) -> None:
    with disks.small_disk(tmp_path / "disk", SMALL_DISK_BYTES) as disk:
        rig = Rig(*launchers, f"sqlite:{disk / 'central.db'}")

        async def fill_then_free() -> None:
            filler = disks.fill(disk)
            await asyncio.sleep(1.5)
            filler.unlink()

        workload = await judged(
            rig, "ttl", "disk full", await run_with_fault(rig, "ttl", fill_then_free)
        )
        failed = workload.history.errors["put STORAGE_FAILED"]
        assert failed, f"no write met the full disk: {dict(workload.history.errors)}"
        assert_told_as_central_said(workload)
        assert rig.central is not None and rig.central.running
