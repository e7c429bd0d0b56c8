"""The edge's Prometheus endpoint: ``edgekv_edge_*_total`` counters, scraped over HTTP."""

from __future__ import annotations

import pytest

from tests.integration.edge.conftest import Cluster, scrape
from tests.support.redis_server import free_port


async def test_prometheus_hits_total_grows_with_each_hit(cluster: Cluster) -> None:
    port = free_port()
    b = await cluster.add_edge("b", "eu-west", metrics_listen=f"127.0.0.1:{port}")
    labels = 'node="b",region="eu-west"'
    await cluster.kv.put("k", "v")

    before = await scrape(port)
    assert before["edgekv_edge_hits_total"] == {labels: 0.0}
    assert (await b.kv.get_with_metadata("k")).cache_status == "MISS"
    after_miss = await scrape(port)
    assert after_miss["edgekv_edge_hits_total"][labels] == 0.0
    assert after_miss["edgekv_edge_misses_total"][labels] == 1.0
    assert after_miss["edgekv_edge_upstream_calls_total"][labels] == 1.0

    for expected in (1.0, 2.0):
        assert (await b.kv.get_with_metadata("k")).cache_status == "HIT"
        assert (await scrape(port))["edgekv_edge_hits_total"][labels] == expected
    stats = await b.stats()
    assert stats.hits == 2, "Prometheus and GetStats report the same counters"


async def test_a_stopped_edge_frees_its_metrics_port(cluster: Cluster) -> None:
    """KNOWN PRODUCT BUG (fails until edge/server.py is fixed; see the message)."""
    listen = f"127.0.0.1:{free_port()}"
    first = await cluster.add_edge("b", metrics_listen=listen)
    await cluster.stop_edge(first)
    try:
        again = await cluster.add_edge("b", metrics_listen=listen)
    except OSError as exc:
        pytest.fail(
            f"an edge restarted in the same process cannot serve metrics on {listen} again "
            f"({exc}): EdgeServer.stop (edge/server.py) calls metrics.shutdown() but never "
            "metrics.server_close(), so the stopped edge's listening socket stays open — "
            "scrapes of it hang, and the port stays taken"
        )
    assert (await scrape(int(listen.rpartition(":")[2])))["edgekv_edge_hits_total"]
    await cluster.stop_edge(again)
