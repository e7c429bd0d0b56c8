"""The README's code blocks, as a user would copy them, and what they should print.

Theory of operation: :func:`blocks` reads the fenced code blocks of a
Markdown file in order. A block preceded by the comment
``<!-- not run: REASON -->`` is shown, not run (measurements, long runs, the
set-up commands themselves). The others are sessions:

* ``console`` — lines starting with ``$ `` are commands (a heredoc's body
  and the lines after a trailing backslash belong to the command); the other
  lines are what the command printed;
* ``python`` — a complete script; the first ``text`` block after it, before
  any other code block, is what it printed;
* ``toml`` — a cluster topology, to be loaded, not run.

:func:`matches` compares what ran with what the README shows, after
:func:`normalise` has replaced what differs from run to run — namespace ids,
addresses, process ids, times and ages, temporary paths — and collapsed
spaces (tables realign when a port has one digit more). A line ``...`` in
the README stands for any number of lines.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$", re.DOTALL)
_HEREDOC = re.compile(r"<<-?\s*'?\"?(?P<word>\w+)'?\"?")

_VARYING = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}:\d+\b"), "<address>"),
    (re.compile(r"(?:/tmp|/var/tmp)/[^\s'\"]+"), "<tmp>"),
    (re.compile(r"\b\d+\.\d+\b"), "<number>"),
    # Process ids, expirations, ports; also RTTs of three digits, which is harmless.
    (re.compile(r"\b\d{3,}\b"), "<number>"),
]


@dataclass
class Command:
    text: str
    printed: list[str] = field(default_factory=list)


@dataclass
class Block:
    language: str
    body: str
    line: int
    not_run: str | None = None
    # For a python block: what it printed, from the text block that follows it.
    printed: list[str] | None = None

    def commands(self) -> list[Command]:
        """A console block's commands, each with the lines it printed."""
        commands: list[Command] = []
        lines = self.body.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            index += 1
            if not line.startswith("$ "):
                if not commands:
                    raise ValueError(f"README line {self.line}: output before any command")
                commands[-1].printed.append(line)
                continue
            text = [line[2:]]
            heredoc = _HEREDOC.search(line)
            while index < len(lines) and (
                text[-1].endswith("\\") or (heredoc is not None and text[-1] != heredoc["word"])
            ):
                text.append(lines[index])
                index += 1
            commands.append(Command("\n".join(text)))
        return commands


def blocks(markdown: str) -> list[Block]:
    found: list[Block] = []
    for match in _FENCE.finditer(markdown):
        before = markdown[: match.start()].rstrip()
        skipped = _NOT_RUN.search(before[-300:])
        language = match["info"].strip().split(" ")[0]
        found.append(
            Block(
                language,
                match["body"],
                line=markdown.count("\n", 0, match.start()) + 1,
                not_run=skipped["reason"] if skipped else None,
            )
        )
    for block, following in itertools.pairwise(found):
        if block.language == "python" and following.language == "text":
            block.printed = following.body.splitlines()
    return found


def normalise(line: str) -> str:
    for pattern, replacement in _VARYING:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def matches(expected: list[str], actual: list[str]) -> bool:
    """Do the lines printed match the README's, ``...`` standing for any lines?"""
    wanted = [normalise(line) for line in expected]
    got = [normalise(line) for line in actual]
    wanted = [line for line in wanted if line or line == "..."]
    got = [line for line in got if line]
    return _match(wanted, got)


def _match(wanted: list[str], got: list[str]) -> bool:
    if not wanted:
        return not got
    if wanted[0] == "...":
        return any(_match(wanted[1:], got[start:]) for start in range(len(got) + 1))
    return bool(got) and wanted[0] == got[0] and _match(wanted[1:], got[1:])
