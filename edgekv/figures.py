"""Figures: matplotlib without a display, imported only when a figure is drawn.

Theory of operation: matplotlib is slow to import and there is no display
where edgekv runs, so every figure — the experiments', the benchmarks', the
soak's — gets pyplot from :func:`pyplot` (the Agg backend, imported on first
use) and is written to its file and freed by :func:`save`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot, drawing to files only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path, dpi: int = 110) -> str:
    """Write ``figure`` to ``path`` and free it; the file's name."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path.name
