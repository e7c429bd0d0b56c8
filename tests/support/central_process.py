"""A real ``edgekv central`` child process for tests (crash, shutdown, CLI behaviour).

Theory of operation: :func:`start_central` runs ``python -m edgekv central``
on port 0 with the given storage URL and extra arguments. Its stdout and
stderr go to files in a directory of the test's choosing, and the start waits
for the one ``edgekv central ready on ...`` line, from which it learns the
address and revision. If the child exits or the deadline passes first,
:class:`CentralStartError` says so and shows its stderr. The machinery is
shared with ``edgekv edge`` in :mod:`tests.support.node_process`; this module
holds only the command line and the ready line's fields.

Every process is killed at the end even when a test fails: use the
:class:`CentralProcess` itself as a context manager, or start processes
through a :class:`CentralLauncher` (a context manager that kills all it
started), which is the shape a fixture wants::

    @pytest.fixture
    def launcher(tmp_path: Path) -> Iterator[CentralLauncher]:
        with CentralLauncher(tmp_path) as launcher:
            yield launcher

:func:`run_central_to_exit` is for starts that are meant to fail: it waits for
the exit and returns the exit code and both outputs.
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
    "CentralExit",
    "CentralLauncher",
    "CentralProcess",
    "CentralStartError",
    "central_command",
    "run_central_to_exit",
    "start_central",
]


class CentralStartError(NodeStartError):
    """The central process did not print its ready line (it exited, or was too slow)."""


def central_command(storage: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The argv of ``edgekv central`` on a free loopback port with ``storage``."""
    return node_command("central", "--storage", storage, *extra_args)


class CentralExit(NodeExit):
    """How a central process that was meant to fail ended."""


class CentralProcess(NodeProcess):
    """One running ``edgekv central``; see :func:`start_central`."""

    kind = "central"
    start_error = CentralStartError
    revision = 0
    fields: dict[str, str] = {}  # noqa: RUF012 (replaced, never changed, by on_ready)

    def on_ready(self, ready: ReadyLine) -> None:
        self.revision = int(ready.fields["revision"])
        self.fields = dict(ready.fields)


def start_central(
    storage: str,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> CentralProcess:
    """Start ``edgekv central`` on port 0 and return once it printed its ready line.

    Its stdout and stderr are written to ``log_dir/NAME.stdout`` and
    ``log_dir/NAME.stderr`` (NAME defaults to ``central-N``). The caller must
    stop it: use the result as a context manager or start it via
    :class:`CentralLauncher`.
    """
    argv = central_command(storage, extra_args)
    return start_node(CentralProcess, argv, log_dir, name=name, timeout_s=timeout_s)


def run_central_to_exit(
    storage: str,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> CentralExit:
    """Run ``edgekv central`` expecting it to exit by itself (a bad flag or storage URL).

    Raises AssertionError (after killing it) if it is still running after
    ``timeout_s``, e.g. because it started serving after all.
    """
    argv = central_command(storage, extra_args)
    return run_node_to_exit(
        CentralProcess, CentralExit, argv, log_dir, name=name, timeout_s=timeout_s
    )


class CentralLauncher(NodeLauncher[CentralProcess]):
    """Starts central processes into one log directory and kills them all on exit."""

    process_type = CentralProcess

    def start(
        self,
        storage: str,
        extra_args: Sequence[str] = (),
        *,
        name: str | None = None,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> CentralProcess:
        argv = central_command(storage, extra_args)
        return self.launch(argv, name=name, timeout_s=timeout_s)
