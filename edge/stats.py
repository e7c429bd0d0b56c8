"""An edge's counters: what EdgeControl.GetStats and the Prometheus endpoint report."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class EdgeCounters:
    hits: int = 0
    misses: int = 0
    expired: int = 0
    revalidated: int = 0
    stale_serves: int = 0
    upstream_calls: int = 0
    upstream_errors: int = 0
    upstream_bytes: int = 0
    watch_changes: int = 0
    refreshes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}
