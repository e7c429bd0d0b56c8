"""edgekv.process with real child processes: ready lines, start failures, stops, parent death."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekv.process import (
    ProcessIdentity,
    StartError,
    alive,
    die_with_parent_argv,
    find_ready,
    format_ready,
    parse_ready,
    spawn,
    stop_processes,
    wait_ready,
    wait_ready_async,
)

PYTHON = sys.executable


def python(code: str) -> list[str]:
    return [PYTHON, "-c", code]


def wait_until_dead(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the ready line ---------------------------------------------------------------------------


def test_a_ready_line_round_trips_with_its_fields() -> None:
    line = format_ready(
        "central",
        "127.0.0.1:7000",
        {"storage": "sqlite:my data/x.db", "revision": 12, "time-scale": 1.0},
    )
    assert line == (
        "edgekv central ready on 127.0.0.1:7000 "
        "storage='sqlite:my data/x.db' revision=12 time-scale=1"
    )
    ready = parse_ready(line)
    assert ready is not None
    assert (ready.kind, ready.address, ready.port) == ("central", "127.0.0.1:7000", 7000)
    assert ready.fields == {"storage": "sqlite:my data/x.db", "revision": "12", "time-scale": "1"}
    bare = parse_ready(format_ready("noop", "[::1]:5"))
    assert bare is not None and (bare.kind, bare.address, bare.fields) == ("noop", "[::1]:5", {})


@pytest.mark.parametrize(
    "line",
    [
        "noop ready on 127.0.0.1:1",
        "edgekv central ready on",
        "edgekv central ready on 127.0.0.1:1 storage",
        "edgekv central ready on 127.0.0.1:1 storage='open",
        "INFO edgekv central ready on 127.0.0.1:1",
    ],
)
def test_what_is_not_a_ready_line(line: str) -> None:
    assert parse_ready(line) is None


def test_find_ready_skips_other_lines_and_waits_for_a_complete_one() -> None:
    log = "2026 INFO opening storage\nedgekv edge ready on 127.0.0.1:7100 region=eu-west\n"
    ready = find_ready(log)
    assert ready is not None and ready.fields == {"region": "eu-west"}
    # Half a line might be half an address: not yet.
    assert find_ready("edgekv edge ready on 127.0.0.1:71") is None


def test_field_names_are_checked() -> None:
    with pytest.raises(ValueError, match="field name"):
        format_ready("edge", "127.0.0.1:1", {"RTT ms": 3})


# -- start, ready, stop -----------------------------------------------------------------------


def test_a_child_is_ready_when_it_prints_its_line(tmp_path: Path) -> None:
    code = (
        "import sys, time; from edgekv.process import format_ready\n"
        "print('starting', file=sys.stderr, flush=True)\n"
        "print(format_ready('noop', '127.0.0.1:9', {'mode': 'ttl'}), flush=True)\n"
        "time.sleep(60)\n"
    )
    child = spawn(python(code), tmp_path / "out", tmp_path / "err", name="noop")
    try:
        (ready,) = wait_ready([child], timeout_s=20)
        assert (ready.kind, ready.address, ready.fields) == ("noop", "127.0.0.1:9", {"mode": "ttl"})
        assert child.address == "127.0.0.1:9" and child.running
        assert child.stderr() == "starting\n"
    finally:
        code_at_stop = child.stop(grace_s=5)
    assert code_at_stop == -signal.SIGTERM and not child.killed


def test_a_child_that_exits_first_is_a_start_error_quoting_stderr(tmp_path: Path) -> None:
    child = spawn(
        python("import sys; sys.exit('edgekv: error: no storage')"), tmp_path / "log", name="bad"
    )
    with pytest.raises(StartError, match=r"bad exited with code 1 before it was ready: edgekv"):
        wait_ready([child], timeout_s=20)


def test_a_child_that_is_too_slow_is_a_start_error(tmp_path: Path) -> None:
    child = spawn(python("import time; time.sleep(60)"), tmp_path / "log", name="slow")
    try:
        with pytest.raises(StartError, match=r"not ready within 0.3 s: slow"):
            wait_ready([child], timeout_s=0.3)
    finally:
        child.kill()


IGNORES_SIGTERM = (
    "import signal, time; from edgekv.process import format_ready\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(format_ready('relay', '127.0.0.1:8'), flush=True)\n"
    "time.sleep(60)\n"
)


async def test_waiting_and_stopping_without_blocking_the_loop(tmp_path: Path) -> None:
    child = spawn(python(IGNORES_SIGTERM), tmp_path / "log", name="stubborn")
    (ready,) = await wait_ready_async([child], timeout_s=20)
    assert ready.kind == "relay"
    started = time.monotonic()
    assert await child.stop_async(grace_s=0.3) == -signal.SIGKILL
    assert child.killed and time.monotonic() - started < 5


def test_a_missing_command_fails_in_the_parent(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-edgekv-command"):
        spawn(["no-such-edgekv-command"], tmp_path / "log")


async def test_stop_processes_stops_what_we_did_not_start_as_a_child(tmp_path: Path) -> None:
    polite = spawn(python("import time; time.sleep(60)"), tmp_path / "a")
    stubborn = spawn(python(IGNORES_SIGTERM), tmp_path / "b", name="stubborn")
    await wait_ready_async([stubborn], timeout_s=20)  # its handler is in place
    processes = [ProcessIdentity.of(polite.pid), ProcessIdentity.of(stubborn.pid)]
    assert None not in processes
    killed = await stop_processes([p for p in processes if p is not None], grace_s=1.0)
    assert killed == [stubborn.pid]
    assert (polite.popen.wait(5), stubborn.popen.wait(5)) == (-signal.SIGTERM, -signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="start times come from /proc")
async def test_a_process_is_known_by_its_start_time_and_command_line(tmp_path: Path) -> None:
    # (Not behind the parent-death prelude, which runs first under another command line.)
    sleeper = spawn(["sleep", "60"], tmp_path / "sleep", die_with_parent=False)
    try:
        deadline = time.monotonic() + 5
        # Just after exec the kernel may show an empty command line for a moment.
        while (identity := ProcessIdentity.of(sleeper.pid)) is not None and not identity.cmdline:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert identity is not None and identity.cmdline == ("sleep", "60")
        assert identity.is_running()
        assert ProcessIdentity.from_json(identity.to_json()) == identity
        for other in (
            ProcessIdentity(sleeper.pid, (identity.start_ticks or 0) + 1, identity.cmdline),
            ProcessIdentity(sleeper.pid, identity.start_ticks, ("sleep", "61")),
        ):
            assert not other.is_running(), "a reused PID is another process"
            assert await stop_processes([other], grace_s=0.1) == []
            assert sleeper.running, "a process that is not the one recorded is never signalled"
        assert await stop_processes([identity], grace_s=5) == []
        assert sleeper.popen.wait(5) == -signal.SIGTERM
        assert not identity.is_running() and ProcessIdentity.of(sleeper.pid) is None
    finally:
        sleeper.kill()


# -- the parent's death -----------------------------------------------------------------------

PARENT = """\
import sys
from pathlib import Path
from edgekv.process import spawn
child = spawn(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    Path(sys.argv[1]),
    die_with_parent=sys.argv[2] == "yes",
)
print(child.pid, flush=True)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    done = subprocess.run(
        [*python(PARENT), str(tmp_path / "log"), "yes"], capture_output=True, text=True, check=True
    )
    assert wait_until_dead(int(done.stdout)), "the child outlived its parent"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_meant_to_outlive_its_parent_does(tmp_path: Path) -> None:
    done = subprocess.run(
        [*python(PARENT), str(tmp_path / "log"), "no"], capture_output=True, text=True, check=True
    )
    pid = int(done.stdout)
    try:
        time.sleep(0.3)
        assert alive(pid)
    finally:
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


def test_a_parent_that_died_before_the_request_means_no_command(tmp_path: Path) -> None:
    """The race: the parent dies between fork and prctl, so no signal would ever come."""
    marker = tmp_path / "ran"
    argv = die_with_parent_argv(["touch", str(marker)], parent_pid=1)  # not our parent
    assert subprocess.run(argv, check=False).returncode == 1
    assert not marker.exists()
    assert subprocess.run(die_with_parent_argv(["touch", str(marker)]), check=False).returncode == 0
    assert marker.exists()
