"""A real ``edgekv edge`` child process for tests (shared caches, CLI behaviour).

Theory of operation: modelled on :mod:`tests.support.central_process`.
:func:`start_edge` runs ``python -m edgekv edge`` on port 0 in front of a
given central, with stdout and stderr in files of a directory the test
chooses (no pipes: the child can never block on a full pipe), and waits —
polling the stdout file with short sleeps — for the one ``edgekv edge ready
on ...`` line, from which it learns the address. If the child exits or the
deadline passes first, :class:`EdgeStartError` says so and shows its stderr.

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

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

READY_LINE = re.compile(
    r"^edgekv edge ready on (?P<address>\S+) region=(?P<region>\S+) node=(?P<node>\S+) "
    r"central=(?P<central>\S+) mode=(?P<mode>\S+) rtt-ms=(?P<rtt_ms>\S+)$"
)
DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10.0
_POLL_S = 0.02
_REPO_ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


class EdgeStartError(RuntimeError):
    """The edge process did not print its ready line (it exited, or was too slow)."""


def edge_command(central: str, region: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The argv of ``edgekv edge`` on a free loopback port in front of ``central``."""
    return [
        sys.executable,
        "-m",
        "edgekv",
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--central",
        central,
        "--region",
        region,
        *extra_args,
    ]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child imports edgekv from this checkout, whatever the test's cwd.
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if part
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


@dataclass
class EdgeExit:
    """How an edge process that was meant to fail ended."""

    returncode: int
    stdout: str
    stderr: str


class EdgeProcess:
    """One running ``edgekv edge``; see :func:`start_edge`."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        argv: Sequence[str],
        stdout_path: Path,
        stderr_path: Path,
    ) -> None:
        self.process = process
        self.argv = list(argv)
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.ready_line = ""
        self.address = ""
        self.region = ""
        self.node = ""

    def __repr__(self) -> str:
        return (
            f"EdgeProcess(pid={self.pid}, address={self.address!r}, node={self.node!r}, "
            f"returncode={self.process.returncode})"
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return _read(self.stdout_path)

    def stderr(self) -> str:
        """What the process wrote to stderr so far (all of it, once it has exited)."""
        return _read(self.stderr_path)

    def wait_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Wait for the ready line; on exit or timeout kill it and raise EdgeStartError."""
        deadline = time.monotonic() + timeout_s
        while True:
            first_line, newline, _ = self.stdout().partition("\n")
            if newline:
                match = READY_LINE.match(first_line)
                if match is None:
                    self.kill()
                    raise EdgeStartError(
                        f"unexpected first stdout line {first_line!r} from {self.argv}\n"
                        f"stderr:\n{self.stderr()}"
                    )
                self.ready_line = first_line
                self.address = match["address"]
                self.region = match["region"]
                self.node = match["node"]
                return
            code = self.process.poll()
            if code is not None:
                raise EdgeStartError(
                    f"edgekv edge exited with code {code} before it was ready: "
                    f"{self.argv}\nstderr:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise EdgeStartError(
                    f"edgekv edge was not ready within {timeout_s:g} s: {self.argv}\n"
                    f"stderr:\n{self.stderr()}"
                )
            time.sleep(_POLL_S)

    def terminate(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int:
        """SIGTERM (a graceful stop) and wait; return the exit code.

        Raises ``subprocess.TimeoutExpired`` when it does not exit in time (the
        process is then killed, so nothing outlives the test).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> int:
        """SIGKILL and wait; return the exit code."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def __enter__(self) -> EdgeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


def _spawn(
    central: str, region: str, log_dir: Path, extra_args: Sequence[str], name: str | None
) -> EdgeProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"edge-{next(_names)}"
    stdout_path = log_dir / f"{name}.stdout"
    stderr_path = log_dir / f"{name}.stderr"
    argv = edge_command(central, region, extra_args)
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=_child_env(),
            cwd=log_dir,
        )
    return EdgeProcess(process, argv, stdout_path, stderr_path)


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
    edge = _spawn(central, region, log_dir, extra_args, name)
    try:
        edge.wait_ready(timeout_s)
    except BaseException:
        edge.kill()
        raise
    return edge


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
    edge = _spawn(central, region, log_dir, extra_args, name)
    try:
        returncode = edge.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        edge.kill()
        raise AssertionError(
            f"edgekv edge did not exit within {timeout_s:g} s: {edge.argv}\n"
            f"stdout:\n{edge.stdout()}\nstderr:\n{edge.stderr()}"
        ) from None
    finally:
        edge.kill()
    return EdgeExit(returncode, edge.stdout(), edge.stderr())


class EdgeLauncher:
    """Starts edge processes into one log directory and kills them all on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[EdgeProcess] = []

    def start(
        self,
        central: str,
        region: str,
        extra_args: Sequence[str] = (),
        *,
        name: str | None = None,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> EdgeProcess:
        edge = _spawn(central, region, self.log_dir, extra_args, name)
        self.started.append(edge)
        edge.wait_ready(timeout_s)
        return edge

    def kill_all(self) -> None:
        for edge in self.started:
            edge.kill()

    def __enter__(self) -> EdgeLauncher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill_all()
