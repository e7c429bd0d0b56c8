"""edgekv's side of the comparison: every scenario at a real central and through a real edge.

Theory of operation: :func:`run_at_edgekv` starts ``edgekv central`` (SQLite,
the write-rate rule on) and one ``edgekv edge`` as child processes, gives each
scenario a fresh namespace per node, and runs the scenarios concurrently
through ``edgekv.Client(central=…)`` and ``edgekv.Client(edge=…)`` — the
Python API a Worker author uses. It returns, per node, one answer per
scenario in the order of ``scenarios``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import edgekv
from tests.differential.edgekv_side import run_scenario
from tests.differential.scenarios import Scenario
from tests.support.central_process import CentralLauncher
from tests.support.edge_process import EdgeLauncher


def run_at_edgekv(folder: Path, scenarios: Sequence[Scenario]) -> dict[str, list[dict[str, Any]]]:
    """``{"central": [answer per scenario], "edge": […]}``."""
    with CentralLauncher(folder) as centrals, EdgeLauncher(folder) as edges:
        central = centrals.start(f"sqlite:{folder / 'differential.db'}")
        edge = edges.start(central.address, "eu-west")
        return asyncio.run(_run_all(central.address, edge.address, scenarios))


async def _run_all(
    central: str, edge: str, scenarios: Sequence[Scenario]
) -> dict[str, list[dict[str, Any]]]:
    async with (
        edgekv.Client(central=central) as at_central,
        edgekv.Client(central=central, edge=edge) as through_edge,
    ):
        answers: dict[str, list[dict[str, Any]]] = {}
        for node, client in (("central", at_central), ("edge", through_edge)):
            namespaces = [
                client.namespace((await at_central.create_namespace(f"{node}-{s.name}")).id)
                for s in scenarios
            ]
            answers[node] = list(
                await asyncio.gather(
                    *(run_scenario(kv, s) for kv, s in zip(namespaces, scenarios, strict=True))
                )
            )
        return answers
