"""A real ``edgekv central`` child process for tests (crash, shutdown, CLI behaviour).

Theory of operation: :func:`start_central` runs ``python -m edgekv central``
on port 0 with the given storage URL and extra arguments. Its stdout and
stderr go to files in a directory of the test's choosing (no pipes, so the
child can never block on a full pipe), and the start waits — polling the
stdout file with short sleeps — for the one ``edgekv central ready on ...``
line, from which it learns the address. If the child exits or the deadline
passes first, :class:`CentralStartError` says so and shows its stderr.

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
    r"^edgekv central ready on (?P<address>\S+) storage=(?P<storage>\S*) "
    r"revision=(?P<revision>\d+) time-scale=(?P<time_scale>\S+)$"
)
DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10.0
_POLL_S = 0.02
_REPO_ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


class CentralStartError(RuntimeError):
    """The central process did not print its ready line (it exited, or was too slow)."""


def central_command(storage: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The argv of ``edgekv central`` on a free loopback port with ``storage``."""
    return [
        sys.executable,
        "-m",
        "edgekv",
        "central",
        "--listen",
        "127.0.0.1:0",
        "--storage",
        storage,
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
class CentralExit:
    """How a central process that was meant to fail ended."""

    returncode: int
    stdout: str
    stderr: str


class CentralProcess:
    """One running ``edgekv central``; see :func:`start_central`."""

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
        self.revision = 0

    def __repr__(self) -> str:
        return (
            f"CentralProcess(pid={self.pid}, address={self.address!r}, "
            f"returncode={self.process.returncode})"
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return _read(self.stdout_path)

    def stderr(self) -> str:
        """What the process wrote to stderr so far (all of it, once it has exited)."""
        return _read(self.stderr_path)

    def wait_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Wait for the ready line; on exit or timeout kill it and raise CentralStartError."""
        deadline = time.monotonic() + timeout_s
        while True:
            first_line, newline, _ = self.stdout().partition("\n")
            if newline:
                match = READY_LINE.match(first_line)
                if match is None:
                    self.kill()
                    raise CentralStartError(
                        f"unexpected first stdout line {first_line!r} from {self.argv}\n"
                        f"stderr:\n{self.stderr()}"
                    )
                self.ready_line = first_line
                self.address = match["address"]
                self.revision = int(match["revision"])
                return
            code = self.process.poll()
            if code is not None:
                raise CentralStartError(
                    f"edgekv central exited with code {code} before it was ready: "
                    f"{self.argv}\nstderr:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise CentralStartError(
                    f"edgekv central was not ready within {timeout_s:g} s: {self.argv}\n"
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
        """SIGKILL (a crash: nothing is flushed or closed) and wait; return the exit code."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def __enter__(self) -> CentralProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


def _spawn(
    storage: str, log_dir: Path, extra_args: Sequence[str], name: str | None
) -> CentralProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"central-{next(_names)}"
    stdout_path = log_dir / f"{name}.stdout"
    stderr_path = log_dir / f"{name}.stderr"
    argv = central_command(storage, extra_args)
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=_child_env(),
            cwd=log_dir,
        )
    return CentralProcess(process, argv, stdout_path, stderr_path)


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
    central = _spawn(storage, log_dir, extra_args, name)
    try:
        central.wait_ready(timeout_s)
    except BaseException:
        central.kill()
        raise
    return central


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
    central = _spawn(storage, log_dir, extra_args, name)
    try:
        returncode = central.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        central.kill()
        raise AssertionError(
            f"edgekv central did not exit within {timeout_s:g} s: {central.argv}\n"
            f"stdout:\n{central.stdout()}\nstderr:\n{central.stderr()}"
        ) from None
    finally:
        central.kill()
    return CentralExit(returncode, central.stdout(), central.stderr())


class CentralLauncher:
    """Starts central processes into one log directory and kills them all on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[CentralProcess] = []

    def start(
        self,
        storage: str,
        extra_args: Sequence[str] = (),
        *,
        name: str | None = None,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> CentralProcess:
        central = _spawn(storage, self.log_dir, extra_args, name)
        self.started.append(central)
        central.wait_ready(timeout_s)
        return central

    def kill_all(self) -> None:
        for central in self.started:
            central.kill()

    def __enter__(self) -> CentralLauncher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill_all()
