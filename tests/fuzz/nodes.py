"""The nodes a fuzzer runs against: a real ``edgekv central`` and ``edgekv edge``.

Theory of operation: central over SQLite in a given folder, with no write-rate
limit (so that a request sent to central and then to the edge is judged the
same), and one edge in front of it, as child processes whose logs the fuzzer
reads for tracebacks. Used by ``python -m tests.fuzz`` and the suite's short
round alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fuzz.engine import Fuzzer
from tests.support.central_process import CentralLauncher
from tests.support.edge_process import EdgeLauncher


@contextmanager
def fuzzer_of_real_nodes(folder: Path) -> Iterator[Fuzzer]:
    """A :class:`Fuzzer` of a central and an edge started in ``folder``, stopped after."""
    with CentralLauncher(folder) as centrals, EdgeLauncher(folder) as edges:
        central = centrals.start(f"sqlite:{folder / 'fuzz.db'}", ["--no-write-rate-limit"])
        edge = edges.start(central.address, "eu-west", ["--node", "eu-west-fuzz"])
        fuzzer = Fuzzer(
            central.address,
            edge.address,
            logs=[central.child.stderr_path, edge.child.stderr_path],
            alive=lambda: central.running and edge.running,
        )
        try:
            yield fuzzer
        finally:
            fuzzer.close()
