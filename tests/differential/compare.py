"""Compare the two sides call by call, and read the table of accepted differences.

Theory of operation: :func:`differences` takes, per scenario, what Miniflare
answered and what edgekv answered at one node (``central`` or ``edge``),
normalises both (:func:`.codec.normalised`) and yields a :class:`Difference`
for every call whose answers are not equal. ``docs/fidelity.md`` lists the
differences that are accepted, one table row each: where (scenario, call, the
nodes it holds for), the two answers shortened for a reader, the reason, and a
*fingerprint* of the two whole answers. :func:`accepted` reads those rows. The
test fails on a difference no row accepts — a new place, or an accepted place
whose answers changed — and on a row that no longer matches a difference, so
the table never says more than is true. :func:`table_rows` writes the rows, with
the reasons the table gives already, for ``python -m tests.differential``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.differential.codec import FAR_DATE, NOW_RELATIVE, alike, encode, normalised
from tests.differential.scenarios import Scenario

FIDELITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"
NODES = ("central", "edge")
_ROW = re.compile(
    r"^\|\s*`(?P<scenario>[a-z0-9-]+)`\s*\|\s*(?P<call>\d+)\s*\|\s*(?P<through>[^|]+)\|"
    r".*\|\s*(?P<reason>[^|]+?)\s*\|\s*`(?P<fingerprint>[0-9a-f]{10})`\s*\|\s*$"
)
NO_REASON = "REASON"


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

    @property
    def fingerprint(self) -> str:
        """Ten hex digits of a hash of both whole answers: a row accepts these answers.
        (Distances from now are left out: they move a little from run to run; and so are
        far dates, shown to 10^5 s: ``now + 2^31 s`` crosses into the next every day.)"""
        both = json.dumps([self.workers, self.edgekv], sort_keys=True, ensure_ascii=True)
        both = FAR_DATE.sub("~far", NOW_RELATIVE.sub("now", both))
        return hashlib.sha256(both.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Accepted:
    fingerprint: str
    reason: str


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
                if not alike(mine, judge):
                    shown = f"{call.op}({_args(call.as_json()['args'])})"
                    yield Difference(Where(scenario.name, i, node), shown, judge, mine)


def accepted(doc: Path = FIDELITY_DOC) -> dict[Where, Accepted]:
    """The differences ``docs/fidelity.md`` accepts, by place, with their answers' print."""
    found: dict[Where, Accepted] = {}
    for line in doc.read_text(encoding="utf-8").splitlines():
        row = _ROW.match(line)
        if row is None:
            continue
        through = row["through"].strip()
        nodes = NODES if through == "both" else tuple(n.strip() for n in through.split(","))
        for node in nodes:
            where = Where(row["scenario"], int(row["call"]), node)
            found[where] = Accepted(row["fingerprint"], row["reason"])
    return found


def unaccepted(found: Iterable[Difference], table: Mapping[Where, Accepted]) -> list[Difference]:
    """The differences no row accepts: a place not listed, or listed with other answers."""
    return [
        difference
        for difference in found
        if difference.where not in table
        or table[difference.where].fingerprint != difference.fingerprint
    ]


def table_rows(found: Sequence[Difference], table: Mapping[Where, Accepted]) -> list[str]:
    """Rows for docs/fidelity.md, one per call (``both`` when the nodes answer alike)."""
    by_call: dict[tuple[str, int, str], list[Difference]] = {}
    for difference in found:
        place = (difference.where.scenario, difference.where.call, difference.fingerprint)
        by_call.setdefault(place, []).append(difference)
    rows = []
    for (scenario, call, fingerprint), same in by_call.items():
        nodes = [difference.where.node for difference in same]
        through = "both" if sorted(nodes) == sorted(NODES) else ", ".join(nodes)
        first = same[0]
        known = table.get(first.where)
        reason = known.reason if known is not None else NO_REASON
        rows.append(
            f"| `{scenario}` | {call} | {through} | `{first.call}` | {_shown(first.workers)} "
            f"| {_shown(first.edgekv)} | {reason} | `{fingerprint}` |"
        )
    return rows


def _args(args: list[Any]) -> str:
    return ", ".join(_shown(encode(arg), 40) for arg in args)


def _shown(value: Any, limit: int = 110) -> str:
    text = json.dumps(value, ensure_ascii=True)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")
