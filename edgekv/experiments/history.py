"""The history of an experiment: every operation it made, one JSON object a line.

Theory of operation: the workload driver records an :class:`Op` for each read
and write it sends — who sent it (session, region, node), what (key, setting),
when (invoke and completion, in simulated seconds since the run began, on the
one clock the whole cluster shares), and what came back (outcome, revision,
cache status and age). Checkers and plots are pure functions of this list, so
a saved ``history.jsonl`` can be re-checked and re-drawn without a cluster.

``central_revision`` of a read is the newest revision of its key committed at
central when the read was invoked. The driver is the only writer during an
experiment, so :func:`annotate_central_revisions` derives it from the writes'
commit times (central's own clock) once the run is over. Writes whose outcome
is unknown are left out: whether they committed is exactly what is unknown.
"""

from __future__ import annotations

import bisect
import collections
import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Literal

from edgekv.experiments.records import MalformedRecord, from_record

Kind = Literal["read", "write"]
Outcome = Literal["ok", "failed", "unknown"]


@dataclass(slots=True)
class Op:
    """One operation of a history. Times are simulated seconds since the run began."""

    id: int
    kind: Kind
    session: str
    region: str
    # The edge node that served the operation, or "central" when sent to central.
    node: str
    key: str
    # The setting (e.g. "ttl=60") the operation belongs to, for experiments that sweep.
    group: str
    # When the workload meant to send it; invoke_s - scheduled_s is the driver's lag.
    scheduled_s: float
    invoke_s: float
    complete_s: float
    outcome: Outcome
    # A read: the revision it returned (0 = "not found"); a write: the revision it
    # created. None when the operation failed or its outcome is unknown.
    revision: int | None = None
    # A write that succeeded: central's commit time (simulated, since the run began).
    commit_s: float | None = None
    # A read at an edge: HIT, MISS, EXPIRED, STALE or REVALIDATED, and the copy's age.
    cache_status: str | None = None
    age_s: float | None = None
    cache_ttl_s: float | None = None
    # A read: the newest revision of the key committed at central when it was invoked.
    central_revision: int | None = None
    value_bytes: int = 0
    # A failed or unknown operation: the error kind and message.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def is_read(self) -> bool:
        return self.kind == "read"

    @property
    def is_write(self) -> bool:
        return self.kind == "write"

    @property
    def acknowledged(self) -> bool:
        """A write that succeeded, with its revision and central's commit time."""
        return self.is_write and self.ok and self.revision is not None and self.commit_s is not None

    def to_json(self) -> str:
        # Every field is a scalar: read them directly (asdict deep-copies each one, and a
        # simulated day writes tens of millions of lines).
        record = {name: value for name in OP_FIELDS if (value := getattr(self, name)) is not None}
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Op:
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in record.items() if name in known})


OP_FIELDS = tuple(field.name for field in fields(Op))


# A history's file in a results folder: plain, or gzip-compressed (``--gzip-history``).
HISTORY_NAMES = ("history.jsonl", "history.jsonl.gz")


class HistoryWriter:
    """Writes operations to a history file as they are handed on, one line each.

    A ``.gz`` path is compressed with a fixed header (no file name, modification
    time 0), so that the same operations make the same bytes on any machine.
    ``count`` is how many operations were written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._raw = path.open("wb")
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            if path.suffix == ".gz"
            else None
        )
        self._write = self._raw.write if self._gzip is None else self._gzip.write

    def append(self, op: Op) -> None:
        self._write(op.to_json().encode() + b"\n")  # one write: gzip's are not buffered
        self.count += 1

    def close(self) -> None:
        try:
            if self._gzip is not None:
                self._gzip.close()  # its trailer, into the file closed below
        finally:
            self._raw.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_history(path: Path, ops: Iterable[Op]) -> None:
    with HistoryWriter(path) as history:
        for op in ops:
            history.append(op)


def history_file(folder: Path) -> Path | None:
    """The history file of a results folder (plain or compressed), None if it has none."""
    for name in HISTORY_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


class History:
    """The operations of a history file, read afresh on every iteration.

    A summary can take several passes over a history too large to hold.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Op]:
        number = 0
        try:
            with self._lines() as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        yield from_record(Op, json.loads(line))
                    except (ValueError, MalformedRecord) as exc:
                        raise MalformedRecord(
                            f"{self.path}, line {number}: not an operation ({exc})"
                        ) from None
        except (EOFError, OSError, zlib.error) as exc:  # a truncated or corrupt .gz
            raise MalformedRecord(
                f"{self.path}: unreadable after line {number} ({exc or type(exc).__name__})"
            ) from None

    def _lines(self) -> IO[str]:
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "rt", encoding="utf-8")
        return self.path.open(encoding="utf-8")


def read_history(path: Path) -> list[Op]:
    """The ops of a history file; MalformedRecord (one line, naming the line) when a line
    is not an op."""
    return list(History(path))


@dataclass(frozen=True, slots=True)
class KeyWrites:
    """The acknowledged writes of one key, in commit order."""

    commit_s: list[float]
    revisions: list[int]

    def newest_at(self, time_s: float) -> int:
        """The newest revision committed at or before ``time_s`` (0 if none)."""
        index = bisect.bisect_right(self.commit_s, time_s)
        return self.revisions[index - 1] if index else 0

    def superseded_at(self, revision: int) -> float | None:
        """When the first write newer than ``revision`` committed (None if none did)."""
        index = bisect.bisect_right(self.revisions, revision)
        return self.commit_s[index] if index < len(self.revisions) else None

    def between(self, older: int, newer: int) -> int:
        """How many writes have a revision in (older, newer]."""
        return bisect.bisect_right(self.revisions, newer) - bisect.bisect_right(
            self.revisions, older
        )


class KeyLogs:
    """The acknowledged writes of every (group, key), kept sorted as they come.

    Writes may be handed on out of revision order (two in flight at once), so
    each is inserted in place; a history's writes are few beside its reads.
    """

    def __init__(self) -> None:
        self._logs: dict[tuple[str, str], KeyWrites] = {}

    @classmethod
    def of(cls, ops: Iterable[Op]) -> KeyLogs:
        logs = cls()
        for op in ops:
            logs.add(op)
        return logs

    def add(self, op: Op) -> None:
        """Keep ``op`` if it is an acknowledged write; anything else is passed over."""
        revision, commit_s = op.revision, op.commit_s
        if not op.acknowledged or revision is None or commit_s is None:  # None: for mypy
            return
        log = self._logs.get((op.group, op.key))
        if log is None:
            log = self._logs[(op.group, op.key)] = KeyWrites([], [])
        at = bisect.bisect(log.revisions, revision)
        log.revisions.insert(at, revision)
        log.commit_s.insert(at, commit_s)

    def get(self, group: str, key: str) -> KeyWrites:
        """The key's writes so far (none: an empty log)."""
        return self._logs.get((group, key), NO_WRITES)

    def items(self) -> Iterator[tuple[tuple[str, str], KeyWrites]]:
        return iter(self._logs.items())


NO_WRITES = KeyWrites([], [])


def annotate_central_revisions(ops: list[Op]) -> None:
    """Fill in each read's ``central_revision`` from the acknowledged writes."""
    logs = KeyLogs.of(ops)
    for op in ops:
        if op.is_read:
            op.central_revision = logs.get(op.group, op.key).newest_at(op.invoke_s)


class InOrder:
    """Completed operations handed on in id order, each read with its ``central_revision``.

    The driver starts operations in time order, numbering them as it goes, and
    they complete in any order. An operation is handed to ``release`` once
    every operation numbered before it has been, and no write invoked at or
    before it is still in flight: a write commits after it is invoked, so by
    then every write that can have committed by the time the read was invoked
    is known, and :func:`annotate_central_revisions`'s answer is final without
    the rest of the history. What waits is what completes while the oldest
    operation still in flight is out (at most its deadline's worth).
    """

    def __init__(self, release: Callable[[Op], None], first_id: int = 0) -> None:
        self._release = release
        self._next_id = first_id
        self._completed: dict[int, Op] = {}
        # Writes in flight, in the order they were started: (id, invoke_s).
        self._writes_in_flight: collections.deque[tuple[int, float]] = collections.deque()
        self._writes_done: set[int] = set()
        self._logs = KeyLogs()

    def started(self, op: Op) -> None:
        if op.is_write:
            self._writes_in_flight.append((op.id, op.invoke_s))

    def completed(self, op: Op) -> None:
        self._completed[op.id] = op
        if op.is_write:
            self._writes_done.add(op.id)
            while self._writes_in_flight and self._writes_in_flight[0][0] in self._writes_done:
                self._writes_done.discard(self._writes_in_flight.popleft()[0])
        self._hand_on()

    def _hand_on(self) -> None:
        while (op := self._completed.get(self._next_id)) is not None:
            if self._writes_in_flight and self._writes_in_flight[0][1] <= op.invoke_s:
                return  # a write that may commit before this op's invoke time is not back
            del self._completed[self._next_id]
            self._next_id += 1
            self._annotate(op)
            self._release(op)

    def _annotate(self, op: Op) -> None:
        if op.is_write:
            self._logs.add(op)
        else:
            op.central_revision = self._logs.get(op.group, op.key).newest_at(op.invoke_s)

    @property
    def waiting(self) -> int:
        """Operations complete but not yet handed on."""
        return len(self._completed)


def reads(ops: Iterable[Op]) -> Iterator[Op]:
    return (op for op in ops if op.is_read)
