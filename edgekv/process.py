"""Child processes: started so they cannot outlive us, ready when they say so, stopped by PID.

Theory of operation, the one way edgekv (the launcher, the benchmarks, the
tests) runs a node or any other server:

* **Start.** :func:`spawn` runs ``argv`` with stdout and stderr in files,
  never pipes (a child that fills a pipe nobody reads blocks forever), stdin
  from ``/dev/null``, in a session of its own (a Ctrl-C at the terminal
  reaches only the parent, which then stops its children in order).
* **Die with the parent.** On Linux the child is started through a few lines
  of Python that ask the kernel for ``PR_SET_PDEATHSIG`` (SIGTERM when the
  parent dies) and then ``exec`` the real command, which keeps both the PID
  and the setting. The parent may have died between the fork and that
  request, when no signal would ever come, so the prelude first checks that
  its parent is still the process that started it, and exits if not. This
  runs after ``exec`` of a fresh interpreter rather than as ``preexec_fn``,
  which is unsafe in a process with threads (gRPC's). The kernel sends the
  signal when the *thread* that started the child ends, so start children
  from a thread that lives as long as they should.
* **Ready.** A server says it serves by printing one line to stdout,
  ``edgekv KIND ready on ADDRESS NAME=VALUE ...``: :func:`format_ready`
  writes it (``edgekv central``, ``edgekv edge`` and the benchmarks' no-op
  server all print through it) and :func:`parse_ready` reads it, for every
  reader. :func:`wait_ready` (or :func:`wait_ready_async`) polls the children's
  stdout files until each has printed its line, and fails at once, quoting
  stderr, when one exits first.
* **Wrapped.** What runs as a child (a launcher's node, a test's node) mixes in
  :class:`RunsAsChild` rather than forwarding the child's address and PID itself.
* **Stop.** :meth:`Child.stop` sends SIGTERM, waits ``grace_s``, then
  SIGKILLs; :func:`stop_processes` does the same for processes that are not our
  children (``edgekv down`` stops a detached cluster by the processes it
  recorded). Those are named by a :class:`ProcessIdentity` — PID, start time and
  command line — and signalled only while the PID is still that process, so a
  stale record never signals whoever has the PID now.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgekv.private_files import open_private
from edgekv.redis_urls import redact

POLL_S = 0.02
DEFAULT_GRACE_S = 10.0

# argv: PARENT_PID COMMAND ARGS...; runs before COMMAND, then becomes it.
_PRELUDE = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent died before the prctl took effect: no signal would come
os.execvp(sys.argv[2], sys.argv[2:])
"""

_READY = re.compile(r"^edgekv (?P<kind>[a-z][a-z0-9-]*) ready on (?P<address>\S+)(?P<rest>.*)$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class StartError(OSError):
    """A child did not print its ready line: it exited first, or took too long."""


# -- the ready line -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyLine:
    """``edgekv KIND ready on ADDRESS NAME=VALUE ...``, parsed."""

    kind: str
    address: str
    fields: dict[str, str]
    line: str

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


def format_ready(kind: str, address: str, fields: Mapping[str, str | float] | None = None) -> str:
    """The ready line; numbers as ``%g``, a value with spaces shell-quoted, a Redis
    URL's password as ``***``."""
    parts = [f"edgekv {kind} ready on {address}"]
    for name, value in (fields or {}).items():
        if not _FIELD_NAME.match(name):
            raise ValueError(f"bad ready-line field name {name!r}")
        text = f"{value:g}" if isinstance(value, float | int) else redact(value)
        parts.append(f"{name}={shlex.quote(text) if text else ''}")
    line = " ".join(parts)
    if parse_ready(line) is None:
        raise ValueError(f"not a ready line: {line!r}")
    return line


def parse_ready(line: str) -> ReadyLine | None:
    """The ready line ``line`` is, or None when it is not one."""
    match = _READY.match(line.rstrip("\n"))
    if match is None:
        return None
    try:
        words = shlex.split(match["rest"])
    except ValueError:
        return None
    fields = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not _FIELD_NAME.match(name):
            return None
        fields[name] = value
    return ReadyLine(match["kind"], match["address"], fields, match[0])


def find_ready(output: str) -> ReadyLine | None:
    """The first ready line among the complete lines of ``output`` (a log may hold others)."""
    complete = output[: output.rfind("\n") + 1]
    for line in complete.splitlines():
        ready = parse_ready(line)
        if ready is not None:
            return ready
    return None


# -- children -------------------------------------------------------------------------------


@dataclass
class Child:
    """A process :func:`spawn` started, its output files, and its ready line once printed."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    ready: ReadyLine | None = None
    # True when stop() had to SIGKILL it after the grace period.
    killed: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def address(self) -> str:
        return self.ready.address if self.ready else ""

    def stdout(self) -> str:
        return _read(self.stdout_path)

    def stderr(self) -> str:
        return _read(self.stderr_path)

    def tail(self, lines: int = 5) -> str:
        """The last lines of stderr, on one line (stdout when both go to one file)."""
        text = self.stderr().strip()
        return " | ".join(line.strip() for line in text.splitlines()[-lines:])

    def poll_ready(self) -> ReadyLine | None:
        """The ready line once printed; raises :class:`StartError` if the child exited first."""
        if self.ready is None:
            self.ready = find_ready(self.stdout())
        if self.ready is None and self.popen.poll() is not None:
            raise StartError(
                redact(
                    f"{self.name} exited with code {self.popen.returncode} before it was "
                    f"ready: {self.tail() or 'no output'} (command: {shlex.join(self.argv)}; "
                    f"stderr in {self.stderr_path})"
                )
            )
        return self.ready

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL (a crash: nothing is flushed or closed) and wait; the exit code."""
        self.signal(signal.SIGKILL)
        return self.popen.wait()

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> int:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL; the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.killed = True
            return self.kill()

    async def stop_async(self, grace_s: float = DEFAULT_GRACE_S) -> int:
        """:meth:`stop` without blocking the event loop."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        # A Popen's exit has no event to await (and asyncio's child watcher is not ours): poll.
        while self.popen.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        if self.popen.poll() is None:
            self.killed = True
            return self.kill()
        return self.popen.returncode


class RunsAsChild:
    """Mixed into what runs as one :class:`Child` (a cluster's node, a test's node):
    its address, PID and exit code are the child's."""

    child: Child

    @property
    def address(self) -> str:
        return self.child.address

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    @property
    def running(self) -> bool:
        return self.child.running


def spawn(
    argv: Sequence[str],
    stdout_path: Path,
    stderr_path: Path | None = None,
    *,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> Child:
    """Start ``argv`` (no wait) with its outputs in files; stderr joins stdout when not given.

    ``env`` replaces the environment (default: ours); ``PYTHONUNBUFFERED=1`` is
    added so a Python child's output reaches its files as it is written.
    ``die_with_parent=False`` is for a child meant to outlive us (a detached
    supervisor). A command that cannot be found raises FileNotFoundError here.
    """
    argv = list(argv)
    if shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
        raise FileNotFoundError(f"no such command: {argv[0]}")
    stderr_path = stderr_path or stdout_path
    command = die_with_parent_argv(argv) if die_with_parent and sys.platform == "linux" else argv
    environment = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    with contextlib.ExitStack() as files:
        # Logs may quote anything a node was told: readable by their owner only.
        stdout = files.enter_context(os.fdopen(open_private(stdout_path), "wb"))
        joined = stderr_path == stdout_path
        stderr = (
            stdout if joined else files.enter_context(os.fdopen(open_private(stderr_path), "wb"))
        )
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=environment,
            cwd=cwd,
            start_new_session=True,
        )
    return Child(name or Path(argv[0]).name, argv, popen, stdout_path, stderr_path)


def die_with_parent_argv(argv: Sequence[str], parent_pid: int | None = None) -> list[str]:
    """``argv`` behind the prelude that asks for SIGTERM when ``parent_pid`` (us) dies."""
    parent = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-I", "-S", "-c", _PRELUDE, str(parent), *argv]


def wait_ready(children: Sequence[Child], timeout_s: float) -> list[ReadyLine]:
    """Block until every child printed its ready line; their lines, in order."""
    deadline = time.monotonic() + timeout_s
    while _waiting(children, deadline, timeout_s):
        time.sleep(POLL_S)
    return [child.ready for child in children if child.ready is not None]


async def wait_ready_async(children: Sequence[Child], timeout_s: float) -> list[ReadyLine]:
    """:func:`wait_ready` without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    # A line written to a file has no event to await: poll, as the blocking wait does.
    while _waiting(children, deadline, timeout_s):  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)
    return [child.ready for child in children if child.ready is not None]


def _waiting(children: Sequence[Child], deadline: float, timeout_s: float) -> bool:
    """True while some child has not printed its line; raise when one exited or time is up."""
    waiting = [child for child in children if child.poll_ready() is None]
    if waiting and time.monotonic() > deadline:
        names = ", ".join(child.name for child in waiting)
        raise StartError(f"not ready within {timeout_s:g} s: {names}")
    return bool(waiting)


# -- processes that are not our children ----------------------------------------------------


@dataclass(frozen=True)
class ProcessIdentity:
    """Which process a PID named when it was recorded, so that it is known again.

    A PID alone is not a process: once the process exits, the kernel may give
    its number to another. Its start time (``/proc/PID/stat``, field 22: clock
    ticks after boot) and its command line (``/proc/PID/cmdline``) are not
    reused with it. Where there is no ``/proc`` (not Linux) both are unknown
    (None and ``()``), and only the PID can be checked.
    """

    pid: int
    start_ticks: int | None
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The process running as ``pid`` now; None when there is none (or a zombie)."""
        if not _PROC.is_dir():
            return cls(pid, None, ()) if alive(pid) else None
        try:
            stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
            cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses; fields
        # after its last ")" start with the third, STATE.
        fields = stat.rpartition(")")[2].split()
        if len(fields) < 20 or fields[0] == "Z":
            return None
        words = cmdline.decode("utf-8", "surrogateescape").split("\0")
        return cls(pid, int(fields[19]), tuple(words[:-1] if words[-1] == "" else words))

    def is_running(self) -> bool:
        """Whether ``pid`` is still this process (not exited, not another with its number)."""
        return ProcessIdentity.of(self.pid) == self

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "started_ticks": self.start_ticks, "cmdline": list(self.cmdline)}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> ProcessIdentity | None:
        """The identity recorded in ``raw``; None when it records a PID alone (a file made
        by hand, or by an edgekv before identities were recorded)."""
        pid, started, cmdline = raw.get("pid"), raw.get("started_ticks"), raw.get("cmdline")
        if not isinstance(pid, int) or not isinstance(cmdline, list):
            return None
        if started is not None and not isinstance(started, int):
            return None
        return cls(pid, started, tuple(map(str, cmdline)))


_PROC = Path("/proc")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a process of another user counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited but not yet reaped (Linux; elsewhere: unknown, so no)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


async def stop_processes(
    processes: Sequence[ProcessIdentity],
    grace_s: float,
    terminate: Sequence[ProcessIdentity] | None = None,
) -> list[int]:
    """SIGTERM ``terminate`` (default: all of ``processes``), wait up to ``grace_s`` for
    all of ``processes`` to exit, then SIGKILL what is left; the PIDs that had to be killed.

    For processes we did not start, which have no exit to wait on: they are polled. A
    process is signalled only while its PID is still that process, checked just before
    each signal: a PID that was reused meanwhile belongs to someone else.
    """
    for process in processes if terminate is None else terminate:
        _send_if_running(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.is_running() for p in processes):  # noqa: ASYNC110
        await asyncio.sleep(POLL_S * 5)
    killed = [process for process in processes if process.is_running()]
    for process in killed:
        _send_if_running(process, signal.SIGKILL)
    return [process.pid for process in killed]


def _send_if_running(process: ProcessIdentity, signum: int) -> None:
    if process.is_running():
        _send(process.pid, signum)


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
