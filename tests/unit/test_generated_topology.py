"""Generated topologies (``--regions N``) and the memory estimate that guards big runs."""

from __future__ import annotations

import pytest

from edgekv.core.cache import ENTRY_OVERHEAD_BYTES
from edgekv.experiments.capacity import (
    BASE_BYTES,
    CACHED_COPY_BYTES,
    HELD_OPERATION_BYTES,
    NODE_PROCESS_BYTES,
    SETUP_KEY_BYTES,
    STREAMED_READ_BYTES,
    STREAMED_WRITE_BYTES,
    estimate_bytes,
    refuse_unless_it_fits,
    refuse_unless_processes_fit,
)
from edgekv.experiments.workload import KeySpace, Stream
from edgekv.topology import (
    GENERATED_RTT_RANGE_MS,
    MAX_GENERATED_REGIONS,
    TopologyError,
    generated_topology,
)


def test_regions_are_named_in_order_nearest_first_and_central_is_in_the_nearest() -> None:
    topology = generated_topology(300, edges_per_region=2)
    names = [region.name for region in topology.regions]
    assert names[0] == "pop-001" and names[-1] == "pop-300" and len(set(names)) == 300
    rtts = [region.rtt_ms for region in topology.regions]
    assert rtts == sorted(rtts)
    low, high = GENERATED_RTT_RANGE_MS
    assert low < rtts[0] < rtts[-1] < high
    assert topology.central.region == "pop-001"
    assert len(topology.edge_nodes()) == 600


def test_rtts_are_the_quantiles_of_a_log_uniform_spread_the_same_every_time() -> None:
    rtts = [region.rtt_ms for region in generated_topology(4).regions]
    low, high = GENERATED_RTT_RANGE_MS
    assert rtts == [round(low * (high / low) ** q, 2) for q in (0.125, 0.375, 0.625, 0.875)]
    assert generated_topology(4) == generated_topology(4)


@pytest.mark.parametrize(
    ("regions", "edges", "says"),
    [
        (0, 1, "--regions must be from 1 to 999, got 0"),
        (MAX_GENERATED_REGIONS + 1, 1, "--regions must be from 1 to 999, got 1000"),
        (5, 0, r"--edges-per-region must be from 1 to 2000 with 5 regions \(at most 10,000"),
        (5, 2001, r"--edges-per-region must be from 1 to 2000 with 5 regions .*got 2001"),
    ],
)
def test_sizes_out_of_range_are_refused_in_one_line(regions: int, edges: int, says: str) -> None:
    with pytest.raises(TopologyError, match=f"^{says}"):
        generated_topology(regions, edges)
    generated_topology(MAX_GENERATED_REGIONS, 1)  # the limits themselves are fine
    generated_topology(5, 2000)


def streams(rate_per_s: float, duration_s: float, keys: int) -> list[Stream]:
    return [Stream("read", "pop-002", rate_per_s, KeySpace(keys), "ttl=60", 0, duration_s)]


def test_the_estimate_counts_expected_operations_and_simulated_edges() -> None:
    on_a_cluster = estimate_bytes(streams(10, 100, 50), simulated_edges=0)
    assert on_a_cluster.operations == on_a_cluster.held == 1000
    assert on_a_cluster.total_bytes == (
        BASE_BYTES + 50 * SETUP_KEY_BYTES + 1000 * HELD_OPERATION_BYTES
    )
    simulated = estimate_bytes(streams(10, 100, 50), simulated_edges=300)
    assert simulated.total_bytes > on_a_cluster.total_bytes


def test_a_streamed_history_costs_its_reads_state_not_its_operations() -> None:
    streamed = estimate_bytes(streams(10, 100, 50), simulated_edges=0, histories_held=0)
    assert (streamed.operations, streamed.held) == (1000, 0)
    assert streamed.total_bytes == BASE_BYTES + 50 * SETUP_KEY_BYTES + 1000 * STREAMED_READ_BYTES
    with_writes = estimate_bytes(
        [*streams(10, 100, 50), Stream("write", "pop-001", 2, KeySpace(50), "ttl=60", 0, 100)],
        simulated_edges=0,
        histories_held=0,
    )
    assert with_writes.total_bytes - streamed.total_bytes == 200 * STREAMED_WRITE_BYTES
    assert "1,000 operations streamed through" in streamed.describe()


def test_an_edge_cache_bounds_the_copies_counted() -> None:
    unbounded = estimate_bytes(streams(100, 1000, 100_000), simulated_edges=10)
    one_mib = estimate_bytes(
        streams(100, 1000, 100_000), simulated_edges=10, edge_cache_bytes=1024**2
    )
    copies = 10 * (1024**2 // ENTRY_OVERHEAD_BYTES)
    assert unbounded.total_bytes - one_mib.total_bytes == (100_000 - copies) * CACHED_COPY_BYTES


def test_a_run_is_refused_just_past_the_memory_available_and_not_at_it() -> None:
    need = estimate_bytes(streams(10, 100, 50), simulated_edges=5).total_bytes
    refuse_unless_it_fits(streams(10, 100, 50), 5, available=need)
    with pytest.raises(Exception, match=r"this run would hold about .* GiB available"):
        refuse_unless_it_fits(streams(10, 100, 50), 5, available=need - 1)


def test_a_cluster_of_processes_is_refused_before_any_starts_when_it_cannot_fit() -> None:
    need = BASE_BYTES + 1000 * NODE_PROCESS_BYTES
    refuse_unless_processes_fit(1000, available=need)
    with pytest.raises(Exception, match=r"a cluster of 1,000 node processes .* --engine sim$"):
        refuse_unless_processes_fit(1000, available=need - 1)


def test_histories_kept_from_several_workloads_count_each() -> None:
    one = estimate_bytes(streams(10, 100, 50), simulated_edges=0)
    four = estimate_bytes(streams(10, 100, 50), simulated_edges=0, histories_held=4)
    assert four.held == 4 * one.held
