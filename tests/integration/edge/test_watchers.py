"""Watchers of the watch modes: only of namespaces that exist, and only so many.

A real central and an invalidate-mode edge on real sockets, on a manual clock.
An edge asked for namespaces that do not exist keeps no watcher of them —
whether central says NOT_FOUND or cannot be reached at all — while the
watcher of a namespace central answered for keeps going; and an edge watches
at most ``max_watchers`` namespaces, the least recently served dropped.
"""

from __future__ import annotations

import secrets

import pytest

import edgekv
from edge.node import EdgePolicy
from edge.watcher import MAX_WATCHERS
from edgekv.core import limits
from edgekv.topology import Mode
from tests.integration.edge.conftest import Cluster, Edge, eventually

INVALIDATE = EdgePolicy(mode=Mode.INVALIDATE)


def watched(edge: Edge) -> list[str]:
    return edge.server.watchers.watched()


async def confirmed(cluster: Cluster, edge: Edge, namespace_id: str) -> None:
    """Write probes to ``namespace_id`` at central until its watch delivers one to ``edge``."""
    before = edge.server.node.counters.watch_changes
    probes = 0

    async def delivered() -> bool:
        nonlocal probes
        if edge.server.node.counters.watch_changes > before:
            return True
        probes += 1
        await cluster.central_namespace(namespace_id).put(f"probe-{probes}", "x")
        return False

    await eventually(delivered, what=f"the watch of {namespace_id} delivering a change")


async def test_a_watcher_of_a_namespace_that_does_not_exist_stops(cluster: Cluster) -> None:
    edge = await cluster.add_edge("edge-1", policy=INVALIDATE)
    await edge.kv.get("k")
    await confirmed(cluster, edge, cluster.namespace_id)
    for _ in range(5):
        with pytest.raises(edgekv.NotFoundError):
            await edge.client.namespace(secrets.token_hex(16)).get("k")

    async def only_the_real_one() -> bool:
        return watched(edge) == [cluster.namespace_id]

    await eventually(only_the_real_one, what="the watchers of missing namespaces stopping")


async def test_with_central_away_no_watcher_is_kept_for_namespaces_never_answered(
    cluster: Cluster,
) -> None:
    edge = await cluster.add_edge("edge-1", policy=INVALIDATE)
    await edge.kv.get("k")
    await confirmed(cluster, edge, cluster.namespace_id)
    await cluster.stop_central()
    for _ in range(20):
        with pytest.raises(edgekv.UnavailableError):
            await edge.client.namespace(secrets.token_hex(16)).get("k")

    async def only_the_real_one() -> bool:
        return watched(edge) == [cluster.namespace_id]

    await eventually(only_the_real_one, what="the watchers of unanswered namespaces stopping")


async def test_an_edge_watches_at_most_max_watchers_the_least_recently_served_dropped(
    cluster: Cluster,
) -> None:
    assert MAX_WATCHERS == limits.MAX_NAMESPACES, "every namespace of a store can be watched"
    edge = await cluster.add_edge("edge-1", policy=INVALIDATE, max_watchers=3)
    assert cluster.admin is not None
    names = [(await cluster.admin.create_namespace(f"ns-{i}")).id for i in range(5)]
    for namespace_id in names:
        await edge.client.namespace(namespace_id).get("k")
    assert watched(edge) == names[2:]
    await edge.client.namespace(names[0]).get("k")  # served again: watched again
    assert watched(edge) == [*names[3:], names[0]]
    await edge.client.namespace(names[3]).get("k")  # already watched: now the most recent
    assert watched(edge) == [names[4], names[0], names[3]]
    await confirmed(cluster, edge, names[0])
