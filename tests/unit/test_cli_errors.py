"""The command's one-line errors: what the user can fix is one line, a bug keeps its traceback."""

from __future__ import annotations

import math

import pytest

from edgekv.cli.common import run_command
from edgekv.clock import ScaledClock
from edgekv.core.errors import ErrorKind, UsageError, error
from edgekv.locate import ClusterNotFoundError
from edgekv.topology import TopologyError


@pytest.mark.parametrize(
    "problem",
    [
        UsageError("--keys must be at least 1, got 0"),
        TopologyError("topology.toml: regions: needs at least one [[regions]] table"),
        ClusterNotFoundError("no central store given"),
        error(ErrorKind.KEY_EMPTY),
        FileNotFoundError(2, "No such file or directory"),
    ],
)
def test_what_a_user_can_fix_is_one_line(
    problem: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    async def command() -> int:
        raise problem

    assert run_command(command) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("edgekv: error: ")
    assert captured.err.count("\n") == 1


def test_a_bug_is_not_dressed_up_as_a_users_mistake() -> None:
    async def command() -> int:
        return int("not a number")  # a ValueError nobody meant to raise

    with pytest.raises(ValueError, match="invalid literal"):
        run_command(command)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_a_time_scale_must_be_a_positive_number(scale: float) -> None:
    with pytest.raises(UsageError, match="time scale must be a positive number"):
        ScaledClock(scale)
