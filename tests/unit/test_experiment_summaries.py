"""Experiments' summaries of hand-made histories: what they count, and what they claim."""

from __future__ import annotations

from typing import Any

from edgekv.experiments.history import Op
from edgekv.experiments.partition import Partition
from edgekv.experiments.results import RunRecord
from tests.unit.test_checkers import read, write


def record(experiment: str, options: dict[str, Any], facts: dict[str, Any]) -> RunRecord:
    return RunRecord(experiment, options, 1, "abc", "2026-01-01T00:00:00Z", facts=facts)


# --- partition ---------------------------------------------------------------------------------

PARTITION_OPTIONS = {"duration": 300.0, "cache_ttl": 60}
# The cut was sent at 100 s and confirmed by the edge at 103 s; the heal sent at 200 s and
# confirmed at 206 s: a slow machine, where the driver hears SetLink's answer late.
BRACKETED = {
    "region": "eu",
    "regions": ["eu", "us"],
    "cut_requested_s": 100.0,
    "cut_s": 103.0,
    "heal_requested_s": 200.0,
    "heal_s": 206.0,
}


def partition_history() -> list[Op]:
    return [
        write(1, 50.0, 1, key="a"),  # before
        write(2, None, None, invoke_s=102.0, outcome="failed", key="b"),  # cut landed first
        write(3, 101.2, 2, invoke_s=101.0, key="c"),  # in flight as the cut landed
        write(4, None, None, invoke_s=150.0, outcome="failed", key="d"),  # during
        read(5, 150.0, 1, key="a", cache_status="STALE"),  # during
        write(6, 203.1, 3, invoke_s=203.0, key="e"),  # the heal had landed, unconfirmed
        write(7, 204.0, 4, invoke_s=199.0, complete_s=204.1, key="f"),  # retried across it
        write(8, 210.0, 5, key="g"),  # after
        read(9, 211.0, 5, key="g", cache_status="HIT"),  # after
    ]


def phases(facts: dict[str, Any]) -> dict[str, dict[str, int]]:
    held = {"a": 1, "c": 2, "e": 3, "f": 4, "g": 5}
    run = record("partition", PARTITION_OPTIONS, {**facts, "central_revisions": held})
    summary = Partition().summarise(run, partition_history())
    columns = summary.tables[0].columns[1:]
    return {
        phase: dict(zip(columns, row, strict=True))
        for phase, row in summary.measures["phases"].items()
    }


def test_partition_counts_during_only_what_surely_saw_the_cut() -> None:
    got = phases(BRACKETED)
    assert (got["before"]["writes_ok"], got["before"]["writes_failed"]) == (1, 0)
    during = got["during"]
    assert (during["writes_ok"], during["writes_failed"], during["stale_served"]) == (0, 1, 1)
    assert (got["after"]["writes_ok"], got["after"]["fresh_ok"]) == (1, 1)
    # Writes in flight while a switch landed may rightly go either way: counted apart.
    assert (got["crossing"]["writes_ok"], got["crossing"]["writes_failed"]) == (3, 1)


def test_partition_reads_runs_recorded_with_one_time_per_switch() -> None:
    old = {"region": "eu", "regions": ["eu", "us"], "cut_s": 103.0, "heal_s": 206.0}
    got = phases(old)
    assert got["during"]["writes_failed"] == 1
    assert sum(row["writes_ok"] for row in got.values()) == 5
