"""A bad central address is one line at start, from every command that takes one.

Real ``edgekv`` processes, started together (each exits at once): ``edge``,
``api``, ``kv`` and ``token`` given an address list with an empty element, an
address without a port, a port out of range. Nothing is listening anywhere:
each must refuse the address itself, before it tries to reach it. And an
edge given replicas that serve different stores refuses them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from central.server import start_central
from edgekv.clock import ManualClock
from tests.support.edge_process import run_edge_to_exit

EDGEKV = [sys.executable, "-m", "edgekv"]

CASES = [
    (
        ["edge", "--listen", "127.0.0.1:0", "--region", "eu-west", "--central", "127.0.0.1:7000,"],
        "bad address list '127.0.0.1:7000,': element 2 is empty",
    ),
    (
        ["api", "--listen", "127.0.0.1:0", "--central", "127.0.0.1:7000,central"],
        "bad address list '127.0.0.1:7000,central': 'central' has no port",
    ),
    (
        ["kv", "namespace", "list", "--central", "127.0.0.1:70000"],
        "bad address '127.0.0.1:70000': port '70000' of '127.0.0.1:70000' is not 1 to 65535",
    ),
    (
        ["token", "list", "--central", "127.0.0.1:7000,,127.0.0.1:7001"],
        "element 2 is empty",
    ),
]


def test_bad_address_specs_are_one_line_at_start() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environ["EDGEKV_STATE_FILE"] = "/nonexistent/edgekv-state.json"

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*EDGEKV, *args], env=environ, capture_output=True, text=True, timeout=60, check=False
        )

    with ThreadPoolExecutor(len(CASES)) as pool:
        done = list(pool.map(run, [args for args, _ in CASES]))
    for (args, words), result in zip(CASES, done, strict=True):
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith("edgekv: error: ") and words in line, (args, line)


async def test_an_edge_refuses_replicas_that_serve_different_stores(tmp_path: Path) -> None:
    """Two centrals on stores of their own (as two pointed at different Redis databases
    would be) given as one list: the edge would answer from either store at random."""
    one = await start_central("127.0.0.1:0", "memory:", ManualClock())
    other = await start_central("127.0.0.1:0", "memory:", ManualClock())
    try:
        spec = f"{one.address},{other.address}"
        # A thread: the centrals answer on this event loop while the edge starts.
        refused = await asyncio.to_thread(run_edge_to_exit, spec, "eu-west", tmp_path)
    finally:
        for central in (one, other):
            await central.stop(grace_s=0)
    assert refused.returncode == 1, refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"edgekv: error: the centrals of --central {spec} serve different "), (
        line
    )
    assert one.storage.store_id in line and other.storage.store_id in line, line


async def test_the_api_node_refuses_replicas_that_serve_different_stores(tmp_path: Path) -> None:
    """As the edge does: a REST API in front of two stores would answer from either."""
    one = await start_central("127.0.0.1:0", "memory:", ManualClock())
    other = await start_central("127.0.0.1:0", "memory:", ManualClock())
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    spec = f"{one.address},{other.address}"
    try:
        refused = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "edgekv", "api", "--listen", "127.0.0.1:0", "--central", spec],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for central in (one, other):
            await central.stop(grace_s=0)
    assert refused.returncode == 1, refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"edgekv: error: the centrals of --central {spec} serve different ")
