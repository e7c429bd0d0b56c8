"""The operators' control client and ``edgekv status`` when a node's parts fail."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import edgekv
from central.server import CentralServer, start_central
from edge.server import EdgeConfig, start_edge
from edgekv.clock import ManualClock
from edgekv.control import LinkSettings, NodeControl
from edgekv.locate import ClusterState
from tests.support.redis_server import start_redis


@pytest.fixture
async def central() -> AsyncIterator[CentralServer]:
    server = await start_central("127.0.0.1:0", "memory:", ManualClock())
    try:
        yield server
    finally:
        await server.stop(grace_s=0)


@pytest.mark.redis
async def test_stats_of_an_edge_whose_redis_cache_is_down_are_one_error_line(
    central: CentralServer, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path / "redis")
    config = EdgeConfig(central=central.address, region="eu-west", cache_url=redis.url())
    edge = await start_edge(config, ManualClock())
    try:
        async with NodeControl(edge.address) as control:
            assert (await control.stats()).region == "eu-west"
            redis.stop()
            with pytest.raises(edgekv.UnavailableError, match="redis"):
                await control.stats()
            assert await control.healthy(), "the node itself still serves"

        state = tmp_path / "cluster.json"
        ClusterState(
            central=central.address,
            edges={"eu-west": [edge.address]},
            nodes={
                "central": {"kind": "central", "region": "us-east", "address": central.address},
                "eu-west-1": {"kind": "edge", "region": "eu-west", "address": edge.address},
            },
        ).write(state)
        status = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgekv",
            "status",
            env={"EDGEKV_STATE_FILE": str(state), "PATH": "/usr/bin:/bin"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await status.communicate()
    finally:
        redis.stop()
        await edge.stop(grace_s=0)
    lines = out.decode().splitlines()
    assert status.returncode == 0 and err == b"", err.decode()
    assert len(lines) == 3 and "Traceback" not in out.decode()
    assert "eu-west-1" in lines[2] and "SERVING" in lines[2] and "no stats:" in lines[2]


async def test_the_link_is_read_and_changed_through_the_control_client(
    central: CentralServer,
) -> None:
    config = EdgeConfig(central=central.address, region="eu-west", link=LinkSettings(rtt_ms=80))
    edge = await start_edge(config, ManualClock())
    try:
        async with NodeControl(edge.address) as control:
            assert await control.link() == LinkSettings(rtt_ms=80)
            cut = await control.change_link(partitioned=True)
            assert cut == LinkSettings(rtt_ms=80, partitioned=True) == edge.link.settings
            with pytest.raises(edgekv.InvalidRequestError, match="Invalid link settings"):
                await control.change_link(loss=2.0)
            assert edge.link.settings == cut, "a refused change changes nothing"
            assert await control.flush() == 0
            assert await control.serving_status() == "SERVING"
        async with NodeControl("127.0.0.1:1", timeout_s=0.5) as nobody:
            assert not await nobody.healthy()
    finally:
        await edge.stop(grace_s=0)
