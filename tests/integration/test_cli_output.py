"""What reaches the user's terminal from any ``edgekv`` command: our lines, and only ours.

Real commands in real processes: gRPC's C core must not add its own log lines
(``add_port.cc``, ``fork_posix.cc``) to stderr, from the command or from the
processes it starts, whatever GRPC_* variables the shell has; and a reader of
stdout that has gone away ends the command quietly.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# A log line of gRPC's C core: "E1130 12:01:20.998491 9534 add_port.cc:83] Failed to ..."
C_CORE_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \w+\.cc:\d+\]", re.MULTILINE)


def environment(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEKV_", "GRPC_"))}
    return {**environ, **extra}


def edgekv(
    *args: str, env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekv", *args],
        capture_output=True, text=True, timeout=timeout_s, env=env,
    )  # fmt: skip


@pytest.fixture
def port_in_use() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    "shell",
    [
        pytest.param({}, id="no-grpc-variables"),
        pytest.param({"GRPC_VERBOSITY": "debug", "GRPC_TRACE": "all"}, id="grpc-debug-in-shell"),
    ],
)
def test_a_failed_bind_is_our_one_line_not_grpcs(shell: dict[str, str], port_in_use: int) -> None:
    done = edgekv(
        "central", "--listen", f"127.0.0.1:{port_in_use}", "--storage", "memory:",
        env=environment(**shell),
    )  # fmt: skip
    assert done.returncode == 1
    assert not C_CORE_LINE.search(done.stderr), done.stderr
    assert done.stderr.splitlines() == [
        f"edgekv: error: cannot listen on 127.0.0.1:{port_in_use}: the port is in use, "
        "or the host is not an address of this machine"
    ]


def test_edgekv_grpc_verbosity_brings_grpcs_lines_back(port_in_use: int) -> None:
    done = edgekv(
        "central", "--listen", f"127.0.0.1:{port_in_use}", "--storage", "memory:",
        env=environment(EDGEKV_GRPC_VERBOSITY="error"),
    )  # fmt: skip
    assert "add_port.cc" in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_fresh_clusters_started_after_grpc_was_used_fork_without_a_word(tmp_path: Path) -> None:
    # The second mode's cluster is forked from a process whose gRPC threads are busy: the
    # C core used to print "fork_posix.cc:71] Other threads are currently calling into
    # gRPC, skipping fork() handlers" once per node.
    done = edgekv(
        "experiment", "modes", "--modes", "ttl,push", "--duration", "200", "--time-scale",
        "100", "--keys", "2", "--out", str(tmp_path), env=environment(), timeout_s=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not C_CORE_LINE.search(done.stderr), done.stderr
    assert "fork_posix" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("bench", "list"), id="bench-list"),
        pytest.param(("--help",), id="help"),
        pytest.param(("experiment", "partition", "--help"), id="subcommand-help"),
        pytest.param(("deploy", "compose"), id="deploy-compose"),
    ],
)
def test_a_reader_that_has_gone_ends_the_command_quietly(command: tuple[str, ...]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgekv", *command],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
            env=environment(),
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr
    # As a process killed by SIGPIPE reports (128 + 13), like `yes | true`; argparse's
    # --help swallows the error itself and exits 0, quietly too.
    assert done.returncode == (0 if "--help" in command else 141)
