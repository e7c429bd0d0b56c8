"""The benchmark plots, drawn from summary.json alone.

Latency percentiles per scenario, and latency against throughput for the sweeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekv import figures

PERCENTILE_COLUMNS = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")


def draw(folder: Path, summary: dict[str, Any]) -> list[str]:
    plt = figures.pyplot()
    names = []
    rows = [row for row in summary["rows"] if row["mode"] == "open"]
    figure, axes = plt.subplots(figsize=(max(8, 0.55 * len(rows) + 3), 5))
    labels = [row["scenario"] for row in rows]
    for column in PERCENTILE_COLUMNS:
        axes.plot(
            labels,
            [max(row[column], 1e-3) for row in rows],
            marker="o",
            label=column.removesuffix("_ms"),
        )
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms, from the intended start)")
    axes.set_title("Latency percentiles per scenario (open loop)")
    axes.tick_params(axis="x", rotation=60, labelsize=8)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    names.append(figures.save(figure, folder / "percentiles.png"))

    swept = sorted({row["scenario"] for row in summary["rows"] if row["mode"] == "sweep"})
    if swept:
        figure, axes = plt.subplots(figsize=(8, 5))
        for index, scenario in enumerate(swept):
            steps = [
                row
                for row in summary["rows"]
                if row["mode"] == "sweep" and row["scenario"] == scenario
            ]
            axes.plot(
                [s["throughput_per_s"] for s in steps],
                [s["p99_ms"] for s in steps],
                marker="o",
                color=f"C{index}",
                label=f"{scenario} p99",
            )
            axes.plot(
                [s["throughput_per_s"] for s in steps],
                [s["p50_ms"] for s in steps],
                marker=".",
                linestyle=":",
                color=f"C{index}",
                label=f"{scenario} p50",
            )
        axes.set_yscale("log")
        axes.set_xlabel("throughput (calls/s)")
        axes.set_ylabel("latency (ms)")
        axes.set_title("Latency against throughput (rate sweeps)")
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=7)
        names.append(figures.save(figure, folder / "sweeps.png"))
    return names
