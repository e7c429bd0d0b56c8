"""Do the two engines agree? One seeded staleness workload on the cluster and in the simulation.

Theory of operation: :func:`compare_engines` runs the staleness experiment
twice with the same options and seed — first on a fresh cluster of processes
(``--engine cluster``, on the host's clock at the given time scale), then in
the simulation (``--engine sim``) — each writing its own results folder.
The seed fixes the workload, so both engines see the same operations at the
same simulated times; what differs is what the simulation leaves out: the
host's scheduling and gRPC's own latency, which the cluster's time scale
stretches into simulated time (a 1 ms hop at scale 100 is 0.1 simulated s).
Per cacheTtl it sets the three measures side by side and judges them
against :data:`TOLERANCES`: hit ratio within 2 % (relative), stale-read
fraction within 10 % (relative) or 0.005 (absolute), central reads within
5 % (relative). Both folders and an ``agreement.json`` stay, so a
disagreement can be looked into.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekv.experiments.base import run_to_folder
from edgekv.experiments.results import Summary, Table, utc_stamp
from edgekv.experiments.staleness import Staleness


@dataclass(frozen=True, slots=True)
class Tolerance:
    measure: str
    relative: float
    absolute: float = 0.0

    def holds(self, cluster: float | None, sim: float | None) -> bool:
        if cluster is None or sim is None:
            return cluster is sim
        gap = abs(sim - cluster)
        return gap <= self.relative * abs(cluster) or gap <= self.absolute


TOLERANCES = (
    Tolerance("hit_ratio", 0.02),
    Tolerance("stale_fraction", 0.10, absolute=0.005),
    Tolerance("upstream_per_s", 0.05),
)


@dataclass(frozen=True)
class Agreement:
    table: Table
    failures: list[str]
    folders: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_text(self) -> str:
        verdict = (
            "the engines agree within every tolerance"
            if self.ok
            else "the engines disagree: " + "; ".join(self.failures)
        )
        return f"{verdict}\n\n{self.table.as_text()}"


def agreement(cluster: Summary, sim: Summary, folders: dict[str, str]) -> Agreement:
    """The measures of both runs side by side, judged against :data:`TOLERANCES`."""
    rows: list[list[Any]] = []
    failures: list[str] = []
    for group, measured in cluster.measures.items():
        simulated = sim.measures[group]
        row: list[Any] = [group.removeprefix("ttl=")]
        for tolerance in TOLERANCES:
            ours, theirs = measured[tolerance.measure], simulated[tolerance.measure]
            gap = None if ours is None or theirs is None or not ours else (theirs - ours) / ours
            row += [ours, theirs, gap]
            if not tolerance.holds(ours, theirs):
                failures.append(f"{tolerance.measure} at cacheTtl {row[0]} s: {ours} vs {theirs}")
        rows.append(row)
    columns = ["cacheTtl_s"]
    for tolerance in TOLERANCES:
        name = {"upstream_per_s": "central"}.get(tolerance.measure, tolerance.measure)
        columns += [f"{name}_cluster", f"{name}_sim", f"{name}_rel_diff"]
    return Agreement(Table("the same workload on both engines", columns, rows), failures, folders)


async def compare_engines(args: argparse.Namespace) -> int:
    """Run the staleness workload on both engines; print and record how they compare."""
    experiment = Staleness()
    runs: dict[str, tuple[Path, Summary]] = {}
    for engine in ("cluster", "sim"):
        options = replace_namespace(args, engine=engine, out=args.out / "compare-engines")
        if engine == "sim":
            options.time_scale = None
        runs[engine] = await run_to_folder(experiment, options)
    folders = {engine: str(folder) for engine, (folder, _) in runs.items()}
    found = agreement(runs["cluster"][1], runs["sim"][1], folders)
    out = args.out / "compare-engines" / f"agreement-{utc_stamp()}.json"
    out.write_text(
        json.dumps(
            {
                "ok": found.ok,
                "failures": found.failures,
                "folders": folders,
                "tolerances": [asdict(tolerance) for tolerance in TOLERANCES],
                "columns": found.table.columns,
                "rows": found.table.rows,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    print(found.as_text())
    print(f"\nresults: {folders['cluster']} and {folders['sim']}; agreement: {out}")
    return 0 if found.ok else 1


def replace_namespace(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**(vars(args) | changes))
