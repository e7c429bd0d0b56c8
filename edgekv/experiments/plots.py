"""Drawing experiment results with matplotlib, from histories and summaries only.

Theory of operation: each function draws one figure into a PNG and returns
its file name; the experiments choose which to draw. The region x time
heatmaps are built (:func:`category_figure`, :func:`count_figure`) and then
saved (:func:`save`), so that tests can look at what a figure holds. A plot
says what it shows: categories get a legend, not a colour scale; counts get
a colour bar in whole numbers; a cell with no read is white and says so.
Nothing here talks to a cluster, so ``edgekv report`` can redraw any results
folder. matplotlib is imported on first use with the Agg back-end (no
display needed), so the rest of the command line does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgekv import figures
from edgekv.experiments.history import Op

Curve = tuple[str, Sequence[float], Sequence[float]]


def _numbers(values: Sequence[float | None]) -> list[float]:
    """Measurements with the unknown ones (None: nothing was measured) as gaps."""
    return [math.nan if value is None else float(value) for value in values]


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
    plt = figures.pyplot()
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
    return figures.save(figure, out / name)


def measured_vs_predicted(
    out: Path,
    name: str,
    title: str,
    xlabel: str,
    panels: Sequence[tuple[str, Sequence[float], Sequence[float | None], Curve]],
    log_x: bool = False,
) -> str:
    """One panel per measure: measured points (x, y) over the predicted curve (label, xs, ys)."""
    plt = figures.pyplot()
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
    return figures.save(figure, out / name)


def tradeoff(
    out: Path,
    name: str,
    title: str,
    points: Sequence[tuple[str, float | None, float | None]],
    theory_curve: tuple[Sequence[float], Sequence[float]],
) -> str:
    """Stale-read fraction against central load: measured (label, load, stale), theory's curve."""
    plt = figures.pyplot()
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
    return figures.save(figure, out / name)


def bars(
    out: Path,
    name: str,
    title: str,
    labels: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float | None]]],
) -> str:
    """One bar chart per measure, the same labels on each; no bar where nothing was measured."""
    plt = figures.pyplot()
    figure, axes_list = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4))
    for axes, (ylabel, values) in zip(axes_list, panels, strict=True):
        axes.bar(labels, _numbers(values), color=[f"C{i}" for i in range(len(labels))])
        axes.set_title(ylabel, fontsize=10)
        axes.tick_params(axis="x", rotation=30, labelsize=8)
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(title)
    return figures.save(figure, out / name)


# Time bins across a heatmap.
HEATMAP_BINS = 60
# A category of a categorical heatmap: its label in the legend, and its colour.
Category = tuple[str, str]
# What a heatmap cell shows of the reads in its bin: the last one's value, carried on
# through empty bins (what a region serves until it is read again), or the largest.
PerBin = Literal["last", "max"]


@dataclass(frozen=True, slots=True)
class Heatmap:
    """A region x time heatmap: regions down, ``bins`` time bins across, events marked."""

    title: str
    # Passed over once; "max" takes them as they come (a generator over a history too
    # large to hold will do), "last" sorts them by invocation first.
    reads: Iterable[Op]
    regions: Sequence[str]
    end_s: float
    events: Sequence[tuple[float, str]] = ()
    bins: int = HEATMAP_BINS

    def grid(self, value: Callable[[Op], float], per_bin: PerBin) -> list[list[float]]:
        """One row per region, one cell per bin; NaN where there is nothing to show."""
        width_s = max(self.end_s, 1e-9) / self.bins
        grid: list[list[float]] = [[math.nan] * self.bins for _ in self.regions]
        row_of = {region: index for index, region in enumerate(self.regions)}
        ordered = (
            sorted(self.reads, key=lambda op: op.invoke_s) if per_bin == "last" else self.reads
        )
        for op in ordered:
            if op.region in row_of and 0 <= op.invoke_s < self.end_s:
                row = grid[row_of[op.region]]
                column = min(self.bins - 1, int(op.invoke_s / width_s))
                found, before = value(op), row[column]
                keep_last = per_bin == "last" or math.isnan(before)
                row[column] = found if keep_last else max(found, before)
        if per_bin == "last":
            for row in grid:
                for column in range(1, self.bins):
                    if math.isnan(row[column]):
                        row[column] = row[column - 1]
        return grid

    def axes(self, legend_width: float) -> tuple[Any, Any]:
        """The figure, one region per row, events as dashed lines labelled inside the plot."""
        plt = figures.pyplot()
        figure, axes = plt.subplots(figsize=(10 + legend_width, 0.6 * len(self.regions) + 1.8))
        axes.set_yticks(
            [index + 0.5 for index in range(len(self.regions))], labels=list(self.regions)
        )
        axes.set_xlabel("simulated seconds since the run began")
        axes.set_title(self.title)
        # Labels go inside the plot, at its top, beside their lines: above it they hit the title.
        for at_s, label in self.events:
            axes.axvline(at_s, color="white", linestyle="--", linewidth=1.2)
            axes.text(
                at_s,
                0.97,
                label,
                transform=axes.get_xaxis_transform(),
                ha="left",
                va="top",
                fontsize=8,
                color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none", "pad": 2},
            )
        return figure, axes

    def show(self, axes: Any, grid: list[list[float]], colours: Any, norm: Any) -> Any:
        return axes.imshow(
            grid,
            aspect="auto",
            interpolation="nearest",
            extent=(0, self.end_s, len(self.regions), 0),
            cmap=colours,
            norm=norm,
        )


def _has_gaps(grid: list[list[float]]) -> bool:
    return any(math.isnan(value) for row in grid for value in row)


def category_figure(
    heatmap: Heatmap, category: Callable[[Op], int], categories: Sequence[Category]
) -> Any:
    """Each cell the category of the last read in or before it, named in a legend.

    ``category`` maps a read to an index into ``categories``. A category is
    not a number on a scale, so there is no colour bar.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    grid = heatmap.grid(lambda op: float(category(op)), "last")
    colours = ListedColormap([colour for _, colour in categories]).with_extremes(bad="white")
    norm = BoundaryNorm([index - 0.5 for index in range(len(categories) + 1)], len(categories))
    figure, axes = heatmap.axes(legend_width=1.0)
    heatmap.show(axes, grid, colours, norm)
    handles = [Patch(facecolor=colour, label=label) for label, colour in categories]
    if _has_gaps(grid):
        handles.append(Patch(facecolor="white", edgecolor="grey", label="no read yet"))
    axes.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title="last read",
        title_fontsize=8,
    )
    return figure


def count_figure(
    heatmap: Heatmap, count: Callable[[Op], int], colour_label: str, per_bin: PerBin = "last"
) -> Any:
    """Each cell a whole number from the reads in its bin (see PerBin), on a colour bar.

    A dozen distinct numbers or fewer get one colour each, centred on their tick.
    """
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, Normalize
    from matplotlib.ticker import MaxNLocator

    grid = heatmap.grid(lambda op: float(count(op)), per_bin)
    present = [value for row in grid for value in row if not math.isnan(value)]
    low, high = (int(min(present)), int(max(present))) if present else (0, 1)
    colours = colormaps["viridis"].with_extremes(bad="white")
    few = high - low <= 12
    norm = (
        BoundaryNorm([value - 0.5 for value in range(low, high + 2)], colours.N)
        if few
        else Normalize(low, high)
    )
    figure, axes = heatmap.axes(legend_width=0.5)
    image = heatmap.show(axes, grid, colours, norm)
    label = colour_label + (" (white: no read)" if _has_gaps(grid) else "")
    bar = figure.colorbar(image, ax=axes, label=label)
    if few:
        bar.set_ticks(list(range(low, high + 1)))
    else:
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return figure


def save(figure: Any, out: Path, name: str) -> str:
    """Write the figure as ``out/name`` and close it; return the name."""
    return figures.save(figure, out / name)
