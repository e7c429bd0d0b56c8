"""The history checkers (edgekv.experiments.checkers) on small hand-made histories."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import pytest

from edgekv.experiments.checkers import (
    CheckResult,
    Staleness,
    Violation,
    Visibility,
    convergence,
    monotonic_reads,
    percentile,
    promise,
    read_your_writes,
    revisions_behind,
    staleness,
    summary_of_visibility,
    visibility,
)
from edgekv.experiments.history import Op, Outcome, annotate_central_revisions


def read(
    op_id: int,
    invoke_s: float,
    revision: int | None,
    *,
    complete_s: float | None = None,
    region: str = "eu",
    node: str | None = None,
    session: str = "s1",
    key: str = "k",
    group: str = "g",
    outcome: Outcome = "ok",
    cache_status: str | None = None,
    cache_ttl_s: float | None = None,
) -> Op:
    return Op(
        id=op_id,
        kind="read",
        session=session,
        region=region,
        node=node if node is not None else f"{region}-1",
        key=key,
        group=group,
        scheduled_s=invoke_s,
        invoke_s=invoke_s,
        complete_s=complete_s if complete_s is not None else invoke_s + 0.01,
        outcome=outcome,
        revision=revision if outcome == "ok" else None,
        cache_status=cache_status,
        cache_ttl_s=cache_ttl_s,
    )


def write(
    op_id: int,
    commit_s: float | None,
    revision: int | None,
    *,
    invoke_s: float | None = None,
    complete_s: float | None = None,
    region: str = "eu",
    node: str | None = None,
    session: str = "w",
    key: str = "k",
    group: str = "g",
    outcome: Outcome = "ok",
) -> Op:
    when_s = commit_s if commit_s is not None else invoke_s
    assert when_s is not None
    return Op(
        id=op_id,
        kind="write",
        session=session,
        region=region,
        node=node if node is not None else f"{region}-1",
        key=key,
        group=group,
        scheduled_s=invoke_s if invoke_s is not None else when_s - 0.01,
        invoke_s=invoke_s if invoke_s is not None else when_s - 0.01,
        complete_s=complete_s if complete_s is not None else when_s + 0.01,
        outcome=outcome,
        revision=revision,
        commit_s=commit_s,
    )


def ids(result: CheckResult) -> list[tuple[int, ...]]:
    return [violation.op_ids for violation in result.violations]


# --- percentile --------------------------------------------------------------------------------


def test_percentile_interpolates_linearly_between_closest_ranks() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 0) == 1
    assert percentile([1, 2, 3, 4], 100) == 4
    assert percentile([4, 1, 3, 2], 25) == pytest.approx(1.75)
    assert percentile([10.0, 20.0], 99) == pytest.approx(19.9)
    assert percentile([7.0], 99) == 7.0


def test_percentile_rejects_no_values_and_bad_quantiles() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


# --- results -----------------------------------------------------------------------------------


def test_a_check_result_is_json_able_and_truncates_violations() -> None:
    violations = tuple(Violation("c", f"v{i}", (i, i + 1)) for i in range(5))
    result = CheckResult("c", 9, violations)
    record = result.as_dict(max_violations=2)
    assert json.loads(json.dumps(record)) == {
        "name": "c",
        "verdict": "violated",
        "ok": False,
        "passes": False,
        "checked": 9,
        "optional_because": None,
        "violation_count": 5,
        "violations": [
            {"check": "c", "message": "v0", "op_ids": [0, 1]},
            {"check": "c", "message": "v1", "op_ids": [1, 2]},
        ],
    }


def test_a_check_that_examined_nothing_is_not_examined_never_ok() -> None:
    held = CheckResult("c", 3, ())
    assert (held.verdict, held.ok, held.passes) == ("ok", True, True)
    empty = CheckResult("c", 0, ())
    assert (empty.verdict, empty.ok, empty.passes) == ("not examined", False, False)
    # An experiment may say why it can lack data for a check; then the run may pass.
    excused = empty.optional("no region both writes and reads")
    assert (excused.verdict, excused.ok, excused.passes) == ("not examined", False, True)
    assert excused.as_dict()["optional_because"] == "no region both writes and reads"
    # Violations are never excused.
    broken = CheckResult("c", 1, (Violation("c", "v", (1,)),)).optional("whatever")
    assert (broken.verdict, broken.passes) == ("violated", False)


# --- staleness ---------------------------------------------------------------------------------


def staleness_history() -> list[Op]:
    ops = [
        write(1, 1.0, 1),
        write(2, 2.0, 2),
        write(3, 3.0, 3),
        write(4, None, None, invoke_s=3.2, outcome="failed"),
        # Another group's write of the same key must not count for group g.
        write(5, 0.5, 10, group="h"),
        read(10, 1.5, 1, cache_status="HIT"),  # fresh (central 1)
        read(11, 2.5, 1, cache_status="HIT"),  # stale: 0.5 s, 1 revision behind
        read(12, 3.5, 1, cache_status="STALE"),  # stale: 1.5 s, 2 revisions behind
        read(13, 4.0, 3, cache_status="MISS"),  # fresh
        read(14, 4.5, None, outcome="failed"),
        read(15, 3.0, 2, region="us", cache_status="REVALIDATED"),  # stale: 0 s, 1 behind
        read(16, 1.0, 10, group="h", cache_status="HIT"),  # fresh in group h
    ]
    annotate_central_revisions(ops)
    return ops


def test_staleness_of_a_hand_computed_history() -> None:
    result = staleness(staleness_history(), group="g")
    assert result == Staleness(
        reads=5,
        stale=3,
        hits=2,
        upstream=2,
        time_behind_s=(0.5, 1.5, 0.0),
        revisions_behind=(1, 2, 1),
    )
    assert result.stale_fraction == pytest.approx(0.6)
    assert result.hit_ratio == pytest.approx(0.4)


def test_revisions_behind_counts_the_writes_each_read_missed() -> None:
    behind = revisions_behind(staleness_history())
    assert behind == {10: 0, 11: 1, 12: 2, 13: 0, 15: 1, 16: 0}


def test_staleness_filters_by_group_region_and_window() -> None:
    ops = staleness_history()
    everything = staleness(ops)
    assert (everything.reads, everything.stale, everything.hits) == (6, 3, 3)
    in_h = staleness(ops, group="h")
    assert (in_h.reads, in_h.stale, in_h.hits) == (1, 0, 1)
    in_us = staleness(ops, group="g", region="us")
    assert (in_us.reads, in_us.stale, in_us.revisions_behind) == (1, 1, (1,))
    # [2.5, 3.5): read 11 (at the start) and 15, not 12 (at the end).
    window = staleness(ops, group="g", window_s=(2.5, 3.5))
    assert (window.reads, window.stale, window.time_behind_s) == (2, 2, (0.5, 0.0))


def test_staleness_skips_reads_without_a_central_revision() -> None:
    ops = [write(1, 1.0, 1), read(2, 2.0, 0)]  # not annotated
    empty = staleness(ops)
    # Fractions of no reads are unknown, not 0.
    assert (empty.reads, empty.stale_fraction, empty.hit_ratio) == (0, None, None)


# --- visibility --------------------------------------------------------------------------------


REGIONS = ("eu", "us", "ap", "sa")


def visibility_history() -> list[Op]:
    return [
        write(1, 10.0, 5, region="eu", complete_s=10.1),
        read(2, 10.1, 5, complete_s=10.2, region="eu"),  # at the writer, right away
        read(3, 11.0, 0, region="us"),  # not yet
        read(4, 30.0, 5, complete_s=30.5, region="us"),  # first in us
        read(5, 29.0, 5, complete_s=31.0, region="us"),  # invoked first, completed later
        read(6, 40.0, 5, complete_s=40.1, region="us"),
        read(7, 5.0, 0, region="ap"),
        read(8, 20.0, 5, region="ap", group="other"),  # another group's key
        write(9, None, None, invoke_s=45.0, outcome="unknown"),
        write(10, 50.0, 7, region="us"),
        read(11, 60.0, 7, complete_s=60.5, region="us"),
        read(12, 60.0, 7, complete_s=61.0, region="ap"),  # shows both writes
        read(13, 70.0, 9, region="ap", outcome="failed"),
    ]


def test_visibility_late_in_one_region_never_in_another_at_once_at_the_writer() -> None:
    items = visibility(visibility_history(), REGIONS)
    got = [(v.write_id, v.region, v.visible_after_s, v.seen_by) for v in items]
    expected = [
        (1, "eu", 0.2, 2),
        (1, "us", 20.5, 4),
        (1, "ap", 51.0, 12),
        (1, "sa", None, None),
        (10, "eu", None, None),
        (10, "us", 10.5, 11),
        (10, "ap", 11.0, 12),
        (10, "sa", None, None),
    ]
    assert [(w, r, s) for w, r, _, s in got] == [(w, r, s) for w, r, _, s in expected]
    for (_, _, after_s, _), (_, _, want_s, _) in zip(got, expected, strict=True):
        assert after_s == (None if want_s is None else pytest.approx(want_s))
    assert {v.commit_s for v in items} == {10.0, 50.0}


def test_a_read_invoked_before_the_commit_does_not_show_the_write() -> None:
    ops = [write(1, 10.0, 5), read(2, 9.0, 5, complete_s=10.5)]
    assert visibility(ops, ["eu"]) == [Visibility(1, "eu", 10.0, None, None)]


def test_summary_of_visibility_per_region() -> None:
    summary = summary_of_visibility(visibility(visibility_history(), REGIONS))
    assert list(summary) == list(REGIONS)
    assert summary["eu"] == {
        "writes": 2,
        "seen": 1,
        "p50_s": pytest.approx(0.2),
        "p99_s": pytest.approx(0.2),
        "max_s": pytest.approx(0.2),
    }
    us = summary["us"]
    assert (us["writes"], us["seen"]) == (2, 2)
    assert us["p50_s"] == pytest.approx(15.5)
    assert us["p99_s"] == pytest.approx(20.4)
    assert us["max_s"] == pytest.approx(20.5)
    assert summary["sa"] == {"writes": 2, "seen": 0, "p50_s": None, "p99_s": None, "max_s": None}


# --- read your writes --------------------------------------------------------------------------


def test_read_your_writes_flags_an_older_read_at_the_writing_node_only() -> None:
    ops = [
        write(1, 0.5, 5, invoke_s=0.0, complete_s=1.0, node="eu-1"),
        read(2, 0.8, 0, node="eu-1"),  # before the write completed: not constrained
        read(3, 2.0, 0, node="eu-2"),  # same region, another node
        read(4, 2.0, 0, region="us"),  # another region
        read(5, 1.0, 0, node="eu-1"),  # invoked exactly as the write completed
        read(6, 3.0, 5, node="eu-1"),
        read(7, 3.0, 0, node="eu-1", key="k2"),  # another key
        write(8, 4.0, 8, node="central", region="central"),  # not through an edge
        read(9, 5.0, 5, node="eu-1"),
        write(10, None, None, invoke_s=6.0, outcome="failed", node="eu-1"),
        read(11, 7.0, 5, node="eu-1"),
        read(12, 7.5, None, node="eu-1", outcome="unknown"),
    ]
    result = read_your_writes(ops)
    assert result.name == "read-your-writes"
    assert result.checked == 4  # reads 5, 6, 9, 11
    assert ids(result) == [(1, 5)]
    message = result.violations[0].message
    assert "eu-1" in message and "region eu" in message and "'k'" in message
    assert "revision 0" in message and "revision 5" in message


def test_read_your_writes_clean() -> None:
    ops = [
        write(1, 0.5, 5, complete_s=1.0),
        read(2, 1.5, 5),
        write(3, 2.0, 6, complete_s=2.1),
        read(4, 2.5, 6),
        read(5, 3.0, 9),  # newer than written: fine
    ]
    result = read_your_writes(ops)
    assert result.ok and result.checked == 3


# --- monotonic reads ---------------------------------------------------------------------------


def test_monotonic_reads_flags_sequential_going_back_not_concurrent_reads() -> None:
    ops = [
        read(1, 0.0, 5, complete_s=1.0),
        read(2, 0.5, 3, complete_s=2.0),  # overlaps read 1: concurrent, fine
        read(3, 2.0, 4, complete_s=3.0),  # after read 1 (revision 5) completed: violation
        read(4, 3.0, 5, complete_s=4.0),
        read(5, 3.5, None, outcome="failed"),
        read(6, 5.0, 1, session="s2"),  # its own session
        read(7, 5.0, 0, key="k2"),  # its own key
        read(8, 6.0, 4, group="h"),  # its own group
    ]
    result = monotonic_reads(ops)
    assert result.name == "monotonic-reads"
    assert result.checked == 2  # reads 3 and 4
    assert ids(result) == [(1, 3)]
    message = result.violations[0].message
    assert "session s1" in message and "region eu" in message and "'k'" in message
    assert "revision 4" in message and "revision 5" in message


def test_monotonic_reads_reports_the_newest_read_it_went_behind() -> None:
    ops = [
        read(1, 0.0, 3, complete_s=1.0),
        read(2, 1.0, 6, complete_s=2.0),
        read(3, 2.0, 4, complete_s=3.0),
        read(4, 4.0, 2, complete_s=5.0),
    ]
    assert ids(monotonic_reads(ops)) == [(2, 3), (2, 4)]


def test_monotonic_reads_clean() -> None:
    ops = [read(i, float(i), i // 2, complete_s=i + 0.5) for i in range(1, 8)]
    result = monotonic_reads(ops)
    assert result.ok and result.checked == 6


# --- convergence -------------------------------------------------------------------------------


EXTRA_S = {"eu": 5.0, "us": 0.0}


def converging_history() -> list[Op]:
    return [
        write(1, 10.0, 1),
        write(2, 20.0, 2),  # final of k
        read(3, 164.9, 1, region="eu"),  # before eu's bound (100 + 60 + 5): not examined
        read(4, 165.0, 2, region="eu"),  # exactly at the bound
        read(5, 160.0, 2, region="us"),  # exactly at us's bound (100 + 60)
        read(6, 170.0, 1, region="us", cache_ttl_s=300.0),  # bound 400: not examined
        read(7, 200.0, None, region="us", outcome="failed"),
        read(8, 170.0, 0, region="eu", key="never-written"),
        write(9, 150.0, 3, key="late"),  # committed after writes_end_s: bound 215 in eu
        read(10, 214.0, 0, region="eu", key="late"),
        read(11, 215.0, 3, region="eu", key="late"),
    ]


def test_convergence_passes_when_every_late_read_returns_the_final_revision() -> None:
    result = convergence(converging_history(), writes_end_s=100.0, extra_s=EXTRA_S)
    assert result.name == "convergence"
    assert result.ok, result.violations
    assert result.checked == 4  # reads 4, 5, 8, 11


def test_convergence_flags_stale_reads_at_the_bound_and_unobserved_regions() -> None:
    ops = [
        *converging_history(),
        read(20, 160.0, 1, region="us"),  # exactly at the bound, behind
        read(21, 300.0, 5, region="eu", key="never-written"),
    ]
    result = convergence(ops, writes_end_s=100.0, extra_s={**EXTRA_S, "ap": 0.0})
    assert result.checked == 6
    assert ids(result) == [(2, 20), (21,), ()]
    stale, ghost, unobserved = (v.message for v in result.violations)
    assert "region us" in stale and "'k'" in stale and "revision 1" in stale
    assert "final revision 2" in stale
    assert "region eu" in ghost and "'never-written'" in ghost
    assert unobserved == "no read in ap after writes stopped: convergence not observed"


def test_convergence_accepts_newer_revisions_only_from_writes_of_unknown_outcome() -> None:
    ops = [write(1, 10.0, 4), read(2, 100.0, 6)]
    assert ids(convergence(ops, writes_end_s=20.0, extra_s={})) == [(1, 2)]
    uncertain = [*ops, write(3, None, None, invoke_s=15.0, outcome="unknown")]
    assert convergence(uncertain, writes_end_s=20.0, extra_s={}).ok


def test_convergence_bound_survives_float_rounding() -> None:
    ops = [write(1, 0.1, 1), read(2, 60.1, 0)]
    result = convergence(ops, writes_end_s=0.1, extra_s={})
    assert result.checked == 1 and ids(result) == [(1, 2)]


# --- the visibility promise --------------------------------------------------------------------


def promise_history() -> list[Op]:
    return [
        write(1, 10.0, 1),
        write(2, 20.0, 2),
        read(3, 82.0, 2, region="eu"),  # allowance 60 + 2: write 2 due exactly now
        read(4, 81.9, 1, region="eu"),  # only write 1 due
        read(5, 79.0, 1, region="us", cache_ttl_s=30.0),  # allowance max(60, 30)
        read(6, 200.0, 1, region="us", cache_ttl_s=300.0),  # allowance 300: nothing due
        read(7, 100.0, 0, region="us", group="h"),  # no writes in group h
        read(8, 500.0, None, region="us", outcome="failed"),
    ]


def test_promise_passes_when_reads_show_writes_in_time() -> None:
    result = promise(promise_history(), extra_s={"eu": 2.0})
    assert result.name == "visibility-promise"
    assert result.ok, result.violations
    assert result.checked == 3  # reads 3, 4, 5


def test_promise_flags_reads_behind_a_due_write() -> None:
    ops = [
        *promise_history(),
        read(20, 80.0, 1, region="us"),  # exactly at the bound, behind
        read(21, 330.0, 1, region="us", cache_ttl_s=300.0),  # 10 s late
        read(22, 81.9, 0, region="eu"),  # write 1 due
    ]
    result = promise(ops, extra_s={"eu": 2.0})
    assert result.checked == 6
    assert ids(result) == [(2, 20), (2, 21), (1, 22)]
    first, second, third = (v.message for v in result.violations)
    assert "region us" in first and "'k'" in first and "#2" in first and "0.000s late" in first
    assert "10.000s late" in second
    assert "region eu" in third and "revision 0" in third


def test_promise_bound_survives_float_rounding() -> None:
    ops = [write(1, 0.1, 1), read(2, 60.1, 0)]
    assert ids(promise(ops, extra_s={})) == [(1, 2)]


def test_a_longer_promise_excuses_a_read() -> None:
    ops = [write(1, 0.0, 1), read(2, 70.0, 0)]
    assert not promise(ops, extra_s={}).ok
    excused = promise(ops, extra_s={}, promise_s=90.0)
    assert (excused.violations, excused.verdict) == ((), "not examined")


# --- against brute force on random histories ----------------------------------------------------


def random_history(seed: int) -> list[Op]:
    rng = random.Random(seed)
    ops: list[Op] = []
    revision = 0
    committed: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}
    time_s = 0.0
    for op_id in range(300):
        time_s += rng.expovariate(2.0)
        key = rng.choice("ab")
        region = rng.choice(["eu", "us"])
        node = f"{region}-{rng.randint(1, 2)}"
        if rng.random() < 0.2:
            outcome: Outcome = rng.choice(["ok", "ok", "ok", "failed", "unknown"])
            if outcome == "ok":
                revision += 1
                committed[key].append((time_s, revision))
                ops.append(write(op_id, time_s, revision, key=key, region=region, node=node))
            else:
                ops.append(
                    write(op_id, None, None, invoke_s=time_s, key=key, outcome=outcome, node=node)
                )
            continue
        seen = [r for c, r in committed[key] if c <= time_s] or [0]
        ops.append(
            read(
                op_id,
                time_s,
                rng.choice(seen[-8:]),
                complete_s=time_s + rng.uniform(0.01, 3.0),
                region=region,
                node=node,
                session=rng.choice(["s1", "s2", "s3"]),
                key=key,
                cache_ttl_s=rng.choice([None, 30.0, 90.0]),
                outcome=rng.choice(["ok", "ok", "ok", "ok", "failed"]),
            )
        )
    return ops


def observed(ops: Sequence[Op]) -> list[Op]:
    return [op for op in ops if op.is_read and op.ok]


def acked(ops: Sequence[Op]) -> list[Op]:
    return [op for op in ops if op.is_write and op.ok]


def rev(op: Op) -> int:
    assert op.revision is not None
    return op.revision


@pytest.mark.parametrize("seed", range(5))
def test_visibility_matches_brute_force(seed: int) -> None:
    ops = random_history(seed)
    expected = []
    for w in acked(ops):
        assert w.commit_s is not None
        for region in ("eu", "us"):
            shows = [
                r
                for r in observed(ops)
                if r.region == region
                and r.key == w.key
                and r.invoke_s >= w.commit_s
                and rev(r) >= rev(w)
            ]
            first = min(shows, key=lambda r: (r.complete_s, r.id), default=None)
            expected.append((w.id, region, None if first is None else first.id))
    got = [(v.write_id, v.region, v.seen_by) for v in visibility(ops, ["eu", "us"])]
    assert got == expected


@pytest.mark.parametrize("seed", range(5))
def test_session_checks_match_brute_force(seed: int) -> None:
    ops = random_history(seed)
    reads = observed(ops)
    mono_checked, mono = 0, []
    for b in reads:
        before = [
            a
            for a in reads
            if a is not b and (a.session, a.key) == (b.session, b.key)
            if a.complete_s <= b.invoke_s
        ]
        if before:
            mono_checked += 1
            newest = min(before, key=lambda a: (-rev(a), a.complete_s, a.id))
            if rev(b) < rev(newest):
                mono.append((newest.id, b.id))
    result = monotonic_reads(ops)
    assert (result.checked, ids(result)) == (mono_checked, mono)

    ryw_checked, ryw = 0, []
    for r in reads:
        mine = [
            w
            for w in acked(ops)
            if (w.node, w.key) == (r.node, r.key) and w.complete_s <= r.invoke_s
        ]
        if mine:
            ryw_checked += 1
            newest = max(mine, key=rev)
            if rev(r) < rev(newest):
                ryw.append((newest.id, r.id))
    result = read_your_writes(ops)
    assert (result.checked, ids(result)) == (ryw_checked, ryw)


@pytest.mark.parametrize("seed", range(5))
def test_promise_matches_brute_force(seed: int) -> None:
    ops = random_history(seed)
    extra_s = {"eu": 1.5}
    checked, expected = 0, []
    for r in observed(ops):
        ttl_s = 60.0 if r.cache_ttl_s is None else r.cache_ttl_s
        allowance_s = max(10.0, ttl_s) + extra_s.get(r.region, 0.0)
        due = [
            w
            for w in acked(ops)
            if w.key == r.key and w.commit_s is not None and w.commit_s + allowance_s <= r.invoke_s
        ]
        if due:
            checked += 1
            newest = max(due, key=rev)
            if rev(r) < rev(newest):
                expected.append((newest.id, r.id))
    result = promise(ops, extra_s=extra_s, promise_s=10.0)
    assert (result.checked, ids(result)) == (checked, expected)
    assert expected, "the random history should break a 10 s promise somewhere"
