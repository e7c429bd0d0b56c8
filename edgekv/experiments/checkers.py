"""Checkers: the consistency properties of a history, as pure functions.

Theory of operation: a checker takes the :class:`~.history.Op` s an
experiment recorded and returns what it found — a :class:`CheckResult` of
:class:`Violation` s for the properties (read-your-writes, monotonic reads,
convergence, Workers KV's visibility promise) and plain numbers for the
measurements (:func:`staleness`, :func:`visibility`). Three of them are also
single passes (:class:`StalenessTally`, :class:`ReadYourWrites`,
:class:`MonotonicReads`) for a history too large to hold, handed the
operations of one run in history (invocation) order; the list-taking
functions feed them. Nothing here does I/O or reads a clock, and the one
random draw (:class:`Sample`'s reservoir) is seeded, so a saved history
re-checks the same.

Only what the driver saw counts: a read is an observation when its outcome is
``ok`` (it then has a revision); a write is acknowledged when it is ``ok`` with
a revision and central's commit time. Failed writes did not happen and writes
of unknown outcome may or may not have, so neither defines what a read must
return. Everything is grouped by ``(group, key)`` as :mod:`.history` does.

Revisions are store-wide and grow with commit time, so a key's acknowledged
writes sorted by revision are also sorted by commit time; the checkers bisect
over those lists (:class:`~.history.KeyWrites`) and sweep sorted reads, so a
history of n operations costs O(n log n), never reads times writes. Bounds that are
computed (a commit time plus an allowance) are compared with a nanosecond of
slack, so a read invoked exactly at the bound counts despite float rounding.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import sys
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from edgekv.experiments.history import KeyLogs, KeyWrites, Op

GroupKey = tuple[str, str]
K = TypeVar("K", bound=Hashable)

# The cacheTtl Workers KV applies when a reader gives none.
DEFAULT_CACHE_TTL_S = 60.0
# Cache statuses of reads that went to central rather than answering from the edge's copy.
UPSTREAM_STATUSES = frozenset({"MISS", "EXPIRED", "REVALIDATED"})
# Slack when comparing a recorded time with a computed bound (float rounding, not latency).
_TOLERANCE_S = 1e-9
# Stale reads whose time and revisions behind are all kept; past it, a uniform sample.
SAMPLE_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of a property, with the operations that show it."""

    check: str
    message: str
    op_ids: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "op_ids": list(self.op_ids)}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one checker found: how many observations it examined and what broke.

    A check that examined nothing showed nothing: it is ``not examined``, never
    ``ok``. Whether that fails a run is the experiment's call — by default it
    does, since a run that cannot show a property it was meant to show has not
    passed; :meth:`optional` marks a check the run may lack data for, with why.
    """

    name: str
    checked: int
    violations: tuple[Violation, ...]
    # Why the run may find nothing to examine here; None when it needs the check.
    optional_because: str | None = None

    @property
    def examined(self) -> bool:
        return self.checked > 0

    @property
    def ok(self) -> bool:
        """Examined, and held for everything examined."""
        return self.examined and not self.violations

    @property
    def verdict(self) -> str:
        if self.violations:
            return "violated"
        return "ok" if self.examined else "not examined"

    @property
    def passes(self) -> bool:
        """Whether the run passes on this check: held, and examined unless optional."""
        return not self.violations and (self.examined or self.optional_because is not None)

    def optional(self, because: str) -> CheckResult:
        return replace(self, optional_because=because)

    def as_dict(self, max_violations: int = 20) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "ok": self.ok,
            "passes": self.passes,
            "checked": self.checked,
            "optional_because": self.optional_because,
            "violation_count": len(self.violations),
            "violations": [v.as_dict() for v in self.violations[:max_violations]],
        }


# --- Helpers -----------------------------------------------------------------------------------


def _is_observation(op: Op) -> bool:
    return op.is_read and op.ok and op.revision is not None


def _revision(op: Op) -> int:
    if op.revision is None:
        raise ValueError(f"operation #{op.id} has no revision")
    return op.revision


def _commit_s(op: Op) -> float:
    if op.commit_s is None:
        raise ValueError(f"operation #{op.id} has no commit time")
    return op.commit_s


def _reader_ttl_s(op: Op) -> float:
    return DEFAULT_CACHE_TTL_S if op.cache_ttl_s is None else op.cache_ttl_s


def _at(time_s: float) -> str:
    return f"t={time_s:.3f}s"


def _grouped(
    ops: Iterable[Op], keep: Callable[[Op], bool], by: Callable[[Op], K]
) -> dict[K, list[Op]]:
    groups: dict[K, list[Op]] = {}
    for op in ops:
        if keep(op):
            groups.setdefault(by(op), []).append(op)
    return groups


def _group_key(op: Op) -> GroupKey:
    return (op.group, op.key)


@dataclass(frozen=True, slots=True)
class _KeyLog:
    """A key's acknowledged writes sorted by revision, and their times for bisecting."""

    writes: list[Op]
    index: KeyWrites


def _key_logs(ops: Iterable[Op]) -> dict[GroupKey, _KeyLog]:
    logs = {}
    for group_key, writes in _grouped(ops, lambda op: op.acknowledged, _group_key).items():
        writes.sort(key=lambda w: (_revision(w), w.id))
        index = KeyWrites([_commit_s(w) for w in writes], [_revision(w) for w in writes])
        logs[group_key] = _KeyLog(writes, index)
    return logs


def _observations(ops: Sequence[Op]) -> Iterator[tuple[Op, _KeyLog | None]]:
    """Each read that returned a revision, with its (group, key)'s log (None: never written)."""
    logs = _key_logs(ops)
    for op in ops:
        if _is_observation(op):
            yield op, logs.get(_group_key(op))


def _earlier(a: Op, b: Op | None) -> bool:
    """Whether ``a`` completed before ``b`` (ties by id); anything beats None."""
    return b is None or (a.complete_s, a.id) < (b.complete_s, b.id)


# --- Percentiles -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between closest ranks.

    The same as numpy's default ("linear") method.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = q / 100.0 * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


# --- Staleness ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Staleness:
    """How far behind central the reads were (reads with a known central revision)."""

    reads: int
    stale: int
    hits: int
    upstream: int
    time_behind_s: tuple[float, ...]
    revisions_behind: tuple[int, ...]

    # Fractions of no reads are unknown, not 0: None.
    @property
    def stale_fraction(self) -> float | None:
        return self.stale / self.reads if self.reads else None

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / self.reads if self.reads else None


def _in_scope(
    op: Op,
    group: str | None,
    region: str | Collection[str] | None,
    window_s: tuple[float, float] | None,
) -> bool:
    if group is not None and op.group != group:
        return False
    if isinstance(region, str) and op.region != region:
        return False
    if region is not None and not isinstance(region, str) and op.region not in region:
        return False
    return window_s is None or window_s[0] <= op.invoke_s < window_s[1]


class Sample:
    """Every value added while there are at most ``limit``; past that, a uniform sample of
    ``limit`` of them (reservoir sampling, seeded: the same values give the same sample),
    so that a day's millions of stale reads keep a distribution without being held."""

    def __init__(self, limit: int = SAMPLE_LIMIT) -> None:
        self.limit = limit
        self.values: list[float] = []
        self.seen = 0
        self._rng = random.Random(0)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.limit:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.limit:
            self.values[slot] = value


class StalenessTally:
    """:func:`staleness` as one pass: hand it every operation in history order.

    ``logs`` holds the acknowledged writes seen so far (whoever adds them):
    a read's central revision was committed before it was invoked, by a write
    invoked before it, so that write is in the logs by the time the read is.
    """

    def __init__(
        self,
        logs: KeyLogs,
        *,
        group: str | None = None,
        region: str | Collection[str] | None = None,
        window_s: tuple[float, float] | None = None,
    ) -> None:
        self.logs = logs
        # Several regions as a set: looked up once per read of a history of millions.
        self.region = region if region is None or isinstance(region, str) else frozenset(region)
        self.group, self.window_s = group, window_s
        self.reads = self.hits = self.upstream = 0
        self.time_behind_s = Sample()
        self.revisions_behind = Sample()

    def add(self, op: Op) -> None:
        if not _is_observation(op) or op.central_revision is None:
            return
        if not _in_scope(op, self.group, self.region, self.window_s):
            return
        self.reads += 1
        self.hits += op.cache_status == "HIT"
        self.upstream += op.cache_status in UPSTREAM_STATUSES
        returned = _revision(op)
        if returned >= op.central_revision:
            return
        log = self.logs.get(op.group, op.key)
        self.revisions_behind.add(log.between(returned, op.central_revision))
        superseded_s = log.superseded_at(returned)
        if superseded_s is not None:
            self.time_behind_s.add(op.invoke_s - superseded_s)

    def result(self) -> Staleness:
        return Staleness(
            reads=self.reads,
            stale=self.revisions_behind.seen,
            hits=self.hits,
            upstream=self.upstream,
            time_behind_s=tuple(self.time_behind_s.values),
            revisions_behind=tuple(int(n) for n in self.revisions_behind.values),
        )


def staleness(
    ops: Iterable[Op],
    *,
    group: str | None = None,
    region: str | Collection[str] | None = None,
    window_s: tuple[float, float] | None = None,
) -> Staleness:
    """Count stale reads and measure how far behind each was.

    Reads are the ok reads with ``central_revision`` set (see
    :func:`~.history.annotate_central_revisions`), filtered by group, region and
    ``invoke_s`` in ``[start, end)``; ``region`` is one region or several. Writes
    are taken from the whole history, whatever the filters. A stale read's time
    behind is measured from the commit of the first acknowledged write newer than
    what it returned; if there is none (a central revision not from the
    acknowledged writes) the read counts as stale but adds no time behind. Past
    :data:`SAMPLE_LIMIT` stale reads, the two lists are a uniform sample of them.
    """
    held = list(ops)
    tally = StalenessTally(KeyLogs.of(held), group=group, region=region, window_s=window_s)
    for op in held:
        tally.add(op)
    return tally.result()


def revisions_behind(ops: Sequence[Op]) -> dict[int, int]:
    """Operation id → how many acknowledged writes of its key a read missed.

    For each ok read with ``central_revision`` set: the acknowledged writes of
    its (group, key) newer than what it returned, up to what central held when
    it was invoked (0 for a fresh read) — the same count :func:`staleness`
    gathers, by read.
    """
    empty = KeyWrites([], [])
    behind = {}
    for op, log in _observations(ops):
        if op.central_revision is not None:
            index = log.index if log is not None else empty
            behind[op.id] = index.between(_revision(op), op.central_revision)
    return behind


# --- Time to visibility ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visibility:
    """When a region first showed an acknowledged write (or a newer one)."""

    write_id: int
    region: str
    commit_s: float
    visible_after_s: float | None
    seen_by: int | None


def _first_seers(log: _KeyLog, reads: Iterable[Op]) -> list[Op | None]:
    """For each write of ``log``, the first-completing read that shows it.

    A read shows write i when it was invoked at or after i's commit and returned
    at least i's revision. Both lists are sorted, so that is every write below
    ``reach`` = min(writes committed by its invoke, writes with revision <= its
    own): bucket each read at its reach and take suffix minima of completion.
    """
    first: list[Op | None] = [None] * len(log.writes)
    for read in reads:
        by_time = bisect.bisect_right(log.index.commit_s, read.invoke_s)
        by_revision = bisect.bisect_right(log.index.revisions, _revision(read))
        reach = min(by_time, by_revision)
        if reach and _earlier(read, first[reach - 1]):
            first[reach - 1] = read
    best: Op | None = None
    for position in reversed(range(len(first))):
        candidate = first[position]
        if candidate is not None and _earlier(candidate, best):
            best = candidate
        first[position] = best
    return first


def visibility(ops: Sequence[Op], regions: Sequence[str]) -> list[Visibility]:
    """One entry per (acknowledged write, region), in history order then region order.

    ``visible_after_s`` is the completion of the first ok read in the region of
    the same (group, key), invoked at or after the write's commit, that returned
    its revision or a newer one, minus the commit time; None if no read did.
    """
    logs = _key_logs(ops)
    wanted = set(regions)
    reads = _grouped(
        ops,
        lambda op: _is_observation(op) and op.region in wanted,
        lambda op: (op.group, op.key, op.region),
    )
    seen: dict[tuple[int, str], Op] = {}
    for (group, key, region), region_reads in reads.items():
        log = logs.get((group, key))
        if log is None:
            continue
        for write, read in zip(log.writes, _first_seers(log, region_reads), strict=True):
            if read is not None:
                seen[(write.id, region)] = read
    result = []
    for write in ops:
        if not write.acknowledged:
            continue
        commit_s = _commit_s(write)
        for region in regions:
            read = seen.get((write.id, region))
            result.append(
                Visibility(
                    write_id=write.id,
                    region=region,
                    commit_s=commit_s,
                    visible_after_s=None if read is None else read.complete_s - commit_s,
                    seen_by=None if read is None else read.id,
                )
            )
    return result


def summary_of_visibility(items: Sequence[Visibility]) -> dict[str, dict[str, float | int | None]]:
    """Per region (first-appearance order): writes, how many were seen, p50/p99/max seconds."""
    delays_s: dict[str, list[float]] = {}
    writes: dict[str, int] = {}
    for item in items:
        writes[item.region] = writes.get(item.region, 0) + 1
        region_delays_s = delays_s.setdefault(item.region, [])
        if item.visible_after_s is not None:
            region_delays_s.append(item.visible_after_s)
    summary: dict[str, dict[str, float | int | None]] = {}
    for region, region_delays_s in delays_s.items():
        summary[region] = {
            "writes": writes[region],
            "seen": len(region_delays_s),
            "p50_s": percentile(region_delays_s, 50) if region_delays_s else None,
            "p99_s": percentile(region_delays_s, 99) if region_delays_s else None,
            "max_s": max(region_delays_s) if region_delays_s else None,
        }
    return summary


# --- Read your writes --------------------------------------------------------------------------


class _NodeWrites:
    """The writes acknowledged through one node for one key, by completion, with the
    newest revision among each prefix (what a read invoked then must show). Plain
    numbers, not operations: a day's writes are many."""

    def __init__(self) -> None:
        self.completes: list[tuple[float, int]] = []  # (complete_s, id), sorted
        self.revisions: list[int] = []
        # Per prefix: (revision, id, complete_s) of its newest write.
        self.newest: list[tuple[int, int, float]] = []

    def add(self, write: Op) -> None:
        at = bisect.bisect(self.completes, (write.complete_s, write.id))
        self.completes.insert(at, (write.complete_s, write.id))
        self.revisions.insert(at, _revision(write))
        # Writes come nearly in completion order: the prefixes to redo are few.
        del self.newest[at:]
        for (complete_s, op_id), revision in zip(
            self.completes[at:], self.revisions[at:], strict=True
        ):
            if not self.newest or self.newest[-1][0] < revision:  # a tie keeps the first
                self.newest.append((revision, op_id, complete_s))
            else:
                self.newest.append(self.newest[-1])

    def newest_by(self, time_s: float) -> tuple[int, int, float] | None:
        done = bisect.bisect_right(self.completes, (time_s, math.inf))
        return self.newest[done - 1] if done else None


class _Pass:
    """A property checked in one pass: how many operations it examined, what broke it."""

    name = ""

    def __init__(self) -> None:
        self.checked = 0
        self.violations: list[Violation] = []

    def result(self) -> CheckResult:
        violations = sorted(self.violations, key=lambda v: v.op_ids[::-1])
        return CheckResult(self.name, self.checked, tuple(violations))


class ReadYourWrites(_Pass):
    """:func:`read_your_writes` as one pass: hand it every operation in history order
    (a write a read must show completed before the read was invoked, so it comes first)."""

    name = "read-your-writes"

    def __init__(self) -> None:
        super().__init__()
        self._writes: dict[tuple[str, str, str], _NodeWrites] = {}

    def add(self, op: Op) -> None:
        if op.acknowledged and op.node != "central":  # central's writes are no node's own
            self._writes.setdefault((op.group, op.key, op.node), _NodeWrites()).add(op)
        elif _is_observation(op):
            self._check(op)

    def _check(self, read: Op) -> None:
        writes = self._writes.get((read.group, read.key, read.node))
        newest = None if writes is None else writes.newest_by(read.invoke_s)
        if newest is None:
            return
        self.checked += 1
        revision, write_id, complete_s = newest
        if _revision(read) >= revision:
            return
        self.violations.append(
            Violation(
                self.name,
                f"read #{read.id} at node {read.node} (region {read.region}) of key "
                f"{read.key!r} (group {read.group}) invoked at {_at(read.invoke_s)} "
                f"returned revision {_revision(read)}, older than revision "
                f"{revision} written through that node by #{write_id} "
                f"(completed {_at(complete_s)})",
                (write_id, read.id),
            )
        )


def read_your_writes(ops: Iterable[Op]) -> CheckResult:
    """A read at a node must show every write acknowledged through that node before it.

    Writes sent to central directly are no node's own. ``checked`` counts the
    reads invoked after at least one such write completed at their node.
    """
    held = list(ops)
    check = ReadYourWrites()
    for op in sorted(held, key=lambda op: not op.is_write):  # every write first: any order
        check.add(op)
    return check.result()


# --- Monotonic reads ---------------------------------------------------------------------------


class MonotonicReads(_Pass):
    """:func:`monotonic_reads` as one pass: hand it every operation in history order.

    History order is invocation order, so every read that completed before a
    read began has come already. Reads still in flight wait in a heap by
    completion and join their session's newest once the history has moved past
    their completion. What is kept per (session, group, key) is small, because
    a simulated day has millions of them: the newest completed read's revision
    and id packed in one integer, under one interned copy of each key.
    """

    name = "monotonic-reads"

    def __init__(self) -> None:
        super().__init__()
        # (session, group) -> key -> revision << _ID_BITS | id of the newest completed read.
        self._newest: dict[tuple[str, str], dict[str, int]] = {}
        self._in_flight: list[tuple[float, int, dict[str, int], str, int]] = []

    def add(self, read: Op) -> None:
        if not _is_observation(read):
            return
        while self._in_flight and self._in_flight[0][0] <= read.invoke_s:
            _, op_id, session, key, revision = heapq.heappop(self._in_flight)
            _completed(session, key, revision, op_id)
        session = self._newest.setdefault((read.session, read.group), {})
        key = sys.intern(read.key)
        newest = session.get(key)
        if newest is not None:
            self.checked += 1
            if _revision(read) < newest >> _ID_BITS:
                self._violated(read, newest >> _ID_BITS, newest & _ID_MASK)
        if read.complete_s <= read.invoke_s:  # answered at once: done for every later read
            _completed(session, key, _revision(read), read.id)
        else:
            heapq.heappush(
                self._in_flight, (read.complete_s, read.id, session, key, _revision(read))
            )

    def _violated(self, later: Op, revision: int, op_id: int) -> None:
        self.violations.append(
            Violation(
                self.name,
                f"session {later.session} (region {later.region}) read key {later.key!r} "
                f"(group {later.group}) at revision {_revision(later)} invoked at "
                f"{_at(later.invoke_s)}, after read #{op_id} had returned revision "
                f"{revision} (and completed before it)",
                (op_id, later.id),
            )
        )


# Operation ids below 2**40 (a trillion) pack beside a revision in one integer.
_ID_BITS = 40
_ID_MASK = (1 << _ID_BITS) - 1


def _completed(session: dict[str, int], key: str, revision: int, op_id: int) -> None:
    """A read of ``key`` completed in ``session``: the newest now, unless one was newer
    (a tie keeps the first to complete)."""
    newest = session.get(key)
    if newest is None or revision > newest >> _ID_BITS:
        session[key] = revision << _ID_BITS | op_id


def monotonic_reads(ops: Iterable[Op]) -> CheckResult:
    """Within a session, a read never returns older than a read that completed before it began.

    Reads that overlap in time are concurrent and constrain nothing. ``checked``
    counts the reads that had at least one earlier completed read in their session.
    """
    check = MonotonicReads()
    for op in sorted(ops, key=lambda op: (op.invoke_s, op.id)):
        check.add(op)
    return check.result()


# --- Convergence -------------------------------------------------------------------------------


def convergence(
    ops: Sequence[Op], *, writes_end_s: float, extra_s: Mapping[str, float]
) -> CheckResult:
    """Once writes stop and caches expire, every read returns the key's final revision.

    A read of (group, key) is examined when invoked at or after
    max(last commit, ``writes_end_s``) + its cacheTtl (60 if unset) + its
    region's ``extra_s``; it must return the newest acknowledged revision (0 if
    none). A newer revision is accepted when the key has writes of unknown
    outcome, which may have committed. A region named in ``extra_s`` with no
    examined read is a violation too: its convergence was not observed.
    """
    name = "convergence"
    uncertain = {_group_key(op) for op in ops if op.is_write and op.outcome == "unknown"}
    observed_regions: set[str] = set()
    checked = 0
    violations: list[Violation] = []
    for read, log in _observations(ops):
        final = log.writes[-1] if log is not None else None
        final_revision = 0 if final is None else _revision(final)
        last_s = -math.inf if final is None else _commit_s(final)
        settled_s = max(last_s, writes_end_s) + _reader_ttl_s(read) + extra_s.get(read.region, 0.0)
        if read.invoke_s + _TOLERANCE_S < settled_s:
            continue
        checked += 1
        observed_regions.add(read.region)
        returned = _revision(read)
        if returned == final_revision:
            continue
        if returned > final_revision and _group_key(read) in uncertain:
            continue
        written = "" if final is None else f" (written by #{final.id}, committed {_at(last_s)})"
        violations.append(
            Violation(
                name,
                f"read #{read.id} in region {read.region} of key {read.key!r} (group "
                f"{read.group}) invoked at {_at(read.invoke_s)}, after caches should have "
                f"settled at {_at(settled_s)}, returned revision {returned}, not the final "
                f"revision {final_revision}{written}",
                (read.id,) if final is None else (final.id, read.id),
            )
        )
    for region in extra_s:
        if region not in observed_regions:
            violations.append(
                Violation(
                    name,
                    f"no read in {region} after writes stopped: convergence not observed",
                    (),
                )
            )
    return CheckResult(name, checked, tuple(violations))


# --- The visibility promise --------------------------------------------------------------------


def promise(
    ops: Sequence[Op], *, extra_s: Mapping[str, float], promise_s: float = 60.0
) -> CheckResult:
    """Workers KV's promise: a write is visible everywhere within 60 s, or the cacheTtl if longer.

    For each ok read, the allowance is max(``promise_s``, its cacheTtl (60 if
    unset)) + its region's ``extra_s``; the newest acknowledged write of its
    (group, key) committed at least that long before the read was invoked must
    be shown (its revision or newer). ``checked`` counts reads that had such a write.
    """
    name = "visibility-promise"
    checked = 0
    violations: list[Violation] = []
    for read, log in _observations(ops):
        if log is None:
            continue
        allowance_s = max(promise_s, _reader_ttl_s(read)) + extra_s.get(read.region, 0.0)
        due = bisect.bisect_right(log.index.commit_s, read.invoke_s - allowance_s + _TOLERANCE_S)
        if not due:
            continue
        checked += 1
        write = log.writes[due - 1]
        if _revision(read) >= _revision(write):
            continue
        late_s = read.invoke_s - _commit_s(write) - allowance_s
        violations.append(
            Violation(
                name,
                f"read #{read.id} in region {read.region} of key {read.key!r} (group "
                f"{read.group}) invoked at {_at(read.invoke_s)} returned revision "
                f"{_revision(read)}, but write #{write.id} (revision {_revision(write)}, "
                f"committed {_at(_commit_s(write))}) was due by "
                f"{_at(_commit_s(write) + allowance_s)}: {late_s:.3f}s late",
                (write.id, read.id),
            )
        )
    return CheckResult(name, checked, tuple(violations))
