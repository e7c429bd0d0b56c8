"""Compare the two sides call by call, and read the table of accepted differences.

Theory of operation: :func:`differences` takes, per scenario, what Miniflare
answered and what edgekv answered at one node (``central`` or ``edge``),
normalises both (:func:`.codec.normalised`) and yields a :class:`Difference`
for every call whose answers are not equal. ``docs/fidelity.md`` lists the
differences that are accepted, one table row each, with the reason; a row's
``through`` cell names the nodes it holds for. :func:`accepted` reads those
rows. The test fails on a difference no row accepts, and on a row that no
longer matches a difference (so the table never says more than is true).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.differential.codec import encode, normalised
from tests.differential.scenarios import Scenario

FIDELITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"
NODES = ("central", "edge")
_ROW = re.compile(
    r"^\|\s*`(?P<scenario>[a-z0-9-]+)`\s*\|\s*(?P<call>\d+)\s*\|\s*(?P<through>[^|]+)\|"
)


@dataclass(frozen=True, order=True)
class Where:
    """One call of one scenario, at one edgekv node."""

    scenario: str
    call: int
    node: str


@dataclass(frozen=True)
class Difference:
    where: Where
    call: str
    workers: Any
    edgekv: Any

    def row(self) -> str:
        """A table row to paste into docs/fidelity.md, the reason left to write."""
        return (
            f"| `{self.where.scenario}` | {self.where.call} | {self.where.node} | `{self.call}` "
            f"| {_shown(self.workers)} | {_shown(self.edgekv)} | REASON |"
        )


def differences(
    scenarios: Sequence[Scenario],
    workers: Sequence[Mapping[str, Any]],
    edgekv: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Iterator[Difference]:
    """Every call where a node's normalised answer is not Miniflare's."""
    for index, scenario in enumerate(scenarios):
        theirs = workers[index]
        for node, answers in edgekv.items():
            ours = answers[index]
            for i, call in enumerate(scenario.calls):
                judge = normalised(theirs["results"][i], theirs["now_s"])
                mine = normalised(ours["results"][i], ours["now_s"])
                if judge != mine:
                    shown = f"{call.op}({_args(call.as_json()['args'])})"
                    yield Difference(Where(scenario.name, i, node), shown, judge, mine)


def accepted(doc: Path = FIDELITY_DOC) -> set[Where]:
    """The differences ``docs/fidelity.md`` accepts: each row's scenario, call and nodes."""
    found: set[Where] = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        row = _ROW.match(line)
        if row is None:
            continue
        through = row["through"].strip()
        nodes = NODES if through == "both" else tuple(n.strip() for n in through.split(","))
        for node in nodes:
            found.add(Where(row["scenario"], int(row["call"]), node))
    return found


def _args(args: list[Any]) -> str:
    return ", ".join(_shown(encode(arg), 40) for arg in args)


def _shown(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=True)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")
