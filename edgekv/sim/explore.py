"""Looking for bugs: many seeds of a random workload under random faults, every checker on each.

Theory of operation: a seed draws a whole :class:`Scenario` (:func:`scenario_of`)
— a generated topology of two to five regions, a consistency mode, whether
edges may serve STALE copies, a handful of keys, a cacheTtl, read and write
rates, one or two writing regions — and a schedule of faults: a region's
link losing calls, a region cut off from central, central restarting. The
scenario runs in the simulation (:mod:`edgekv.sim.cluster`, central on SQLite
so that a restart keeps its data) and its history goes through every checker
whose property must hold whatever the faults (:func:`checks`):

* **monotonic reads** — a session never reads an older revision than it read;
* **read-your-writes** — a read through an edge shows the writes acknowledged
  through it before;
* **the visibility promise** — a read not served STALE shows every write
  committed max(60 s, its cacheTtl) before it, plus its region's RTT and a
  generous jitter tail (STALE copies are what an unreachable central allows);
* **nothing lost** — every acknowledged write is at central at the end;
* **convergence** — once writes stop and the faults are long healed, every
  region reads each key's final revision.

Faults end by 60 % of the run and writes by 70 %, so the last 30 % is where
convergence is judged. A seed replays its scenario and its run exactly, so
a failure is reported with the one command that replays it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from edgekv.control import NodeControl
from edgekv.experiments import checkers
from edgekv.experiments.checkers import CheckResult
from edgekv.experiments.cluster import ClusterView
from edgekv.experiments.driver import Driver
from edgekv.experiments.history import Op, write_history
from edgekv.experiments.partition import nothing_lost
from edgekv.experiments.workload import KeySpace, Stream
from edgekv.sim.cluster import simulated_cluster
from edgekv.sim.loop import in_virtual_time
from edgekv.topology import CentralSpec, EdgeSpec, Topology, generated_topology

GROUP = "explore"
FaultKind = Literal["loss", "partition", "restart"]
# A jitter is exponential: allow this many of its means before a late read is a violation
# (e^-30: not once in any number of runs).
JITTER_MEANS = 30


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    at_s: float
    length_s: float
    # The region whose link fails ("" for a central restart), and the loss probability.
    region: str = ""
    loss: float = 0.0

    def describe(self) -> str:
        what = {
            "loss": f"{self.region} loses {self.loss:.0%} of calls",
            "partition": f"{self.region} cut off",
            "restart": "central restarts",
        }[self.kind]
        return f"{what} at {self.at_s:.0f} s for {self.length_s:.0f} s"


def overlap(one: Fault, other: Fault) -> bool:
    """Two faults of the same kind on the same target at once."""
    same = (one.kind, one.region) == (other.kind, other.region)
    return same and one.at_s < other.at_s + other.length_s and other.at_s < one.at_s + one.length_s


@dataclass(frozen=True)
class Scenario:
    seed: int
    regions: int
    mode: str
    max_stale_s: float
    keys: int
    cache_ttl_s: int
    read_rate: float
    write_rate: float
    writers: tuple[str, ...]
    duration_s: float
    faults: tuple[Fault, ...] = field(default=())

    @property
    def writes_end_s(self) -> float:
        return 0.7 * self.duration_s

    def topology(self) -> Topology:
        """A generated topology of the scenario's regions, central on SQLite (so that a
        restart keeps the data), edges in its mode, no write-rate limit."""
        generated = generated_topology(self.regions)
        edge = EdgeSpec(mode=self.mode, max_stale_s=self.max_stale_s)
        central = CentralSpec(generated.central.region, "sqlite:central.db", write_rate_limit=False)
        return Topology(central, tuple(replace(region, edge=edge) for region in generated.regions))

    def describe(self) -> str:
        faults = "; ".join(fault.describe() for fault in self.faults) or "no faults"
        return (
            f"{self.regions} regions, mode {self.mode}, max-stale {self.max_stale_s:g} s, "
            f"{self.keys} keys, cacheTtl {self.cache_ttl_s} s, writers {', '.join(self.writers)}, "
            f"{self.duration_s:.0f} s; {faults}"
        )


def scenario_of(seed: int) -> Scenario:
    """The scenario a seed stands for; the same seed, the same scenario."""
    rng = random.Random(f"explore/{seed}")
    regions = rng.randint(2, 5)
    names = [f"pop-{index:03d}" for index in range(1, regions + 1)]
    cache_ttl_s = rng.choice((30, 60, 120, 300))
    duration_s = max(900.0, (cache_ttl_s + 90) / 0.25)
    faults: list[Fault] = []
    for _ in range(rng.randint(0, 4)):
        kind: FaultKind = rng.choice(("loss", "partition", "restart"))
        at_s = rng.uniform(0.05, 0.45) * duration_s
        length_s = min(rng.expovariate(1 / 60), 0.6 * duration_s - at_s)
        if kind == "restart":
            fault = Fault(kind, at_s, min(length_s, 30.0))
        else:
            loss = round(rng.uniform(0.05, 0.5), 2) if kind == "loss" else 0.0
            fault = Fault(kind, at_s, length_s, rng.choice(names), loss)
        # Faults of one kind on one target do not overlap: one's end would end the other.
        if not any(overlap(fault, other) for other in faults):
            faults.append(fault)
    return Scenario(
        seed=seed,
        regions=regions,
        mode=rng.choice(("ttl", "invalidate", "push")),
        max_stale_s=rng.choice((0.0, 300.0)),
        keys=rng.randint(1, 12),
        cache_ttl_s=cache_ttl_s,
        read_rate=round(rng.uniform(0.5, 3.0), 2),
        write_rate=round(rng.uniform(0.05, 0.5), 3),
        writers=tuple(sorted(rng.sample(names, rng.randint(1, min(2, regions))))),
        duration_s=duration_s,
        faults=tuple(sorted(faults, key=lambda fault: fault.at_s)),
    )


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    ops: int
    checks: list[CheckResult]

    # Kept only when a check failed, to be written out for a look.
    history: list[Op] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that found a violation (one with nothing to examine did not)."""
        return [check for check in self.checks if check.violations]


async def explore_one(scenario: Scenario) -> Outcome:
    """Run one scenario in the simulation and check its history."""
    keys = KeySpace(scenario.keys)
    async with (
        simulated_cluster(scenario.topology(), scenario.seed) as view,
        Driver(view) as driver,
    ):
        streams = [
            Stream("read", region, scenario.read_rate, keys, GROUP, 0, scenario.duration_s,
                   sessions=2, cache_ttl_s=scenario.cache_ttl_s)
            for region in view.regions
        ] + [
            Stream("write", region, scenario.write_rate, keys, GROUP, 0, scenario.writes_end_s,
                   value_bytes=32)
            for region in scenario.writers
        ]  # fmt: skip
        planned = driver.plan(streams, scenario.seed)
        await driver.setup(f"explore {scenario.seed}", [GROUP], keys)
        ops: list[Op] = []
        await driver.run(planned, ops.append, at_time=fault_actions(view, scenario.faults))
        held = (await driver.central_revisions())[GROUP]
    found = checks(ops, held, view, scenario)
    failed = any(check.violations for check in found)
    return Outcome(scenario, len(ops), found, ops if failed else [])


def fault_actions(
    view: ClusterView, faults: tuple[Fault, ...]
) -> list[tuple[float, Callable[[], Awaitable[Any]]]]:
    """(simulated second, action) pairs that start and end each fault."""
    actions: list[tuple[float, Callable[[], Awaitable[Any]]]] = []
    for fault in faults:
        if fault.kind == "restart":
            assert view.restart_central is not None, "faults need the simulation"
            actions.append((fault.at_s, partial(view.restart_central, fault.length_s)))
            continue
        change = {"loss": fault.loss} if fault.kind == "loss" else {"partitioned": True}
        undo = {"loss": 0.0} if fault.kind == "loss" else {"partitioned": False}
        for edge in view.edges_in(fault.region):
            target = view.target(edge.address)
            actions.append((fault.at_s, partial(change_link, target, change)))
            actions.append((fault.at_s + fault.length_s, partial(change_link, target, undo)))
    return actions


async def change_link(target: Any, changes: dict[str, Any]) -> None:
    async with NodeControl(target) as control:
        await control.change_link(**changes)


def checks(
    ops: list[Op], held: dict[str, int], view: ClusterView, scenario: Scenario
) -> list[CheckResult]:
    """Every checker whose property holds whatever the faults; see the module."""
    extra_s = {
        region: (view.rtt_ms[region] + JITTER_MEANS * view.jitter_ms[region]) / 1000
        for region in view.regions
    }
    not_stale = [op for op in ops if op.cache_status != "STALE"]
    return [
        checkers.monotonic_reads(ops),
        checkers.read_your_writes(ops),
        checkers.promise(not_stale, extra_s=extra_s),
        nothing_lost(ops, held),
        checkers.convergence(ops, writes_end_s=scenario.writes_end_s, extra_s=extra_s),
    ]


def replay_command(seed: int) -> str:
    return f"edgekv sim explore --seeds 1 --first-seed {seed}"


async def explore_seeds(seeds: range, out: Path, report: Callable[[str], None] = print) -> int:
    """Run every seed; report each failure with its replay command. 0 when none failed."""
    failures = 0
    ops = 0
    began = time.monotonic()
    for done, seed in enumerate(seeds, start=1):
        scenario = scenario_of(seed)
        outcome = await in_virtual_time(partial(explore_one, scenario))
        ops += outcome.ops
        if outcome.failed:
            failures += 1
            report(failure_report(outcome, keep(outcome, out)))
        if done % 50 == 0 or done == len(seeds):
            report(
                f"{done} of {len(seeds)} seeds, {failures} failed, {ops:,} operations, "
                f"{ops / max(time.monotonic() - began, 1e-9):,.0f} ops/s"
            )
    return 1 if failures else 0


def failure_report(outcome: Outcome, kept: Path) -> str:
    scenario = outcome.scenario
    lines = [f"seed {scenario.seed} FAILED: {scenario.describe()}"]
    for check in outcome.failed:
        lines.append(f"  {check.name}: {len(check.violations)} violations, the first: "
                     f"{check.violations[0].message}")  # fmt: skip
    lines.append(f"  history and scenario: {kept}")
    lines.append(f"  replay: {replay_command(scenario.seed)}")
    return "\n".join(lines)


def keep(outcome: Outcome, out: Path) -> Path:
    """Write a failed seed's history and scenario for a look; return the folder."""
    folder = out / "explore" / f"seed-{outcome.scenario.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    write_history(folder / "history.jsonl", outcome.history)
    (folder / "scenario.json").write_text(
        json.dumps(asdict(outcome.scenario), indent=2), encoding="utf-8"
    )
    return folder
