"""The edge's Prometheus endpoint: its counters, read when scraped.

Theory of operation: the node's :class:`~edgekv.control.EdgeCounters` are the one
source of truth; a collector turns them into ``edgekv_edge_*_total`` counters
(labelled by region and node) each time Prometheus scrapes, so nothing on the
read path pays for metrics.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from edgekv.control import EdgeCounters


class EdgeCollector(Collector):
    def __init__(self, counters: EdgeCounters, region: str, node: str) -> None:
        self._counters = counters
        self._labels = [region, node]

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in self._counters.as_dict().items():
            family = CounterMetricFamily(
                f"edgekv_edge_{name}", f"edge {name.replace('_', ' ')}", labels=["region", "node"]
            )
            family.add_metric(self._labels, value)
            yield family
