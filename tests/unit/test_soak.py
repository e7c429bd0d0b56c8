"""The soak's verdict: a failed call, or growth from the second quarter to the last, fails it."""

from __future__ import annotations

import json
import os
import threading

from edgekv.bench.soak import MAX_GROWTH, Sample, Slice, sample_process, verdict


def slices(errors: int = 0) -> list[Slice]:
    return [
        Slice(float(t), 100.0, 100.0, 500, errors if t == 7 else 0, 1.0, 5.0, 9.0, True, "boom")
        for t in range(1, 17)
    ]


def samples(rss_of: dict[str, list[int]]) -> list[Sample]:
    return [
        Sample(float(t), name, 1, rss, 10, 8)
        for name, series in rss_of.items()
        for t, rss in enumerate(series, start=1)
    ]


def test_a_steady_run_passes() -> None:
    found = verdict(slices(), samples({"edge": [100] * 16, "central": [200] * 16}))
    assert found.passed and not found.reasons
    assert found.growth["edge"]["rss_bytes"] == (100.0, 100.0, 0.0)


def test_growth_in_the_last_quarter_fails_and_warm_up_does_not() -> None:
    warming = [50] * 4 + [100] * 12  # grows during the first quarter only
    creeping = [100] * 8 + [100] * 4 + [100 * (1 + MAX_GROWTH) + 5] * 4
    found = verdict(slices(), samples({"warming": warming, "creeping": creeping}))
    assert not found.passed
    assert [reason.split(":")[0] for reason in found.reasons] == ["creeping"]
    assert "rss_bytes grew 15%" in found.reasons[0]


def test_any_failed_call_fails_the_soak() -> None:
    found = verdict(slices(errors=3), samples({"edge": [100] * 16}))
    assert not found.passed
    assert found.reasons == ["3 calls failed, the first with boom"]


def test_the_generator_s_threads_are_reported_but_not_judged() -> None:
    generator = [
        Sample(float(t), "generator", 1, 100, 10, 8 if t < 13 else 10) for t in range(1, 17)
    ]
    found = verdict(slices(), generator)
    assert found.passed
    assert found.growth["generator"]["tasks"] == (8.0, 10.0, 0.25)
    growing = verdict(slices(), samples({"generator": [100] * 12 + [200] * 4}))
    assert growing.reasons == [
        "generator: rss_bytes grew 100% from the second quarter (100) to the last (200)"
    ]


def test_a_sample_counts_a_process_threads_by_name() -> None:
    sampled = sample_process("me", os.getpid(), 0.0)
    counted = json.loads(sampled.thread_names)
    assert sum(counted.values()) == sampled.tasks >= threading.active_count()
