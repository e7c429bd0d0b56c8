"""``edgekv sim grid``: the staleness theory checked on a grid of settings, with its noise.

Theory of operation: a *point* is one (read rate λ per key per edge, write
rate μ per key, cacheTtl T) setting; docs/design.md predicts its hit ratio
λT/(1+λT) and stale-read fraction H·(1 - (1 - e^(-μT))/(μT)). Each (λ, μ)
pair is one staleness workload in the simulation — uniform keys, four
reading regions, the three cacheTtls side by side — run once per seed; a
seed is an independent replication (its own arrivals, picks and links).

* **Sizing.** A point needs enough reads that sampling noise cannot hide a
  model error. The hit ratio's noise falls with the reads; the stale
  fraction's with the *stale episodes* — one write makes every edge's copy of
  its key stale until it expires, so stale reads come in bursts, one per
  write and reading edge. The number of keys is chosen so that each cacheTtl
  gets at least ``reads`` reads per seed and at least ``EPISODES`` writes
  times reading edges per seed (each cacheTtl has its own namespace and
  writes), over a fixed measured span (measured here: a burst's size varies
  about 2.5 times its mean, so 20,000 episodes over four seeds leave about
  1 % of noise).
* **Warm-up.** Edges start empty, so every key's first read at an edge is a
  miss that the steady state would have served from the copy; the first
  ``WARMUP_S`` simulated seconds (several cycles of the longest cacheTtl)
  are run but not measured.
* **Judging.** Per point, the seeds' estimates are averaged; the noise is
  their standard error (standard deviation over √seeds), measured, not
  assumed. A point *matches* when the average is within the tolerance of
  the prediction — hit ratio 1 % (relative); stale fraction 3 % where the
  prediction is at least 0.05, 6 % where it is in [0.01, 0.05), not judged
  below — and is *sized* when its noise is at most a third of the tolerance.

Runs go to worker processes (``--jobs``); each is deterministic by its
seed, and the results are put in point order, so the same command writes
the same ``grid.json``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from edgekv import figures
from edgekv.experiments import theory
from edgekv.experiments.results import utc_stamp
from edgekv.topology import generated_topology

# The (λ per key per edge, μ per key) pairs: hit ratios from 0.38 to 0.97 and stale
# fractions from 0.027 to 0.60 over the three cacheTtls (docs/design.md's formulas).
PAIRS: tuple[tuple[float, float], ...] = (
    (0.02, 0.005),
    (0.02, 0.02),
    (0.05, 0.004),
    (0.05, 0.01),
    (0.1, 0.004),
    (0.1, 0.01),
    (0.3, 0.02),
)
# Writes times reading edges per seed that a pair gets at least (see Sizing).
EPISODES = 20_000
CACHE_TTLS_S = (30, 60, 120)
READER_REGIONS = 4
WARMUP_S = 600.0
MEASURED_S = 3000.0
HIT_TOLERANCE = 0.01
# A stale fraction below this is a handful of reads in a million: not judged.
STALE_JUDGED_FROM = 0.01
SMALL_STALE = 0.05


def stale_tolerance(predicted: float) -> float | None:
    """The issue's tolerance on the stale fraction, or None where it is not judged."""
    if predicted >= SMALL_STALE:
        return 0.03
    if predicted >= STALE_JUDGED_FROM:
        return 0.06
    return None


@dataclass(frozen=True)
class Run:
    """One (λ, μ) pair at one seed: its workload's options."""

    read_rate_per_key: float
    write_rate_per_key: float
    seed: int
    reads_per_ttl: int
    episodes: int = EPISODES

    @property
    def keys(self) -> int:
        """Enough keys for the reads, and for the stale episodes (see the module)."""
        for_reads = self.reads_per_ttl / (READER_REGIONS * self.read_rate_per_key * MEASURED_S)
        for_episodes = self.episodes / (READER_REGIONS * self.write_rate_per_key * MEASURED_S)
        return max(1, math.ceil(max(for_reads, for_episodes)))

    def argv(self, out: Path) -> list[str]:
        keys = self.keys
        return [
            "experiment", "staleness", "--engine", "sim", "--seed", str(self.seed),
            "--duration", f"{WARMUP_S + MEASURED_S:g}",
            "--cache-ttls", ",".join(str(ttl) for ttl in CACHE_TTLS_S),
            "--keys", str(keys), "--zipf", "0",
            "--read-rate", f"{self.read_rate_per_key * keys:g}",
            "--write-rate", f"{self.write_rate_per_key * keys:g}",
            "--regions", str(READER_REGIONS + 1), "--out", str(out),
        ]  # fmt: skip


def measure_run(run: Run) -> dict[int, dict[str, int]]:
    """Run one workload in the simulation; per cacheTtl, its measured reads' counts.

    Runs in a worker process: the experiment on virtual time, its history
    passed through one staleness tally per cacheTtl as it goes, nothing kept.
    """
    from edgekv.cli.main import build_parser
    from edgekv.experiments import checkers
    from edgekv.experiments.base import Progress
    from edgekv.experiments.history import KeyLogs, Op
    from edgekv.experiments.staleness import Staleness, group_of
    from edgekv.sim.loop import run_virtual

    logs = KeyLogs()
    tallies = {
        group_of(ttl_s): checkers.StalenessTally(
            logs,
            group=group_of(ttl_s),
            region=reader_names(),
            window_s=(WARMUP_S, WARMUP_S + MEASURED_S),
        )
        for ttl_s in CACHE_TTLS_S
    }

    def tally(op: Op) -> None:
        logs.add(op)
        if op.group in tallies:
            tallies[op.group].add(op)

    with tempfile.TemporaryDirectory() as out, open(os.devnull, "w") as quiet:
        args = build_parser().parse_args(run.argv(Path(out)))
        run_virtual(Staleness().run(args, Progress(quiet), tally))
    counts = {}
    for ttl_s in CACHE_TTLS_S:
        found = tallies[group_of(ttl_s)]
        counts[ttl_s] = {"reads": found.reads, "hits": found.hits, "stale": found.result().stale}
    return counts


@dataclass(frozen=True)
class Point:
    read_rate_per_key: float
    write_rate_per_key: float
    cache_ttl_s: int
    seeds: int
    reads: int
    hit_ratio: float
    hit_theory: float
    hit_noise: float  # standard error over seeds, relative to the prediction
    stale_fraction: float
    stale_theory: float
    stale_noise: float
    # The same predictions with each reading region's fetch round trip (docs/design.md).
    hit_theory_rtt: float
    stale_theory_rtt: float

    @property
    def hit_error(self) -> float:
        return self.hit_ratio / self.hit_theory - 1

    @property
    def stale_error(self) -> float:
        return self.stale_fraction / self.stale_theory - 1 if self.stale_theory else math.nan

    @property
    def hit_error_rtt(self) -> float:
        return self.hit_ratio / self.hit_theory_rtt - 1

    @property
    def stale_error_rtt(self) -> float:
        return (
            self.stale_fraction / self.stale_theory_rtt - 1 if self.stale_theory_rtt else math.nan
        )

    @property
    def stale_tolerance(self) -> float | None:
        return stale_tolerance(self.stale_theory)

    @property
    def matches(self) -> bool:
        tolerance = self.stale_tolerance
        hit_ok = abs(self.hit_error) <= HIT_TOLERANCE
        return hit_ok and (tolerance is None or abs(self.stale_error) <= tolerance)

    @property
    def sized(self) -> bool:
        tolerance = self.stale_tolerance
        hit_ok = self.hit_noise <= HIT_TOLERANCE / 3
        return hit_ok and (tolerance is None or self.stale_noise <= tolerance / 3)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "hit_rel_err": self.hit_error,
            "stale_rel_err": self.stale_error,
            "hit_rel_err_rtt": self.hit_error_rtt,
            "stale_rel_err_rtt": self.stale_error_rtt,
            "stale_tolerance": self.stale_tolerance,
            "matches": self.matches,
            "sized": self.sized,
        }


def point_of(pair: tuple[float, float], ttl_s: int, per_seed: Sequence[dict[str, int]]) -> Point:
    """One point from its seeds' counts: the average of their estimates and its noise."""
    read_rate, write_rate = pair
    hits = [counts["hits"] / counts["reads"] for counts in per_seed]
    stales = [counts["stale"] / counts["reads"] for counts in per_seed]
    hit_theory = theory.hit_ratio(read_rate, ttl_s)
    stale_theory = theory.stale_fraction(read_rate, write_rate, ttl_s)

    def noise(estimates: list[float], predicted: float) -> float:
        if len(estimates) < 2 or not predicted:
            return math.inf
        return statistics.stdev(estimates) / math.sqrt(len(estimates)) / predicted

    # The readers read equally, so the prediction with round trips is their mean.
    rtts_s = reader_rtts_s()
    hit_rtt = statistics.fmean(theory.hit_ratio_with_rtt(read_rate, ttl_s, r) for r in rtts_s)
    stale_rtt = statistics.fmean(
        theory.stale_fraction_with_rtt(read_rate, write_rate, ttl_s, r) for r in rtts_s
    )
    return Point(
        read_rate, write_rate, ttl_s, len(per_seed), sum(c["reads"] for c in per_seed),
        statistics.fmean(hits), hit_theory, noise(hits, hit_theory),
        statistics.fmean(stales), stale_theory, noise(stales, stale_theory),
        hit_rtt, stale_rtt,
    )  # fmt: skip


def reader_rtts_s() -> list[float]:
    """The reading regions' RTTs: every region of the run's topology but central's own."""
    regions = generated_topology(READER_REGIONS + 1).regions
    return [region.rtt_ms / 1000 for region in regions[1:]]


def reader_names() -> list[str]:
    return [region.name for region in generated_topology(READER_REGIONS + 1).regions[1:]]


def runs_for(seeds: Sequence[int], reads_per_ttl: int, episodes: int) -> list[Run]:
    """Every (pair, seed) workload, pair by pair."""
    return [Run(*pair, seed, reads_per_ttl, episodes) for pair in PAIRS for seed in seeds]


async def measure_grid(
    seeds: Sequence[int], reads_per_ttl: int, episodes: int, jobs: int
) -> tuple[list[Point], float]:
    """Every point of the grid, and the real seconds it took."""
    runs = runs_for(seeds, reads_per_ttl, episodes)
    began = time.monotonic()
    loop = asyncio.get_running_loop()
    # spawn: a worker starts clean, with no copy of this process's event loop.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, measure_run, r) for r in runs))
    counts = dict(zip(runs, results, strict=True))
    points = []
    for pair in PAIRS:
        for ttl_s in CACHE_TTLS_S:
            per_seed = [counts[Run(*pair, seed, reads_per_ttl, episodes)][ttl_s] for seed in seeds]
            points.append(point_of(pair, ttl_s, per_seed))
    return points, time.monotonic() - began


COLUMNS = [
    "read_rate_per_key", "write_rate_per_key", "cacheTtl_s", "reads", "hit_ratio",
    "theory_hit", "hit_rel_err", "hit_noise", "stale_fraction", "theory_stale",
    "stale_rel_err", "stale_noise", "stale_tolerance", "matches", "sized",
    "theory_hit_rtt", "hit_rel_err_rtt", "theory_stale_rtt", "stale_rel_err_rtt",
]  # fmt: skip


def row_of(point: Point) -> list[Any]:
    return [
        point.read_rate_per_key, point.write_rate_per_key, point.cache_ttl_s, point.reads,
        point.hit_ratio, point.hit_theory, point.hit_error, point.hit_noise,
        point.stale_fraction, point.stale_theory, point.stale_error, point.stale_noise,
        point.stale_tolerance, point.matches, point.sized,
        point.hit_theory_rtt, point.hit_error_rtt, point.stale_theory_rtt, point.stale_error_rtt,
    ]  # fmt: skip


def as_text(points: Sequence[Point]) -> str:
    lines = [
        f"{'λ/key':>6} {'μ/key':>6} {'T_s':>4} {'reads':>9}  {'hit':>6} {'theory':>6} "
        f"{'err':>7} {'noise':>6}  {'stale':>6} {'theory':>6} {'err':>7} {'noise':>6} {'tol':>4}"
        f"  {'hit err, RTT':>12} {'stale err, RTT':>14}"
    ]
    for p in points:
        tolerance = "-" if p.stale_tolerance is None else f"{p.stale_tolerance:.0%}"
        verdict = "" if p.matches and p.sized else (" MISMATCH" if not p.matches else " NOISY")
        lines.append(
            f"{p.read_rate_per_key:6g} {p.write_rate_per_key:6g} {p.cache_ttl_s:4d} "
            f"{p.reads:9,d}  {p.hit_ratio:6.4f} {p.hit_theory:6.4f} {p.hit_error:+7.2%} "
            f"{p.hit_noise:6.2%}  {p.stale_fraction:6.4f} {p.stale_theory:6.4f} "
            f"{p.stale_error:+7.2%} {p.stale_noise:6.2%} {tolerance:>4}  "
            f"{p.hit_error_rtt:+12.2%} {p.stale_error_rtt:+14.2%}{verdict}"
        )
    matched = sum(p.matches for p in points)
    sized = sum(p.sized for p in points)
    lines.append(
        f"{matched}/{len(points)} points within tolerance of the theory; "
        f"{sized}/{len(points)} sized so that the noise is at most a third of it"
    )
    return "\n".join(lines)


def draw(points: Sequence[Point], out: Path) -> str:
    """Relative error against the prediction per point, with noise bars and tolerances."""
    plt = figures.pyplot()
    figure, (hit_axes, stale_axes) = plt.subplots(1, 2, figsize=(11, 4.6))

    def errors(axes: Any, chosen: Sequence[Point], measure: str) -> None:
        """Each point's relative error at its prediction, its noise as a bar (in %)."""
        axes.errorbar(
            [getattr(p, f"{measure}_theory") for p in chosen],
            [100 * getattr(p, f"{measure}_error") for p in chosen],
            yerr=[100 * getattr(p, f"{measure}_noise") for p in chosen],
            fmt="o",
            capsize=3,
        )

    errors(hit_axes, points, "hit")
    hit_axes.axhspan(-100 * HIT_TOLERANCE, 100 * HIT_TOLERANCE, color="tab:green", alpha=0.12)
    hit_axes.set_xlabel("predicted hit ratio λT/(1+λT)")
    hit_axes.set_ylabel("measured / predicted - 1 (%)")
    hit_axes.set_title("Hit ratio (band: 1 % tolerance)")
    errors(stale_axes, [p for p in points if p.stale_tolerance is not None], "stale")
    stale_axes.set_xscale("log")
    stale_axes.fill_between([0.01, 0.05], -6, 6, color="tab:green", alpha=0.12, step="pre")
    stale_axes.fill_between([0.05, 1.0], -3, 3, color="tab:green", alpha=0.12, step="pre")
    stale_axes.set_xlim(0.008, 1.0)
    stale_axes.set_xlabel("predicted stale-read fraction")
    stale_axes.set_title("Stale-read fraction (band: 6 % / 3 % tolerance)")
    for axes in (hit_axes, stale_axes):
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.grid(alpha=0.3)
    seeds = points[0].seeds if points else 0
    figure.suptitle(
        f"The simulation against docs/design.md's theory: {len(points)} settings, "
        f"{seeds} seeds each (bars: standard error over seeds)"
    )
    figure.tight_layout()
    figure.savefig(out / "grid.png", dpi=110)
    plt.close(figure)
    return "grid.png"


def write(points: Sequence[Point], out: Path, facts: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(
        json.dumps({**facts, "points": [p.as_dict() for p in points]}, indent=2) + "\n",
        encoding="utf-8",
    )
    with (out / "grid.csv").open("w", newline="", encoding="utf-8") as handle:
        table = csv.writer(handle)
        table.writerow(COLUMNS)
        table.writerows(row_of(p) for p in points)
    draw(points, out)


async def run_grid(
    seeds: Sequence[int], reads_per_ttl: int, episodes: int, jobs: int, out_dir: Path
) -> int:
    """Measure the grid, write grid.json, grid.csv and grid.png; exit 0 when every point
    matches the theory and is sized."""
    points, real_s = await measure_grid(seeds, reads_per_ttl, episodes, jobs)
    out = out_dir / f"grid-{utc_stamp()}"
    facts = {
        "seeds": list(seeds),
        "reads_per_ttl": reads_per_ttl,
        "episodes": episodes,
        "warmup_s": WARMUP_S,
        "measured_s": MEASURED_S,
        "reader_regions": READER_REGIONS,
    }  # no wall-clock time here: the same command writes the same grid.json
    write(points, out, facts)
    print(as_text(points))
    print(f"\n{sum(p.reads for p in points):,} reads in {real_s:.0f} real seconds")
    print(f"results: {out}")
    return 0 if all(p.matches and p.sized for p in points) else 1
