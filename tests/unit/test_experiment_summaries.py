"""Experiments' summaries of hand-made histories: what they count, and what they claim."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgekv.experiments.history import Op, annotate_central_revisions
from edgekv.experiments.partition import Partition
from edgekv.experiments.results import RunRecord, Summary, markdown_report
from edgekv.experiments.staleness import Staleness
from edgekv.experiments.visibility import Visibility
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


def test_partition_headline_says_when_the_region_was_not_read_during_the_cut() -> None:
    held = {"a": 1}
    run = record("partition", PARTITION_OPTIONS, {**BRACKETED, "central_revisions": held})
    ops = [write(1, 50.0, 1, key="a"), read(2, 250.0, 1, key="a", cache_status="MISS")]
    summary = Partition().summarise(run, ops)
    assert "eu was not read while it was cut off" in summary.headline
    assert "STALE" not in summary.headline


# --- checks that examined nothing, and headlines from no data -----------------------------------


def cluster(*regions: str) -> dict[str, Any]:
    return {
        "time_scale": 1.0,
        "regions": {r: {"rtt_ms": 0, "jitter_ms": 0, "edges": [f"{r}-1"]} for r in regions},
    }


STALENESS_OPTIONS = {
    "duration": 100.0, "keys": 2, "zipf": 0.0, "read_rate": 0.4, "write_rate": 0.05,
    "writer_region": "us",
}  # fmt: skip


def staleness_summary(ops: Iterable[Op]) -> Summary:
    run = record("staleness", STALENESS_OPTIONS, {"readers": ["eu"], "cache_ttls": [30, 60]})
    run.cluster = cluster("us", "eu")
    return Staleness().summarise(run, ops)


def test_a_run_with_no_reads_says_so_and_does_not_pass() -> None:
    summary = staleness_summary([write(1, 10.0, 1, region="us", group="ttl=30")])
    assert summary.headline == (
        "no read was measured at any cacheTtl: nothing to compare with the theory"
    )
    assert summary.tables[0].rows[0][1:3] == [0, None]  # no reads, no hit ratio
    checks = {check["name"]: check for check in summary.checks}
    assert checks["monotonic-reads"]["verdict"] == "not examined"
    assert not summary.ok, "the run needed monotonic reads and examined none"
    text = summary.as_text()
    assert "monotonic-reads      not examined, and the run needed it: FAILS" in text
    assert "ok (0 observations)" not in text
    # The writer does not read here: read-your-writes had nothing to examine, and may not.
    assert "not examined, not needed here: writes are made only in us, where nobody reads" in text


def test_a_headline_counts_only_the_settings_that_measured_something() -> None:
    ops = [
        write(1, 10.0, 1, region="us", group="ttl=30"),
        read(2, 20.0, 1, region="eu", group="ttl=30", session="a", cache_status="MISS"),
        read(3, 30.0, 1, region="eu", group="ttl=30", session="a", cache_status="HIT"),
    ]
    annotate_central_revisions(ops)
    summary = staleness_summary(ops)
    assert summary.headline.endswith("across 1 cacheTtl settings; no read was measured at "
                                     "cacheTtl 60 s")  # fmt: skip
    assert summary.ok, summary.checks
    assert "monotonic-reads      ok (1 observations)" in summary.as_text()


def test_visibility_with_no_acknowledged_write_has_nothing_to_claim() -> None:
    options = {"cache_ttl": 30, "poll_interval": 2.0, "writer_region": "us", "duration": 100.0}
    run = record("visibility", options, {"writes_end_s": 60.0, "regions": ["us", "eu"]})
    run.cluster = cluster("us", "eu")
    ops = [
        write(1, None, None, invoke_s=5.0, region="us", outcome="failed"),
        read(2, 10.0, 0, region="eu"),
        read(3, 90.0, 0, region="eu"),
    ]
    summary = Visibility().summarise(run, ops)
    assert summary.headline == "no write was acknowledged in us: there was nothing to see"
    verdicts = {check["name"]: check["verdict"] for check in summary.checks}
    assert verdicts["visibility-promise"] == "not examined"
    assert not summary.ok


def test_report_marks_a_needed_check_that_examined_nothing() -> None:
    summary = staleness_summary([])
    report = markdown_report(record("staleness", STALENESS_OPTIONS, {}), summary, [])
    assert "- monotonic-reads: **not examined, and the run needed it: FAILS**" in report
    assert "holds (0 observations)" not in report


def test_the_staleness_summary_passes_over_its_history_once() -> None:
    # A simulated day does not fit in memory: the summary must take the history as a
    # stream (one pass, nothing indexed), and say the same as the per-check functions.
    ops = [
        write(1, 10.0, 1, region="us", group="ttl=30"),
        read(2, 12.0, 1, region="eu", group="ttl=30", session="a", cache_status="MISS"),
        write(3, 15.0, 2, region="us", group="ttl=30"),
        read(4, 20.0, 1, region="eu", group="ttl=30", session="a", cache_status="HIT"),
        read(5, 45.0, 2, region="eu", group="ttl=30", session="a", cache_status="EXPIRED"),
        read(6, 46.0, 1, region="eu", group="ttl=30", session="a", cache_status="HIT"),
    ]
    annotate_central_revisions(ops)
    streamed = staleness_summary(iter(ops))
    assert streamed.to_json() == staleness_summary(list(ops)).to_json()
    ttl30 = streamed.measures["ttl=30"]
    assert (ttl30["reads"], ttl30["stale_fraction"], ttl30["hit_ratio"]) == (4, 0.5, 0.5)
    assert ttl30["time_behind_s"] == [5.0, 31.0] and ttl30["revisions_behind"] == [1, 1]
    checks = {check["name"]: check for check in streamed.checks}
    assert checks["monotonic-reads"]["violation_count"] == 1  # read 6 went back behind 5
