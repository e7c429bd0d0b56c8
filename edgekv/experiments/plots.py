"""Drawing experiment results with matplotlib, from histories and summaries only.

Theory of operation: each function draws one figure into a PNG and returns
its file name; the experiments choose which to draw. Nothing here talks to a
cluster, so ``edgekv report`` can redraw any results folder. matplotlib is
imported on first use with the Agg back-end (no display needed), so the rest
of the command line does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekv.experiments.history import Op

Curve = tuple[str, Sequence[float], Sequence[float]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numbers(values: Sequence[float | None]) -> list[float]:
    """Measurements with the unknown ones (None: nothing was measured) as gaps."""
    return [math.nan if value is None else float(value) for value in values]


def _save(figure: Any, out: Path, name: str) -> str:
    figure.tight_layout()
    figure.savefig(out / name, dpi=110)
    _pyplot().close(figure)
    return name


def cdf_figure(
    out: Path,
    name: str,
    title: str,
    measured: Mapping[str, Sequence[float]],
    predicted: Mapping[str, Curve] | None = None,
    bounds_s: Mapping[str, float] | None = None,
    xlabel: str = "simulated seconds",
) -> str:
    """Empirical CDFs (solid), predicted CDFs (dashed) and bounds (dotted), one colour each."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, values) in enumerate(measured.items()):
        colour = colours[index % len(colours)]
        ordered = sorted(values)
        if ordered:
            fractions = [(rank + 1) / len(ordered) for rank in range(len(ordered))]
            axes.step(ordered, fractions, where="post", color=colour, label=f"{label} (measured)")
        if predicted and label in predicted:
            _, xs, ys = predicted[label]
            axes.plot(xs, ys, linestyle="--", color=colour, alpha=0.7)
        if bounds_s and label in bounds_s:
            axes.axvline(bounds_s[label], linestyle=":", color=colour, alpha=0.6)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction of writes")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    if predicted:
        axes.plot([], [], linestyle="--", color="grey", label="predicted")
    if bounds_s:
        axes.plot([], [], linestyle=":", color="grey", label="bound (cacheTtl + RTT)")
    axes.legend(fontsize=8)
    return _save(figure, out, name)


def measured_vs_predicted(
    out: Path,
    name: str,
    title: str,
    xlabel: str,
    panels: Sequence[tuple[str, Sequence[float], Sequence[float | None], Curve]],
    log_x: bool = False,
) -> str:
    """One panel per measure: measured points (x, y) over the predicted curve (label, xs, ys)."""
    plt = _pyplot()
    figure, axes_list = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    if len(panels) == 1:
        axes_list = [axes_list]
    for axes, (ylabel, xs, measured, (label, theory_xs, theory_ys)) in zip(
        axes_list, panels, strict=True
    ):
        axes.plot(theory_xs, theory_ys, linestyle="--", color="grey", label=label)
        axes.plot(xs, _numbers(measured), linestyle="", marker="o", color="C0", label="measured")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        if log_x:
            axes.set_xscale("log")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, out, name)


def tradeoff(
    out: Path,
    name: str,
    title: str,
    points: Sequence[tuple[str, float | None, float | None]],
    theory_curve: tuple[Sequence[float], Sequence[float]],
) -> str:
    """Stale-read fraction against central load: measured (label, load, stale), theory's curve."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    axes.plot(*theory_curve, "--", color="grey", label="theory")
    loads, stales = _numbers([p[1] for p in points]), _numbers([p[2] for p in points])
    axes.plot(loads, stales, "o", color="C0", label="measured")
    for (label, _, _), load, stale in zip(points, loads, stales, strict=True):
        if not (math.isnan(load) or math.isnan(stale)):
            axes.annotate(
                label, (load, stale), textcoords="offset points", xytext=(6, 4), fontsize=8
            )
    axes.set_xlabel("central reads per second per edge")
    axes.set_ylabel("stale-read fraction")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, out, name)


def bars(
    out: Path,
    name: str,
    title: str,
    labels: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float | None]]],
) -> str:
    """One bar chart per measure, the same labels on each; no bar where nothing was measured."""
    plt = _pyplot()
    figure, axes_list = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4))
    for axes, (ylabel, values) in zip(axes_list, panels, strict=True):
        axes.bar(labels, _numbers(values), color=[f"C{i}" for i in range(len(labels))])
        axes.set_title(ylabel, fontsize=10)
        axes.tick_params(axis="x", rotation=30, labelsize=8)
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(title)
    return _save(figure, out, name)


def region_time_heatmap(
    out: Path,
    name: str,
    title: str,
    reads: Sequence[Op],
    regions: Sequence[str],
    end_s: float,
    value: Callable[[Op], float],
    colour_label: str,
    bins: int = 60,
    events: Sequence[tuple[float, str]] = (),
) -> str:
    """Regions down, time across; each cell the last value a read in or before that bin gave."""
    plt = _pyplot()
    width_s = max(end_s, 1e-9) / bins
    grid: list[list[float]] = [[float("nan")] * bins for _ in regions]
    row_of = {region: index for index, region in enumerate(regions)}
    for op in sorted(reads, key=lambda op: op.invoke_s):
        if op.region in row_of and 0 <= op.invoke_s < end_s:
            grid[row_of[op.region]][min(bins - 1, int(op.invoke_s / width_s))] = value(op)
    for row in grid:  # what a region served last stays what it serves until the next read
        for column in range(1, bins):
            if row[column] != row[column]:  # NaN: no read in this bin
                row[column] = row[column - 1]
    figure, axes = plt.subplots(figsize=(10, 0.6 * len(regions) + 1.8))
    image = axes.imshow(
        grid, aspect="auto", interpolation="nearest", extent=(0, end_s, len(regions), 0)
    )
    axes.set_yticks([index + 0.5 for index in range(len(regions))], labels=list(regions))
    axes.set_xlabel("simulated seconds since the run began")
    for at_s, label in events:
        axes.axvline(at_s, color="white", linestyle="--", linewidth=1)
        axes.text(at_s, -0.1, label, fontsize=8, ha="center", va="bottom")
    figure.colorbar(image, ax=axes, label=colour_label)
    axes.set_title(title)
    return _save(figure, out, name)
