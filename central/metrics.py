"""Central's Prometheus endpoint: its calls, its group commit, its watchers, read when scraped.

Theory of operation: nothing here runs on the request path. The numbers are
kept where they arise, as plain counters a request increments — calls by
method and final status at the error boundary (:class:`edgekv.rpc.CallCounts`,
refusals and requests the storage failed included), each storage transaction
of the group commit (:class:`central.storage.stats.CommitStats`) — and the
watchers' backlog is counted only when asked. A collector turns them into
metric families each time Prometheus scrapes, from the metrics server's
thread:

* ``edgekv_central_requests_total{service, method, status}`` — calls answered;
* ``edgekv_central_storage_errors_total`` — requests answered STORAGE_FAILED;
* ``edgekv_central_commit_seconds`` — real seconds per storage transaction;
* ``edgekv_central_commit_batch_writes`` / ``_groups`` — writes and requests'
  groups per transaction (more than one when writes waited for the disk);
* ``edgekv_central_watchers`` and ``edgekv_central_watch_backlog_bytes`` — open
  watch streams, and the bytes of changes they have not been sent yet.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from central.service import CentralStoreService
from central.storage.base import Storage
from central.storage.stats import Histogram
from edgekv.core.errors import ErrorKind
from edgekv.rpc import CallCounts

PREFIX = "edgekv_central_"


class CentralCollector(Collector):
    def __init__(self, calls: CallCounts, service: CentralStoreService, storage: Storage) -> None:
        self._calls = calls
        self._service = service
        self._storage = storage

    def collect(self) -> Iterator[Metric]:
        yield self._requests()
        storage_errors = CounterMetricFamily(
            f"{PREFIX}storage_errors", "requests answered STORAGE_FAILED: the storage failed"
        )
        storage_errors.add_metric([], self._calls.of_kind(ErrorKind.STORAGE_FAILED.value))
        yield storage_errors
        stats = self._storage.commit_stats
        yield _histogram("commit_seconds", "real seconds per storage transaction", stats.seconds)
        yield _histogram("commit_batch_writes", "writes per storage transaction", stats.writes)
        yield _histogram(
            "commit_batch_groups", "requests' write groups per storage transaction", stats.groups
        )
        watchers, backlog_bytes = self._service.watch_backlog()
        yield GaugeMetricFamily(f"{PREFIX}watchers", "open watch streams", value=watchers)
        yield GaugeMetricFamily(
            f"{PREFIX}watch_backlog_bytes",
            "bytes of changes (keys, values, metadata) the watchers have not been sent",
            value=backlog_bytes,
        )

    def _requests(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            f"{PREFIX}requests",
            "calls answered, by gRPC service, method and final status",
            labels=["service", "method", "status"],
        )
        for path, statuses in sorted(self._calls.snapshot().items()):
            service, _, method = path.lstrip("/").rpartition("/")
            for status, count in sorted(statuses.items()):
                family.add_metric([service, method, status], count)
        return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = histogram.cumulative()
    return HistogramMetricFamily(
        f"{PREFIX}{name}", documentation, buckets=buckets, sum_value=histogram.sum
    )
