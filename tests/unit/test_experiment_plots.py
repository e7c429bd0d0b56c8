"""The experiments' heatmaps say what they show: built from hand-made reads, then looked at."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edgekv.experiments.history import Op
from edgekv.experiments.partition import READ_CATEGORIES, read_category
from edgekv.experiments.plots import Heatmap, category_figure, count_figure
from tests.unit.test_checkers import read


@pytest.fixture
def close() -> Iterator[list[Any]]:
    figures: list[Any] = []
    yield figures
    import matplotlib.pyplot as plt

    for figure in figures:
        plt.close(figure)


def partition_reads() -> list[Op]:
    return [
        read(1, 5.0, 1, region="eu", cache_status="HIT"),
        read(2, 50.0, 1, region="eu", cache_status="STALE"),
        read(3, 80.0, None, region="eu", outcome="failed"),
        read(4, 20.0, 1, region="us", cache_status="MISS"),  # us unread before 20 s
    ]


def test_a_heatmap_of_categories_has_their_legend_not_a_colour_scale(close: list[Any]) -> None:
    heatmap = Heatmap("reads", partition_reads(), ["eu", "us"], 100.0, bins=10)
    figure = category_figure(heatmap, read_category, READ_CATEGORIES)
    close.append(figure)
    assert len(figure.axes) == 1, "no colour bar: fresh, STALE and failed are not a scale"
    legend = figure.axes[0].get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["fresh", "STALE", "failed", "no read yet"]
    nan = float("nan")
    grid = heatmap.grid(lambda op: float(read_category(op)), "last")
    assert grid[0] == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]  # carried on until the next read
    assert str(grid[1][:2]) == str([nan, nan]) and grid[1][2:] == [0] * 8


def test_event_labels_sit_inside_the_plot_clear_of_the_title(close: list[Any]) -> None:
    events = [(40.0, "cut"), (70.0, "heal")]
    heatmap = Heatmap("What each region's reads returned", partition_reads(), ["eu", "us"],
                      100.0, events=events)  # fmt: skip
    figure = category_figure(heatmap, read_category, READ_CATEGORIES)
    close.append(figure)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    title = axes.title.get_window_extent(renderer)
    plot = axes.get_window_extent(renderer)
    labels = [text for text in axes.texts if text.get_text() in ("cut", "heal")]
    assert len(labels) == 2
    for label in labels:
        box = label.get_window_extent(renderer)
        assert not box.overlaps(title), label.get_text()
        assert plot.x0 <= box.x0 and box.x1 <= plot.x1 and plot.y0 <= box.y0 and box.y1 <= plot.y1


def test_a_heatmap_of_counts_shows_the_largest_per_bin_on_a_whole_number_bar(
    close: list[Any],
) -> None:
    reads = [
        read(1, 1.0, 5, region="eu"),
        read(2, 2.0, 5, region="eu"),
        read(3, 15.0, 5, region="eu"),
        read(4, 1.0, 5, region="us"),
    ]
    behind = {1: 2, 2: 0, 3: 1, 4: 0}
    heatmap = Heatmap("Revisions behind central", reads, ["eu", "us"], 30.0, bins=3)
    grid = heatmap.grid(lambda op: float(behind[op.id]), "max")
    assert grid[0][:2] == [2, 1] and grid[1][0] == 0  # the stalest read of each bin
    figure = count_figure(heatmap, lambda op: behind[op.id], "revisions behind", per_bin="max")
    close.append(figure)
    _, bar = figure.axes
    assert bar.get_ylabel() == "revisions behind (white: no read)"
    assert list(bar.get_yticks()) == [0, 1, 2]
