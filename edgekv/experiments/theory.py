"""What theory predicts for an edge cache with a TTL that a hit does not reset.

Theory of operation: docs/design.md's formulas, for one key at one edge with
Poisson reads at rate λ (``read_rate_per_s``), Poisson writes elsewhere at rate
μ (``write_rate_per_s``) and a cacheTtl of T (``ttl_s``). Each cache cycle is
one miss followed by the hits that arrive in the next T seconds, so the
cycle lasts T plus the wait for the next read. For many keys read with
different popularity, the per-key predictions are weighted by each key's share
of the reads (:func:`predict_keys`). Pure arithmetic: no I/O, time or randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def hit_ratio(read_rate_per_s: float, ttl_s: float) -> float:
    """λT / (1 + λT): a TTL that a hit does not reset (Workers KV's cacheTtl)."""
    x = read_rate_per_s * ttl_s
    return x / (1 + x)


def hit_ratio_with_rtt(read_rate_per_s: float, ttl_s: float, rtt_s: float) -> float:
    """λ(T - r/2) / (1 + λ(T + r/2)): :func:`hit_ratio` with the fetch's round trip r.

    A miss at 0 asks central, which answers half an RTT later and stamps the copy
    with its own time; the copy arrives at r and is fresh until r/2 + T. Reads in
    (0, r) wait for that fetch (misses, not hits), reads in [r, r/2 + T) hit, and
    the cycle lasts r/2 + T plus the wait for the next read.
    """
    half_s = rtt_s / 2
    hit_window_s = max(0.0, ttl_s - half_s)  # a copy stale on arrival serves no hit
    return read_rate_per_s * hit_window_s / (1 + read_rate_per_s * (ttl_s + half_s))


def hit_ratio_reset_on_hit(read_rate_per_s: float, ttl_s: float) -> float:
    """1 - e^(-λT): a TTL that every hit starts again."""
    return 1 - math.exp(-read_rate_per_s * ttl_s)


def upstream_rate_per_s(read_rate_per_s: float, ttl_s: float) -> float:
    """Reads per second that go to central: λ / (1 + λT)."""
    return read_rate_per_s / (1 + read_rate_per_s * ttl_s)


def stale_probability(read_rate_per_s: float, ttl_s: float, since_write_s: float) -> float:
    """Probability that a read ``since_write_s`` after a write elsewhere is stale."""
    if since_write_s >= ttl_s:
        return 0.0
    x = read_rate_per_s * ttl_s
    return read_rate_per_s * (ttl_s - max(0.0, since_write_s)) / (1 + x)


def stale_fraction(read_rate_per_s: float, write_rate_per_s: float, ttl_s: float) -> float:
    """Long-run fraction of stale reads: H · (1 - (1 - e^(-μT)) / (μT))."""
    mu_t = write_rate_per_s * ttl_s
    if mu_t <= 0:
        return 0.0
    # For tiny μT, 1 - (1 - e^(-x))/x ≈ x/2; expm1 keeps the subtraction exact.
    behind = 1 + math.expm1(-mu_t) / mu_t
    return hit_ratio(read_rate_per_s, ttl_s) * behind


def stale_fraction_with_rtt(
    read_rate_per_s: float, write_rate_per_s: float, ttl_s: float, rtt_s: float
) -> float:
    """:func:`stale_fraction` with the fetch's round trip r (see :func:`hit_ratio_with_rtt`):

        λ((T - r/2) - (e^(-μr/2) - e^(-μT))/μ) / (1 + λ(T + r/2))

    a hit at t holds central's version of r/2 and is stale when a write came in
    (r/2, t]; hits run from r to r/2 + T. With r = 0 it is :func:`stale_fraction`.
    Left out: reads that join the fetch in (r/2, r) and miss a write there, about
    λμr²/8 per cycle.
    """
    if write_rate_per_s <= 0 or ttl_s <= rtt_s / 2:
        return 0.0
    half_s, mu = rtt_s / 2, write_rate_per_s
    # (e^(-μr/2) - e^(-μT))/μ without cancelling: expm1 of each side.
    behind_s = (ttl_s - half_s) - (math.expm1(-mu * half_s) - math.expm1(-mu * ttl_s)) / mu
    return read_rate_per_s * behind_s / (1 + read_rate_per_s * (ttl_s + half_s))


def visibility_cdf(read_rate_per_s: float, ttl_s: float, after_s: float) -> float:
    """P(a write elsewhere is served within ``after_s``), before the link's RTT.

    A write becomes visible at the next miss, which ends the current cache
    cycle; a cycle lasts T plus an exponential wait for the next read, so the
    time to visibility is the cycle's residual life (the renewal-theory
    equilibrium distribution): t/E[L] up to T, then it tails off with the wait.
    """
    if after_s <= 0:
        return 0.0
    mean_cycle_s = ttl_s + 1 / read_rate_per_s
    if after_s <= ttl_s:
        return after_s / mean_cycle_s
    waited = -math.expm1(-read_rate_per_s * (after_s - ttl_s)) / read_rate_per_s
    return (ttl_s + waited) / mean_cycle_s


def visibility_quantile(read_rate_per_s: float, ttl_s: float, q: float) -> float:
    """The inverse of :func:`visibility_cdf`: the time by which a fraction q is visible."""
    if not 0 <= q < 1:
        raise ValueError(f"a quantile is in [0, 1), got {q}")
    mean_cycle_s = ttl_s + 1 / read_rate_per_s
    if q * mean_cycle_s <= ttl_s:
        return q * mean_cycle_s
    waited = q * mean_cycle_s - ttl_s
    return ttl_s - math.log1p(-waited * read_rate_per_s) / read_rate_per_s


def key_weights(key_count: int, zipf_exponent: float) -> list[float]:
    """Each key's share of the operations: Zipf with the given exponent (0 = uniform)."""
    if key_count < 1:
        raise ValueError(f"need at least one key, got {key_count}")
    raw = [1 / (rank**zipf_exponent) for rank in range(1, key_count + 1)]
    total = sum(raw)
    return [weight / total for weight in raw]


@dataclass(frozen=True, slots=True)
class Prediction:
    """What one edge should see over a set of keys."""

    hit_ratio: float
    stale_fraction: float
    # Reads per second this edge sends to central.
    upstream_per_s: float


def predict_keys(
    read_rates_per_s: Sequence[float], write_rates_per_s: Sequence[float], ttl_s: float
) -> Prediction:
    """Per-key predictions summed over keys, weighted by each key's share of the reads."""
    total_reads = sum(read_rates_per_s)
    if total_reads <= 0:
        raise ValueError("predictions need a positive read rate")
    hits = stale = upstream = 0.0
    for read_rate, write_rate in zip(read_rates_per_s, write_rates_per_s, strict=True):
        if read_rate <= 0:
            continue
        hits += read_rate * hit_ratio(read_rate, ttl_s)
        stale += read_rate * stale_fraction(read_rate, write_rate, ttl_s)
        upstream += upstream_rate_per_s(read_rate, ttl_s)
    return Prediction(hits / total_reads, stale / total_reads, upstream)


def relative_error(measured: float, predicted: float) -> float:
    """|measured - predicted| / predicted (infinite when only the prediction is 0)."""
    if predicted == 0:
        return 0.0 if measured == 0 else math.inf
    return abs(measured - predicted) / predicted
