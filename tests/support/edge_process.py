"""A real ``edgekv edge`` child process for tests (shared caches, CLI behaviour).

Theory of operation: the same as :mod:`tests.support.central_process`, on the
shared machinery of :mod:`tests.support.node_process`. :func:`start_edge` runs
``python -m edgekv edge`` on port 0 in front of a given central, with stdout
and stderr in files of a directory the test chooses, and waits for the one
``edgekv edge ready on ...`` line, from which it learns the address, region
and node. If the child exits or the deadline passes first,
:class:`EdgeStartError` says so and shows its stderr.

Every process is killed at the end even when a test fails: use the
:class:`EdgeProcess` itself as a context manager, or start processes through
an :class:`EdgeLauncher` (a context manager that kills all it started)::

    @pytest.fixture
    def edges(tmp_path: Path) -> Iterator[EdgeLauncher]:
        with EdgeLauncher(tmp_path) as launcher:
            yield launcher

:func:`run_edge_to_exit` is for starts that are meant to fail: it waits for
the exit and returns the exit code and both outputs.

The waits block: a test whose central runs in-process, on its own event loop,
must call these from a thread (``asyncio.to_thread``) so that central can
answer the child's health check meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgekv.process import ReadyLine
from tests.support.node_process import (
    DEFAULT_START_TIMEOUT_S,
    DEFAULT_STOP_TIMEOUT_S,
    NodeExit,
    NodeLauncher,
    NodeProcess,
    NodeStartError,
    node_command,
    run_node_to_exit,
    start_node,
)

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "DEFAULT_STOP_TIMEOUT_S",
    "EdgeExit",
    "EdgeLauncher",
    "EdgeProcess",
    "EdgeStartError",
    "edge_command",
    "run_edge_to_exit",
    "start_edge",
]


class EdgeStartError(NodeStartError):
    """The edge process did not print its ready line (it exited, or was too slow)."""


def edge_command(central: str, region: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The argv of ``edgekv edge`` on a free loopback port in front of ``central``."""
    return node_command("edge", "--central", central, "--region", region, *extra_args)


class EdgeExit(NodeExit):
    """How an edge process that was meant to fail ended."""


class EdgeProcess(NodeProcess):
    """One running ``edgekv edge``; see :func:`start_edge`."""

    kind = "edge"
    start_error = EdgeStartError
    region = ""
    node = ""

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, node={self.node!r}"

    def on_ready(self, ready: ReadyLine) -> None:
        self.region = ready.fields["region"]
        self.node = ready.fields["node"]


def start_edge(
    central: str,
    region: str,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> EdgeProcess:
    """Start ``edgekv edge`` on port 0 and return once it printed its ready line.

    Its stdout and stderr are written to ``log_dir/NAME.stdout`` and
    ``log_dir/NAME.stderr`` (NAME defaults to ``edge-N``). The caller must stop
    it: use the result as a context manager or start it via :class:`EdgeLauncher`.
    """
    argv = edge_command(central, region, extra_args)
    return start_node(EdgeProcess, argv, log_dir, name=name, timeout_s=timeout_s)


def run_edge_to_exit(
    central: str,
    region: str,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> EdgeExit:
    """Run ``edgekv edge`` expecting it to exit by itself (a bad flag, central or cache).

    Raises AssertionError (after killing it) if it is still running after
    ``timeout_s``, e.g. because it started serving after all.
    """
    argv = edge_command(central, region, extra_args)
    return run_node_to_exit(EdgeProcess, EdgeExit, argv, log_dir, name=name, timeout_s=timeout_s)


class EdgeLauncher(NodeLauncher[EdgeProcess]):
    """Starts edge processes into one log directory and kills them all on exit."""

    process_type = EdgeProcess

    def start(
        self,
        central: str,
        region: str,
        extra_args: Sequence[str] = (),
        *,
        name: str | None = None,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> EdgeProcess:
        argv = edge_command(central, region, extra_args)
        return self.launch(argv, name=name, timeout_s=timeout_s)
