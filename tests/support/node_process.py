"""A real ``edgekv`` node (central or edge) child process for tests.

Theory of operation: a test runs ``python -m edgekv KIND --listen 127.0.0.1:0
...`` through :func:`start_node` or a :class:`NodeLauncher`, on the product's
own machinery (:mod:`edgekv.process`): stdout and stderr in files in a
directory of the test's choosing, the child in its own session and gone when
the test process dies, and the start waits for the one ready line, parsed by
:func:`edgekv.process.parse_ready`, from which it learns the address and
whatever else the line reports. The ready line must be the first line on
stdout. If the child exits or the deadline passes first, the kind's
:class:`NodeStartError` says so and shows its stderr.

What differs between kinds lives in a :class:`NodeProcess` subclass: ``kind``
(``"central"``, ``"edge"``), the start error to raise and
:meth:`NodeProcess.on_ready` to keep the ready line's extra fields.
:mod:`tests.support.central_process` and :mod:`tests.support.edge_process`
hold those and the command lines.

Every process is killed at the end even when a test fails: use the process
itself as a context manager, or start processes through a launcher (a context
manager that kills all it started). :func:`run_node_to_exit` is for starts
that are meant to fail: it waits for the exit and returns the exit code and
both outputs.

The waits block: a test whose central runs in-process, on its own event loop,
must call these from a thread (``asyncio.to_thread``) so that central can
answer the child's health check meanwhile. The kernel SIGTERMs a child when
the thread that started it ends, so such a test stops its nodes before that.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from edgekv.node_args import ANY_LOOPBACK_PORT, edgekv_command
from edgekv.process import (
    DEFAULT_GRACE_S,
    Child,
    ReadyLine,
    RunsAsChild,
    StartError,
    spawn,
    wait_ready,
)

DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = DEFAULT_GRACE_S
REPO_ROOT = Path(__file__).resolve().parents[2]
# Default log names count per kind: central-1, central-2, ..., edge-1, ...
_names: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))


class NodeStartError(RuntimeError):
    """The process did not print its ready line (it exited, or was too slow)."""


def node_command(kind: str, *args: str) -> list[str]:
    """The argv of ``edgekv KIND`` on a free loopback port, then ``args``."""
    return edgekv_command([kind, "--listen", ANY_LOOPBACK_PORT, *args])


def child_env() -> dict[str, str]:
    """Our environment, with this checkout first on the path, whatever the test's cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


@dataclass
class NodeExit:
    """How a process that was meant to fail ended."""

    returncode: int
    stdout: str
    stderr: str


class NodeProcess(RunsAsChild):
    """One running ``edgekv KIND``; subclasses set the class attributes below."""

    kind: ClassVar[str] = "node"
    start_error: ClassVar[type[NodeStartError]] = NodeStartError

    def __init__(self, child: Child) -> None:
        self.child = child
        self.ready_line = ""

    def _repr_fields(self) -> str:
        return f"pid={self.pid}, address={self.address!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_fields()}, returncode={self.process.returncode})"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.child.popen

    @property
    def argv(self) -> list[str]:
        return self.child.argv

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def stdout(self) -> str:
        return self.child.stdout()

    def stderr(self) -> str:
        """What the process wrote to stderr so far (all of it, once it has exited)."""
        return self.child.stderr()

    def on_ready(self, ready: ReadyLine) -> None:
        """Keep the ready line's fields beyond the address (subclasses)."""

    def wait_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Wait for the ready line; on exit or timeout kill it and raise ``start_error``."""
        try:
            (ready,) = wait_ready([self.child], timeout_s)
        except StartError as exc:
            self.kill()
            raise self.start_error(f"edgekv {self.kind}: {exc}\nstderr:\n{self.stderr()}") from None
        first_line = self.stdout().partition("\n")[0]
        if ready.kind != self.kind or ready.line != first_line:
            self.kill()
            raise self.start_error(
                f"expected edgekv {self.kind}'s ready line first on stdout, got {first_line!r} "
                f"from {self.argv}\nstderr:\n{self.stderr()}"
            )
        self.ready_line = ready.line
        self.on_ready(ready)

    def terminate(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int:
        """SIGTERM (a graceful stop) and wait; return the exit code.

        Raises ``subprocess.TimeoutExpired`` when it does not exit in time (the
        process is then killed, so nothing outlives the test).
        """
        code = self.child.stop(timeout_s)
        if self.child.killed:
            raise subprocess.TimeoutExpired(self.argv, timeout_s)
        return code

    def kill(self) -> int:
        """SIGKILL (a crash: nothing is flushed or closed) and wait; return the exit code."""
        return self.child.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


P = TypeVar("P", bound=NodeProcess)
E = TypeVar("E", bound=NodeExit)


def spawn_node(
    process_type: type[P], argv: Sequence[str], log_dir: Path, name: str | None = None
) -> P:
    """Start ``argv`` with its outputs in ``log_dir/NAME.stdout`` and ``.stderr``; no wait.

    NAME defaults to ``KIND-N``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"{process_type.kind}-{next(_names[process_type.kind])}"
    child = spawn(
        argv,
        log_dir / f"{name}.stdout",
        log_dir / f"{name}.stderr",
        name=name,
        env=child_env(),
        cwd=log_dir,
    )
    return process_type(child)


def start_node(
    process_type: type[P],
    argv: Sequence[str],
    log_dir: Path,
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> P:
    """Start ``argv`` and return once it printed its ready line (killed if it did not).

    The caller must stop it: use the result as a context manager or start it
    via a :class:`NodeLauncher`.
    """
    node = spawn_node(process_type, argv, log_dir, name)
    try:
        node.wait_ready(timeout_s)
    except BaseException:
        node.kill()
        raise
    return node


def run_node_to_exit(
    process_type: type[NodeProcess],
    exit_type: type[E],
    argv: Sequence[str],
    log_dir: Path,
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> E:
    """Run ``argv`` expecting it to exit by itself (a bad flag, say).

    Raises AssertionError (after killing it) if it is still running after
    ``timeout_s``, e.g. because it started serving after all.
    """
    node = spawn_node(process_type, argv, log_dir, name)
    try:
        returncode = node.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        node.kill()
        raise AssertionError(
            f"edgekv {process_type.kind} did not exit within {timeout_s:g} s: {node.argv}\n"
            f"stdout:\n{node.stdout()}\nstderr:\n{node.stderr()}"
        ) from None
    finally:
        node.kill()
    return exit_type(returncode, node.stdout(), node.stderr())


class NodeLauncher(Generic[P]):
    """Starts processes into one log directory and kills them all on exit.

    Subclasses set ``process_type`` and offer a ``start`` that builds the argv
    and calls :meth:`launch`.
    """

    process_type: type[P]

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[P] = []

    def launch(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> P:
        """Start ``argv`` and wait for its ready line; it is in ``started`` even if that fails."""
        node = spawn_node(self.process_type, argv, self.log_dir, name)
        self.started.append(node)
        node.wait_ready(timeout_s)
        return node

    def kill_all(self) -> None:
        for node in self.started:
            node.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill_all()
