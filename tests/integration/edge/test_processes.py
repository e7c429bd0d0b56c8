"""``edgekv edge`` as real child processes: a region's shared Redis cache, start errors.

Starting a process blocks (the launcher polls its stdout), so starts run in a
thread: an in-process central on this test's event loop must keep answering
the child's health check meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekv
from edgekv.control import EdgeStats, NodeControl
from tests.integration.edge.conftest import Cluster, scrape
from tests.support.central_process import CentralLauncher
from tests.support.edge_process import EdgeExit, EdgeLauncher, run_edge_to_exit
from tests.support.redis_server import free_port


@pytest.fixture
def centrals(tmp_path: Path) -> Iterator[CentralLauncher]:
    with CentralLauncher(tmp_path / "central") as launcher:
        yield launcher


@pytest.fixture
def edges(tmp_path: Path) -> Iterator[EdgeLauncher]:
    with EdgeLauncher(tmp_path / "edges") as launcher:
        yield launcher


async def edge_stats(address: str) -> EdgeStats:
    async with NodeControl(address) as control:
        return await control.stats()


@pytest.mark.redis
async def test_two_edge_processes_of_a_region_share_one_redis_cache(
    redis_url: str, centrals: CentralLauncher, edges: EdgeLauncher
) -> None:
    central = await asyncio.to_thread(centrals.start, "memory:")
    metrics_port = free_port()
    one, two, elsewhere = await asyncio.gather(
        asyncio.to_thread(
            edges.start, central.address, "r1", ["--cache", redis_url, "--node", "r1-one"]
        ),
        asyncio.to_thread(
            edges.start,
            central.address,
            "r1",
            [
                "--cache",
                redis_url,
                "--node",
                "r1-two",
                "--metrics-listen",
                f"127.0.0.1:{metrics_port}",
            ],
        ),
        asyncio.to_thread(
            edges.start, central.address, "r2", ["--cache", redis_url, "--node", "r2-one"]
        ),
    )
    assert (one.region, two.region, elsewhere.region) == ("r1", "r1", "r2")

    async with edgekv.Client(central=central.address) as admin:
        namespace = await admin.create_namespace("shared")
        put = await admin.namespace(namespace.id).put("k", "shared value")
    clients = [edgekv.Client(edge=edge.address) for edge in (one, two, elsewhere)]
    try:
        kv_one, kv_two, kv_elsewhere = (c.namespace(namespace.id) for c in clients)
        filled = await kv_one.get_with_metadata("k")
        assert (filled.value, filled.cache_status, filled.info.node) == (
            "shared value",
            "MISS",
            "r1-one",
        )
        shared = await kv_two.get_with_metadata("k")
        assert (shared.value, shared.cache_status) == ("shared value", "HIT"), (
            "edge 2 of region r1 must find the copy edge 1 put into the region's Redis cache"
        )
        assert (shared.info.node, shared.info.region) == ("r1-two", "r1")
        assert shared.info.revision == put.revision
        other_region = await kv_elsewhere.get_with_metadata("k")
        assert other_region.cache_status == "MISS", "another region does not share r1's copies"
    finally:
        for client in clients:
            await client.close()

    stats_two = await edge_stats(two.address)
    assert (stats_two.hits, stats_two.misses, stats_two.upstream_calls) == (1, 0, 0)
    assert (await edge_stats(one.address)).upstream_calls == 1
    metrics = await scrape(metrics_port)
    assert metrics["edgekv_edge_hits_total"] == {'node="r1-two",region="r1"': 1.0}


def assert_one_line_error(result: EdgeExit, *fragments: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{result.stderr}"
    assert lines[0].startswith("edgekv: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "ready" not in result.stdout


async def test_an_edge_with_an_unreachable_central_fails_at_start(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    result = await asyncio.to_thread(run_edge_to_exit, nowhere, "r1", tmp_path, timeout_s=20)
    assert_one_line_error(result, nowhere)


@pytest.mark.parametrize(
    "cache_url",
    ["bogus://somewhere", "redis://127.0.0.1:{port}/0"],
    ids=["unknown-scheme", "unreachable-redis"],
)
async def test_an_edge_with_a_bad_cache_url_fails_at_start(
    cluster: Cluster, tmp_path: Path, cache_url: str
) -> None:
    url = cache_url.format(port=free_port())
    result = await asyncio.to_thread(
        run_edge_to_exit,
        cluster.central_address,
        "r1",
        tmp_path,
        ["--cache", url],
        timeout_s=20,
    )
    assert_one_line_error(result, url.split("://")[0])


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--region", "../../escaped"], "--region: '../../escaped' is not a DNS label"),
        (["--region", "eu-west", "--node", "Node_1"], "--node: 'Node_1' is not a DNS label"),
        (["--region", "eu-west", "--node", "n" * 64], "--node: 'nnnn"),
    ],
    ids=["region-path", "node-case", "node-too-long"],
)
async def test_an_edge_whose_names_are_not_dns_labels_fails_at_start(
    cluster: Cluster, tmp_path: Path, flags: list[str], named: str
) -> None:
    region = flags[1]
    result = await asyncio.to_thread(
        run_edge_to_exit, cluster.central_address, region, tmp_path, flags[2:], timeout_s=20
    )
    assert_one_line_error(result, named)
