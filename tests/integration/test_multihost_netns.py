"""Central and two edges on three hosts (network namespaces) joined by a bridge.

Every call crosses real interfaces: a client agent inside an edge's namespace
talks to that edge on the edge's own address, and each edge talks to central
across the bridge. Write at A, read at B: B keeps its old copy (HIT) until its
cacheTtl passes, then fetches the new value. With B's interface down, B serves
an expired copy as STALE and fails a never-read key as UNAVAILABLE; with it up
again, B recovers by itself. The nodes run at ``--time-scale 20``, so the 60 s
default cacheTtl lasts 3 s of real time.

Needs root and ``ip`` (as CI has); outside CI without them it is skipped.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.central_process import CentralLauncher, central_command
from tests.support.edge_process import EdgeLauncher, edge_command
from tests.support.netns import ClientAgent, NetnsLab, netns_unavailable_reason

pytestmark = pytest.mark.slow

TIME_SCALE = 20
CACHE_TTL_REAL_S = 60 / TIME_SCALE  # the default cacheTtl, in real seconds
MAX_STALE_S = 600  # simulated: 30 s real, longer than the whole test
CENTRAL_PORT = 7000
EDGE_PORT = 7100
WRITE_GAP_REAL_S = 2 / TIME_SCALE  # twice the one-write-per-key-per-second limit


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    reason = netns_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the multi-host test, but {reason}")
        pytest.skip(reason)
    prefix = f"ekv-{os.getpid()}"
    subnet = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"
    with NetnsLab(prefix, ["c", "a", "b"], subnet) as lab:
        yield lab


@pytest.fixture
def centrals(lab: NetnsLab, tmp_path: Path) -> Iterator[CentralLauncher]:
    with CentralLauncher(tmp_path) as launcher:
        yield launcher


@pytest.fixture
def edges(lab: NetnsLab, tmp_path: Path) -> Iterator[EdgeLauncher]:
    with EdgeLauncher(tmp_path) as launcher:
        yield launcher


@pytest.fixture
def agents(lab: NetnsLab, tmp_path: Path) -> Iterator[dict[str, ClientAgent]]:
    started: dict[str, ClientAgent] = {}
    try:
        for node in ("a", "b"):
            started[node] = ClientAgent(lab, node, tmp_path / f"agent-{node}.stderr")
        yield started
    finally:
        for agent in started.values():
            agent.kill()


def test_write_here_read_there_and_a_link_down_across_namespaces(
    lab: NetnsLab,
    centrals: CentralLauncher,
    edges: EdgeLauncher,
    agents: dict[str, ClientAgent],
    tmp_path: Path,
) -> None:
    central_at = f"{lab.address('c')}:{CENTRAL_PORT}"
    # One anchor for all: an edge dates its copies by central's clock.
    time_flags = ["--time-scale", str(TIME_SCALE), "--time-anchor", repr(time.time())]
    central = centrals.launch(
        lab.exec_argv(
            "c",
            central_command(
                f"sqlite:{tmp_path / 'central.db'}",
                ["--listen", central_at, *time_flags],
            ),
        ),
        name="central",
    )
    assert central.address == central_at
    edge_at: dict[str, str] = {}
    for node, region in (("a", "us-east"), ("b", "eu-west")):
        edge_at[node] = f"{lab.address(node)}:{EDGE_PORT}"
        edge = edges.launch(
            lab.exec_argv(
                node,
                edge_command(
                    central_at,
                    region,
                    [
                        "--listen", edge_at[node], "--node", f"edge-{node}",
                        "--max-stale-s", str(MAX_STALE_S), *time_flags,
                    ],
                ),
            ),
            name=f"edge-{node}",
        )  # fmt: skip
        assert edge.address == edge_at[node]

    namespace = agents["a"].call(op="create_namespace", central=central_at, title="netns")["id"]

    last_put: dict[str, float] = {}

    def put(node: str, key: str, value: str) -> None:
        # Workers KV allows one write per key per (simulated) second.
        time.sleep(max(0.0, last_put.get(key, 0.0) + WRITE_GAP_REAL_S - time.monotonic()))
        last_put[key] = time.monotonic()
        answer = agents[node].call(
            op="put", edge=edge_at[node], namespace=namespace, key=key, value=value
        )
        assert "error" not in answer, answer

    def get(node: str, key: str) -> dict[str, Any]:
        return agents[node].call(op="get", edge=edge_at[node], namespace=namespace, key=key)

    # -- write at A, read at B ------------------------------------------------
    put("a", "k", "v1")
    sent = time.monotonic()
    first = get("b", "k")
    answered = time.monotonic()
    assert (first.get("value"), first.get("status")) == ("v1", "MISS"), first
    put("a", "k", "v2")
    # B's copy was fetched between `sent` and `answered`: a read answered before
    # sent + ttl must be that copy, a read sent after answered + ttl must not.
    seen_old_hits = 0
    while True:
        started = time.monotonic()
        read = get("b", "k")
        done = time.monotonic()
        if done < sent + CACHE_TTL_REAL_S:
            assert (read.get("value"), read.get("status")) == ("v1", "HIT"), read
            seen_old_hits += 1
        elif read.get("value") == "v2":
            assert read["status"] in ("MISS", "EXPIRED"), read
            break
        else:
            assert (read.get("value"), read.get("status")) == ("v1", "HIT"), read
            assert started < answered + CACHE_TTL_REAL_S, f"B still has v1 too late: {read}"
        time.sleep(0.1)
    refetched = done  # B's copy of v2 was fetched no later than this
    assert seen_old_hits > 0

    # -- B's link down: STALE for an expired copy, UNAVAILABLE for a new key --
    lab.set_link("b", up=False)
    lab.reset_connections("b", "c")
    try:
        put("a", "k", "v3")  # B cannot learn of it
        time.sleep(max(0.0, refetched + CACHE_TTL_REAL_S + 0.3 - time.monotonic()))
        stale = get("b", "k")
        assert (stale.get("value"), stale.get("status")) == ("v2", "STALE"), stale
        never_read = get("b", "never-read")
        assert never_read.get("error") == "UnavailableError", never_read
        assert "cannot reach the central store" in never_read["message"], never_read
    finally:
        lab.set_link("b", up=True)

    # -- link up: B recovers by itself ------------------------------------------
    deadline = time.monotonic() + 10
    while True:
        read = get("b", "k")
        if "error" not in read and read["status"] != "STALE":
            break
        assert time.monotonic() < deadline, f"B did not recover: {read}"
        time.sleep(0.2)
    assert (read["value"], read["status"]) in (("v3", "EXPIRED"), ("v3", "MISS")), read
    assert central.running and all(edge.running for edge in edges.started)
