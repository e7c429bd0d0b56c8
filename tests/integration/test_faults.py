"""Faults under load, through edges in every mode: nothing acknowledged lost, nothing invented.

Each test runs writers and readers through two edges of real processes
(:mod:`tests.support.faults`) on a clock 20 times faster than real time,
injects a fault — central killed with SIGKILL and restarted on its port over
the same file, or stopped with SIGSTOP and continued — and then checks the
history: every acknowledged write is at central, every value read was
written by someone, no STALE copy was older than its bound. The time from
the repair to the first acknowledged write is printed (``-s`` shows it) and
bounded.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import edgekv
from tests.support.central_process import CentralLauncher, CentralProcess
from tests.support.edge_process import EdgeLauncher
from tests.support.faults import Workload, check, recovery_s

pytestmark = pytest.mark.slow

MAX_STALE_S = 60.0
MODES = ("ttl", "invalidate", "push")
RECOVERY_BOUND_S = 8.0
# Simulated seconds per real second: a reader's 30 s cacheTtl passes in 1.5 s, so the
# outage outlasts copies' freshness and the edges must choose between STALE and failing.
TIME_SCALE = 20.0


@dataclass
class Rig:
    centrals: CentralLauncher
    edges: EdgeLauncher
    database: Path
    central: CentralProcess | None = None
    anchor: float = field(default_factory=time.time)

    @property
    def time_flags(self) -> list[str]:
        return ["--time-scale", str(TIME_SCALE), "--time-anchor", repr(self.anchor)]

    def start_central(self, port: int = 0) -> CentralProcess:
        self.central = self.centrals.start(
            f"sqlite:{self.database}",
            ["--no-write-rate-limit", "--listen", f"127.0.0.1:{port}", *self.time_flags],
        )
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
def rig(tmp_path: Path) -> Iterator[Rig]:
    with CentralLauncher(tmp_path / "logs") as centrals, EdgeLauncher(tmp_path / "logs") as edges:
        yield Rig(centrals, edges, tmp_path / "central.db")


async def seeded_namespace(central: str, workload_keys: int = 40) -> str:
    async with edgekv.Client(central=central) as client:
        namespace = await client.create_namespace("faults")
        await client.namespace(namespace.id).bulk_put(
            [{"key": f"k{index}", "value": "seed"} for index in range(workload_keys)]
        )
    return namespace.id


async def run_with_fault(rig: Rig, mode: str, fault: str) -> tuple[Workload, float]:
    central = rig.start_central()
    edges = rig.start_edges(mode)
    workload = Workload(edges, await seeded_namespace(central.address))
    stop = asyncio.Event()
    running = asyncio.create_task(workload.run(stop))
    await asyncio.sleep(1.5)
    if fault == "kill":
        central.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(rig.start_central, central.port)
    else:
        central.child.signal(signal.SIGSTOP)
        await asyncio.sleep(2.0)
        central.child.signal(signal.SIGCONT)
    repaired_at_s = workload.now_s()
    await asyncio.sleep(3.0)
    stop.set()
    await running
    return workload, repaired_at_s


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
async def test_central_killed_under_load_loses_nothing_and_recovers(rig: Rig, mode: str) -> None:
    workload, repaired_at_s = await run_with_fault(rig, mode, "kill")
    assert rig.central is not None
    await check(workload, rig.central.address, max_stale_s=MAX_STALE_S)
    recovered_s = recovery_s(workload, repaired_at_s)
    print(f"\n{mode}: writes acknowledged again {recovered_s} s after the restart; "
          f"errors during the fault: {dict(workload.history.errors)}")  # fmt: skip
    assert recovered_s is not None and recovered_s < RECOVERY_BOUND_S
    statuses = {read.cache_status for read in workload.history.reads}
    assert "STALE" in statuses, f"no copy outlived its cacheTtl while central was away: {statuses}"


@pytest.mark.timeout(120)
async def test_central_stopped_under_load_loses_nothing_and_recovers(rig: Rig) -> None:
    mode = "ttl"
    workload, repaired_at_s = await run_with_fault(rig, mode, "stop")
    assert rig.central is not None
    await check(workload, rig.central.address, max_stale_s=MAX_STALE_S)
    recovered_s = recovery_s(workload, repaired_at_s)
    print(f"\n{mode}: writes acknowledged again {recovered_s} s after SIGCONT; "
          f"errors during the fault: {dict(workload.history.errors)}")  # fmt: skip
    assert recovered_s is not None and recovered_s < RECOVERY_BOUND_S
