"""An experiment's results folder: what ran, what happened, and what it means.

Theory of operation: a run writes ``<out>/<experiment>/<timestamp>/``::

    run.json        experiment, options, seed, edgekv version and git commit, cluster, facts,
                    driver health
    history.jsonl   every operation (see history.py); history.jsonl.gz with --gzip-history
    summary.json    the tables and checks computed from the two files above
    summary.csv     the main table (one more CSV per further table)
    report.md       the same for people who would rather read than look
    *.png           the plots

Only ``run.json`` and ``history.jsonl`` are primary: everything else is
derived from them by the experiment's ``summarise`` and ``draw``, which is how
``edgekv report`` can redraw a folder with no cluster at all. A run is first
written into a hidden ``.partial-…`` folder and renamed into place only when
complete, so a crash or an error never leaves half a result that looks whole.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekv.experiments.records import MalformedRecord, from_record
from edgekv.provenance import describe, edgekv_version
from edgekv.provenance import git_commit as git_commit  # experiments import it from here

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]

    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")

    def as_text(self) -> str:
        cells = [self.columns, *[[_cell(value) for value in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [f"{self.title}:"]
        for row in cells:
            lines.append(
                "  "
                + "  ".join(value.rjust(width) for value, width in zip(row, widths, strict=True))
            )
        return "\n".join(lines)

    def as_markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in self.rows]
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


@dataclass
class Summary:
    experiment: str
    # One sentence that says what the run found.
    headline: str
    tables: list[Table]
    # CheckResult.as_dict() of each check that was run.
    checks: list[dict[str, Any]] = field(default_factory=list)
    # Named numbers, for tests and for comparing runs.
    measures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check passes: none violated, and none the run needed left unexamined."""
        return all(check_passes(check) for check in self.checks)

    def as_text(self) -> str:
        parts = [self.headline, *[table.as_text() for table in self.tables]]
        if self.checks:
            parts.append("checks:\n" + "\n".join(_check_line(check) for check in self.checks))
        parts += self.notes
        return "\n\n".join(parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> Summary:
        raw = json.loads(text)
        raw["tables"] = [Table(**table) for table in raw["tables"]]
        return cls(**raw)


def check_verdict(check: dict[str, Any]) -> str:
    """ok, violated or not examined, for CheckResult.as_dict() of any version."""
    if "verdict" in check:
        return str(check["verdict"])
    if check["violation_count"]:
        return "violated"
    return "ok" if check["checked"] else "not examined"


def check_passes(check: dict[str, Any]) -> bool:
    if "passes" in check:
        return bool(check["passes"])
    return check_verdict(check) == "ok"


def _verdict_text(check: dict[str, Any], violated: str) -> str:
    """How a check's verdict reads: what held, what broke, and what nobody looked at."""
    verdict = check_verdict(check)
    if verdict == "violated":
        return f"{violated} {check['violation_count']} times ({check['checked']} observations)"
    if verdict == "ok":
        return f"ok ({check['checked']} observations)"
    reason = check.get("optional_because")
    if reason:
        return f"not examined, not needed here: {reason}"
    return "not examined, and the run needed it: FAILS"


def _check_line(check: dict[str, Any]) -> str:
    line = f"  {check['name']:<20} {_verdict_text(check, 'VIOLATED')}"
    for violation in check.get("violations", [])[:3]:
        line += f"\n      {violation['message']} (ops {', '.join(map(str, violation['op_ids']))})"
    return line


@dataclass
class RunRecord:
    experiment: str
    options: dict[str, Any]
    seed: int
    # None unless edgekv ran from an edgekv checkout (see edgekv.provenance).
    git_commit: str | None
    started_at: str
    cluster: dict[str, Any] = field(default_factory=dict)
    # What the experiment measured besides the history (counters, link events, ...).
    facts: dict[str, Any] = field(default_factory=dict)
    driver: dict[str, Any] = field(default_factory=dict)
    edgekv_version: str = field(default_factory=edgekv_version)
    # What ran the nodes: "cluster" (processes on the host's clock) or "sim" (virtual time).
    engine: str = "cluster"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """The record of ``text``; MalformedRecord (one line) when it is not one."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise MalformedRecord(f"not JSON ({exc})") from None
        # A run recorded before versions were recorded must not get today's.
        if isinstance(raw, dict):
            raw = {"edgekv_version": "unknown", **raw}
        return from_record(cls, raw)


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


class ResultsFolder:
    """A run's folder, hidden while it is written and renamed into place when complete."""

    def __init__(self, out_dir: Path, experiment: str) -> None:
        self.parent = out_dir / experiment
        self.stamp = utc_stamp()
        # Folders this run creates, deepest first, so a discarded run removes them again.
        self._created = [folder for folder in (self.parent, out_dir) if not folder.exists()]
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            self.partial = self.parent / f".partial-{self.stamp}-{os.getpid()}"
            self.partial.mkdir()
        except OSError as exc:
            raise OSError(f"cannot write results under {out_dir}: {exc.strerror or exc}") from None

    def complete(self) -> Path:
        final = self.parent / self.stamp
        suffix = 1
        while final.exists():
            suffix += 1
            final = self.parent / f"{self.stamp}-{suffix}"
        self.partial.rename(final)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:  # not empty: another run's results are there
                break


def write_derived(run_dir: Path, summary: Summary, plots: list[str]) -> None:
    """summary.json, the CSVs and report.md: everything computed from the primary files."""
    (run_dir / SUMMARY_FILE).write_text(summary.to_json(), encoding="utf-8")
    for index, table in enumerate(summary.tables):
        name = "summary.csv" if index == 0 else f"summary-{table.slug()}.csv"
        with (run_dir / name).open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(table.columns)
            writer.writerows(table.rows)
    record = RunRecord.from_json((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    (run_dir / REPORT_FILE).write_text(markdown_report(record, summary, plots), encoding="utf-8")


def markdown_report(record: RunRecord, summary: Summary, plots: list[str]) -> str:
    options = ", ".join(f"`{name}={value}`" for name, value in record.options.items())
    lines = [
        f"# edgekv experiment `{record.experiment}`",
        "",
        f"Run at {record.started_at} with {describe(record.edgekv_version, record.git_commit)}, "
        f"seed {record.seed}.",
        f"Options: {options}.",
        "",
        f"**{summary.headline}**",
        "",
    ]
    for table in summary.tables:
        lines += [table.as_markdown(), ""]
    if summary.checks:
        lines += ["### Checks", ""]
        for check in summary.checks:
            verdict = _verdict_text(check, "**violated**")
            if check_verdict(check) == "not examined" and not check_passes(check):
                verdict = f"**{verdict}**"
            lines.append(f"- {check['name']}: {verdict}")
            for violation in check.get("violations", [])[:5]:
                lines.append(f"  - {violation['message']} (ops {violation['op_ids']})")
        lines.append("")
    if summary.notes:
        lines += [*summary.notes, ""]
    driver = record.driver
    if driver:
        lines.append(
            f"Driver: {driver.get('started')} operations started of {driver.get('planned')} "
            f"planned, {driver.get('dropped')} dropped; start lag p99 "
            f"{driver.get('lag_p99_s', 0):.3g} s simulated."
        )
        lines.append("")
    lines += [f"![{plot}]({plot})" for plot in plots]
    return "\n".join(lines) + "\n"
