"""Exploration: seeds stand for scenarios, faults happen, and a planted bug is found."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import edge.node
import edgekv
from edgekv.core.errors import ErrorKind, KVError
from edgekv.sim.cluster import CENTRAL_ADDRESS, simulated_cluster
from edgekv.sim.explore import explore_one, explore_seeds, overlap, scenario_of
from edgekv.sim.loop import run_virtual
from edgekv.topology import CentralSpec, Topology, generated_topology


def test_a_seed_stands_for_one_scenario_and_seeds_differ() -> None:
    assert scenario_of(5) == scenario_of(5)
    scenarios = [scenario_of(seed) for seed in range(1, 60)]
    assert len({s.mode for s in scenarios}) == 3
    assert {fault.kind for s in scenarios for fault in s.faults} == {"loss", "partition", "restart"}
    for scenario in scenarios:
        assert all(f.at_s + f.length_s <= 0.6 * scenario.duration_s + 1e-9 for f in scenario.faults)


def test_faults_of_one_kind_on_one_target_never_overlap() -> None:
    # One's end would end the other (a restart during a restart, a link healed early).
    for seed in range(1, 1001):
        faults = scenario_of(seed).faults
        for index, one in enumerate(faults):
            assert not any(overlap(one, other) for other in faults[index + 1 :]), seed


def test_a_restarted_central_refuses_calls_while_down_and_keeps_its_data() -> None:
    topology = generated_topology(1)
    topology = Topology(CentralSpec(topology.central.region, "sqlite:central.db"), topology.regions)

    async def main() -> tuple[ErrorKind, bytes | None]:
        async with simulated_cluster(topology, seed=1) as view:
            client = edgekv.Client(central=view.target(CENTRAL_ADDRESS))
            namespace = await client.create_namespace("kept")
            kv = client.namespace(namespace.id)
            await kv.put("k", "v")
            assert view.restart_central is not None
            restarting = asyncio.ensure_future(view.restart_central(10.0))
            await asyncio.sleep(5.0)
            with pytest.raises(KVError) as refused:
                await kv.get("k")
            await restarting
            return refused.value.kind, await kv.get("k", type="bytes")

    assert run_virtual(main()) == (ErrorKind.UNAVAILABLE, b"v")


def test_the_first_seeds_hold_every_check() -> None:
    for seed in (1, 2, 3):
        outcome = run_virtual(explore_one(scenario_of(seed)))
        assert not outcome.failed, (seed, [c.violations[0].message for c in outcome.failed])
        assert all(check.checked for check in outcome.checks if check.name != "read-your-writes")


async def test_a_planted_bug_is_found_and_its_replay_command_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bug: a slow read's answer replaces a newer copy (the edge's ordering rule off).
    monkeypatch.setattr(edge.node, "worth_keeping", lambda *_: True)
    said: list[str] = []
    assert await explore_seeds(range(22, 23), tmp_path, said.append) == 1
    assert "seed 22 FAILED" in said[0] and "read-your-writes: 1 violations" in said[0]
    assert "replay: edgekv sim explore --seeds 1 --first-seed 22" in said[0]
    kept = tmp_path / "explore" / "seed-22"
    assert (kept / "history.jsonl").stat().st_size > 0 and (kept / "scenario.json").exists()
