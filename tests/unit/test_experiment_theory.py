"""The theory, the workload planner and the history file, on known answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgekv.experiments import theory
from edgekv.experiments.history import Op, annotate_central_revisions, read_history, write_history
from edgekv.experiments.records import MalformedRecord
from edgekv.experiments.workload import KeySpace, Stream, planned, poisson_arrivals


def test_hit_ratio_and_upstream_rate_follow_the_renewal_argument() -> None:
    assert theory.hit_ratio(0.1, 30) == pytest.approx(3 / 4)
    assert theory.upstream_rate_per_s(0.1, 30) == pytest.approx(0.1 / 4)
    assert theory.hit_ratio_reset_on_hit(0.1, 30) == pytest.approx(1 - math.exp(-3))


def test_stale_probability_falls_linearly_to_zero_at_the_ttl() -> None:
    assert theory.stale_probability(0.1, 30, 0) == pytest.approx(0.75)
    assert theory.stale_probability(0.1, 30, 15) == pytest.approx(0.375)
    assert theory.stale_probability(0.1, 30, 30) == 0.0


def test_stale_fraction_formula_and_its_limits() -> None:
    h = 0.75
    assert theory.stale_fraction(0.1, 1 / 60, 30) == pytest.approx(
        h * (1 - (1 - math.exp(-0.5)) / 0.5)
    )
    assert theory.stale_fraction(0.1, 0.0, 30) == 0.0
    # Writes far more often than the TTL: nearly every hit is stale.
    assert theory.stale_fraction(0.1, 100.0, 30) == pytest.approx(h, rel=1e-3)


def test_the_round_trip_refinement_reduces_to_the_plain_formulas_and_costs_hits() -> None:
    for read_rate, write_rate, ttl_s in ((0.1, 0.01, 30), (0.02, 0.005, 120), (0.3, 0.0, 60)):
        assert theory.hit_ratio_with_rtt(read_rate, ttl_s, 0.0) == pytest.approx(
            theory.hit_ratio(read_rate, ttl_s)
        )
        assert theory.stale_fraction_with_rtt(read_rate, write_rate, ttl_s, 0.0) == (
            pytest.approx(theory.stale_fraction(read_rate, write_rate, ttl_s))
        )
    # r = 0.2 s at λ = 0.1, T = 30: hits 0.1 * 29.9 of 1 + 0.1 * 30.1 reads per cycle.
    assert theory.hit_ratio_with_rtt(0.1, 30, 0.2) == pytest.approx(2.99 / 4.01)
    # Stale: λ((T - r/2) - (e^(-μr/2) - e^(-μT))/μ) / (1 + λ(T + r/2)).
    mu = 0.01
    behind = 29.9 - (math.exp(-mu * 0.1) - math.exp(-mu * 30)) / mu
    assert theory.stale_fraction_with_rtt(0.1, mu, 30, 0.2) == pytest.approx(0.1 * behind / 4.01)
    assert theory.hit_ratio_with_rtt(0.1, 30, 0.2) < theory.hit_ratio(0.1, 30)


def test_visibility_quantile_inverts_the_cdf() -> None:
    for q in (0.1, 0.5, 0.9, 0.99):
        t = theory.visibility_quantile(0.5, 60, q)
        assert theory.visibility_cdf(0.5, 60, t) == pytest.approx(q)
    assert theory.visibility_cdf(0.5, 60, 0) == 0.0
    assert theory.visibility_cdf(0.5, 60, 10_000) == pytest.approx(1.0)


def test_predictions_over_zipf_keys_weight_by_read_share() -> None:
    weights = theory.key_weights(3, 1.0)
    assert weights == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    reads = [w * 1.0 for w in weights]
    predicted = theory.predict_keys(reads, [0.0, 0.0, 0.0], 60)
    expected = sum(r * theory.hit_ratio(r, 60) for r in reads) / sum(reads)
    assert predicted.hit_ratio == pytest.approx(expected)
    assert predicted.stale_fraction == 0.0
    assert theory.key_weights(4, 0) == [0.25] * 4


def test_relative_error() -> None:
    assert theory.relative_error(1.1, 1.0) == pytest.approx(0.1)
    assert theory.relative_error(0.0, 0.0) == 0.0
    assert theory.relative_error(0.1, 0.0) == math.inf


def test_a_seed_replays_the_same_plan_and_another_does_not() -> None:
    streams = [
        Stream("read", "eu-west", 2.0, KeySpace(5, 1.1), "g", 0, 100, sessions=3, cache_ttl_s=60),
        Stream("write", "us-east", 0.5, KeySpace(5, 1.1), "g", 0, 100),
    ]
    assert list(planned(streams, 7)) == list(planned(streams, 7))
    assert list(planned(streams, 7)) != list(planned(streams, 8))
    times = [op.at_s for op in list(planned(streams, 7))]
    assert times == sorted(times)


def test_poisson_arrivals_have_the_asked_rate() -> None:
    import random

    arrivals = list(poisson_arrivals(random.Random(1), 5.0, 0, 2000))
    assert len(arrivals) / 2000 == pytest.approx(5.0, rel=0.03)
    assert all(0 <= t < 2000 for t in arrivals)
    with pytest.raises(ValueError, match="cannot be negative"):
        list(poisson_arrivals(random.Random(1), -1, 0, 1))


def test_zipf_keys_are_picked_by_popularity() -> None:
    ops = list(planned([Stream("read", "r", 50.0, KeySpace(4, 1.0), "g", 0, 400)], seed=3))
    share = sum(op.key == "key-0" for op in ops) / len(ops)
    assert share == pytest.approx(theory.key_weights(4, 1.0)[0], abs=0.02)


def _op(id: int, kind: str, key: str, at_s: float, **fields: object) -> Op:
    return Op(id, kind, "s", "r", "n", key, "g", at_s, at_s, at_s + 0.1, "ok", **fields)  # type: ignore[arg-type]


def test_history_round_trips_and_reads_learn_central_revision(tmp_path: Path) -> None:
    ops = [
        _op(0, "write", "a", -1.0, revision=1, commit_s=-0.9),
        _op(1, "write", "a", 10.0, revision=5, commit_s=10.05),
        _op(2, "read", "a", 10.0, revision=1),
        _op(3, "read", "a", 10.06, revision=1),
        _op(4, "read", "b", 10.06, revision=0),
    ]
    annotate_central_revisions(ops)
    assert [op.central_revision for op in ops[2:]] == [1, 5, 0]
    write_history(tmp_path / "h.jsonl", ops)
    assert read_history(tmp_path / "h.jsonl") == ops
    write_history(tmp_path / "h.jsonl.gz", ops)
    assert read_history(tmp_path / "h.jsonl.gz") == ops


def test_a_truncated_compressed_history_is_one_clear_error(tmp_path: Path) -> None:
    ops = [_op(i, "read", "a", float(i), revision=0) for i in range(2000)]
    write_history(tmp_path / "h.jsonl.gz", ops)
    whole = (tmp_path / "h.jsonl.gz").read_bytes()
    (tmp_path / "h.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MalformedRecord, match=r"h\.jsonl\.gz: unreadable after line \d+"):
        read_history(tmp_path / "h.jsonl.gz")


@pytest.mark.parametrize(
    "lags",
    [[0.0] * 10, [0.0] * 7 + [0.5, 0.1, 2.0], [0.3, 0.1], [0.0, 0.0, 0.0, 1.0], [4.0]],
)
def test_the_driver_s_lag_percentiles_are_those_of_every_lag(lags: list[float]) -> None:
    from edgekv.experiments.checkers import percentile
    from edgekv.experiments.driver import DriverStats

    stats = DriverStats()
    for lag in lags:
        stats.started_late_by(lag)
    for q in (0, 50, 90, 99, 100):
        assert stats.lag_percentile(q) == pytest.approx(percentile(lags, q)), q
    assert stats.as_dict()["lag_max_s"] == max(lags)
