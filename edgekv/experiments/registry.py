"""The experiments ``edgekv experiment`` knows, by name."""

from __future__ import annotations

import json
from pathlib import Path

from edgekv.core.errors import UsageError
from edgekv.experiments.base import Experiment
from edgekv.experiments.history import HISTORY_NAMES, history_file
from edgekv.experiments.modes import Modes
from edgekv.experiments.partition import Partition
from edgekv.experiments.results import RUN_FILE
from edgekv.experiments.staleness import Staleness
from edgekv.experiments.visibility import Visibility

EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment for experiment in (Visibility(), Staleness(), Modes(), Partition())
}


def experiment_of(folder: Path) -> Experiment:
    """The experiment that wrote a results folder, or a clear error."""
    run_file = folder / RUN_FILE
    if not run_file.is_file() or history_file(folder) is None:
        raise UsageError(
            f"{folder} is not an experiment's results folder "
            f"(it needs {RUN_FILE} and {' or '.join(HISTORY_NAMES)})"
        )
    try:
        name = json.loads(run_file.read_text(encoding="utf-8"))["experiment"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{run_file} is not an experiment's run.json") from None
    if name not in EXPERIMENTS:
        raise UsageError(f"{run_file} names an unknown experiment {name!r}")
    return EXPERIMENTS[name]
