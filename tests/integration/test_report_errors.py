"""``edgekv report`` on a folder that is not what an experiment wrote: one line, no traceback.

A results folder may be truncated, edited, or written by another edgekv; the
command names the file (and the line of a history) and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgekv.experiments.history import Op
from edgekv.experiments.results import RunRecord

RUN = RunRecord("visibility", {"cache_ttl": 30}, seed=1, git_commit=None, started_at="now")
OP = Op(0, "read", "s", "eu-west", "eu-west-1", "k", "g", 0.0, 0.1, 0.2, "ok")


def report(folder: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    return subprocess.run(
        [sys.executable, "-m", "edgekv", "report", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


def run_json(**changes: Any) -> str:
    raw = {**json.loads(RUN.to_json()), **changes}
    return json.dumps({name: value for name, value in raw.items() if value is not ...})


def history(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def op_json(**changes: Any) -> str:
    raw = {**json.loads(OP.to_json()), **changes}
    return json.dumps({name: value for name, value in raw.items() if value is not ...})


Folder = Callable[[Path], None]


def files(run: str, ops: str) -> Folder:
    def write(folder: Path) -> None:
        (folder / "run.json").write_text(run)
        (folder / "history.jsonl").write_text(ops)

    return write


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (files("{", history(op_json())), "run.json is not an experiment's run.json"),
        (files("[1]", history(op_json())), "run.json is not an experiment's run.json"),
        (files(run_json(options=...), history(op_json())), "field 'options' is missing"),
        (files(run_json(seed="3"), history(op_json())), "field 'seed' has an unexpected value"),
        (files(run_json(options=[]), history(op_json())), "field 'options' has an unexpected"),
        (files(run_json(), history(op_json(), "garbage")), "history.jsonl, line 2: not an op"),
        (files(run_json(), history(op_json(id=...))), "line 1: not an operation (field 'id' is"),
        (files(run_json(), history(op_json(kind="teleport"))), "field 'kind' has an unexpected"),
        (files(run_json(), history(op_json(invoke_s="soon"))), "field 'invoke_s' has an"),
        (files(run_json(), history("[]")), "line 1: not an operation (expected a JSON object"),
    ],
    ids=[
        "run-not-json",
        "run-not-object",
        "run-missing-field",
        "run-wrong-type",
        "run-options-not-object",
        "history-garbage-line",
        "history-missing-field",
        "history-unknown-kind",
        "history-wrong-type",
        "history-not-object",
    ],
)
def test_a_malformed_results_folder_is_one_line(tmp_path: Path, make: Folder, said: str) -> None:
    make(tmp_path)
    done = report(tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"edgekv: error: {tmp_path}/"), done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert said in done.stderr
