"""``edgekv experiment NAME`` runs a consistency experiment; ``edgekv report DIR`` redraws one.

Theory of operation: each experiment registers its own options under
``edgekv experiment``; :func:`edgekv.experiments.base.run_experiment` runs it
and writes the results folder. ``edgekv report`` reads a folder's run.json
and history.jsonl, recomputes the summary, redraws the plots and prints the
table: no cluster needed. Exit 0 when every check of the run held.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekv.cli.common import Subcommands


def register(subcommands: Subcommands) -> None:
    from edgekv.experiments.base import MAX_REAL_S, add_common_arguments
    from edgekv.experiments.registry import EXPERIMENTS

    parser = subcommands.add_parser(
        "experiment",
        help="run a consistency experiment and write its results folder",
        description="Run a consistency experiment on a fresh cluster (or on a running one with "
        "--state) and write results/<experiment>/<timestamp>/: run.json, history.jsonl, "
        "summary.json/.csv, report.md and PNG plots. A run first says how long it will take "
        "(simulated seconds over the cluster's time scale, plus setup) and needs --yes to take "
        f"more than {MAX_REAL_S / 60:g} minutes. Exit 0 when every check held and none the "
        "run needed was left unexamined.",
        epilog="example: edgekv experiment visibility --seed 7",
    )
    names = parser.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for experiment in EXPERIMENTS.values():
        sub = names.add_parser(experiment.name, help=experiment.help, description=experiment.help)
        add_common_arguments(sub, experiment)
        experiment.add_arguments(sub)
        sub.set_defaults(run=run_experiment_command)

    report = subcommands.add_parser(
        "report",
        help="redraw an experiment's plots and print its summary from its results folder",
        description="Recompute the summary, redraw the plots and rewrite report.md of a results "
        "folder from its run.json and history.jsonl alone.",
        epilog="example: edgekv report results/visibility/20261128T101500Z",
    )
    report.add_argument("folder", type=Path, metavar="DIR")
    report.set_defaults(run=run_report)


async def run_experiment_command(args: argparse.Namespace) -> int:
    from edgekv.experiments.base import run_experiment
    from edgekv.experiments.registry import EXPERIMENTS

    return await run_experiment(EXPERIMENTS[args.experiment], args)


async def run_report(args: argparse.Namespace) -> int:
    from edgekv.experiments.base import derive
    from edgekv.experiments.registry import experiment_of

    folder: Path = args.folder
    experiment = experiment_of(folder)
    summary = derive(experiment, folder)
    print(summary.as_text())
    print(f"\nredrew {folder}")
    return 0 if summary.ok else 1
