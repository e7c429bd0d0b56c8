"""Checkers: the consistency properties of a history, as pure functions.

Theory of operation: a checker takes the list of :class:`~.history.Op` an
experiment recorded and returns what it found — a :class:`CheckResult` of
:class:`Violation` s for the properties (read-your-writes, monotonic reads,
convergence, Workers KV's visibility promise) and plain numbers for the
measurements (:func:`staleness`, :func:`visibility`). Nothing here does I/O,
reads a clock or draws a random number, so a saved history re-checks the same.

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
import math
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from edgekv.experiments.history import KeyWrites, Op

GroupKey = tuple[str, str]
K = TypeVar("K", bound=Hashable)

# The cacheTtl Workers KV applies when a reader gives none.
DEFAULT_CACHE_TTL_S = 60.0
# Cache statuses of reads that went to central rather than answering from the edge's copy.
UPSTREAM_STATUSES = frozenset({"MISS", "EXPIRED", "REVALIDATED"})
# Slack when comparing a recorded time with a computed bound (float rounding, not latency).
_TOLERANCE_S = 1e-9


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


def _is_acknowledged(op: Op) -> bool:
    return op.is_write and op.ok and op.revision is not None and op.commit_s is not None


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
    for group_key, writes in _grouped(ops, _is_acknowledged, _group_key).items():
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


def staleness(
    ops: Sequence[Op],
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
    acknowledged writes) the read counts as stale but adds no time behind.
    """
    reads = hits = upstream = 0
    time_behind_s: list[float] = []
    revisions_behind: list[int] = []
    for op, log in _observations(ops):
        if op.central_revision is None or not _in_scope(op, group, region, window_s):
            continue
        reads += 1
        hits += op.cache_status == "HIT"
        upstream += op.cache_status in UPSTREAM_STATUSES
        returned = _revision(op)
        if returned >= op.central_revision:
            continue
        index = log.index if log is not None else KeyWrites([], [])
        revisions_behind.append(index.between(returned, op.central_revision))
        superseded_s = index.superseded_at(returned)
        if superseded_s is not None:
            time_behind_s.append(op.invoke_s - superseded_s)
    return Staleness(
        reads=reads,
        stale=len(revisions_behind),
        hits=hits,
        upstream=upstream,
        time_behind_s=tuple(time_behind_s),
        revisions_behind=tuple(revisions_behind),
    )


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
        if not _is_acknowledged(write):
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


def _newest_so_far(writes: Sequence[Op]) -> list[Op]:
    """Prefix maxima by revision: entry i is the newest of ``writes[: i + 1]``."""
    newest: list[Op] = []
    for write in writes:
        if newest and _revision(newest[-1]) >= _revision(write):
            newest.append(newest[-1])
        else:
            newest.append(write)
    return newest


def read_your_writes(ops: Sequence[Op]) -> CheckResult:
    """A read at a node must show every write acknowledged through that node before it.

    Writes sent to central directly are no node's own. ``checked`` counts the
    reads invoked after at least one such write completed at their node.
    """
    name = "read-your-writes"

    def by_node(op: Op) -> tuple[str, str, str]:
        return (op.group, op.key, op.node)

    writes = _grouped(ops, lambda op: _is_acknowledged(op) and op.node != "central", by_node)
    reads = _grouped(ops, _is_observation, by_node)
    checked = 0
    violations: list[Violation] = []
    for node_key, node_writes in writes.items():
        node_writes.sort(key=lambda w: (w.complete_s, w.id))
        completes_s = [w.complete_s for w in node_writes]
        newest = _newest_so_far(node_writes)
        for read in reads.get(node_key, []):
            done = bisect.bisect_right(completes_s, read.invoke_s)
            if not done:
                continue
            checked += 1
            write = newest[done - 1]
            if _revision(read) >= _revision(write):
                continue
            violations.append(
                Violation(
                    name,
                    f"read #{read.id} at node {read.node} (region {read.region}) of key "
                    f"{read.key!r} (group {read.group}) invoked at {_at(read.invoke_s)} "
                    f"returned revision {_revision(read)}, older than revision "
                    f"{_revision(write)} written through that node by #{write.id} "
                    f"(completed {_at(write.complete_s)})",
                    (write.id, read.id),
                )
            )
    violations.sort(key=lambda v: v.op_ids[::-1])
    return CheckResult(name, checked, tuple(violations))


# --- Monotonic reads ---------------------------------------------------------------------------


def _session_violations(name: str, reads: list[Op]) -> tuple[int, list[Violation]]:
    """Sweep one session's reads of one key: each against the newest that completed before it."""
    by_complete = sorted(reads, key=lambda r: (r.complete_s, r.id))
    by_invoke = sorted(reads, key=lambda r: (r.invoke_s, r.id))
    newest: Op | None = None
    done = 0
    checked = 0
    violations: list[Violation] = []
    for later in by_invoke:
        while done < len(by_complete) and by_complete[done].complete_s <= later.invoke_s:
            earlier = by_complete[done]
            if newest is None or _revision(earlier) > _revision(newest):
                newest = earlier
            done += 1
        preceding = done - (1 if later.complete_s <= later.invoke_s else 0)
        if newest is None or preceding == 0:
            continue
        checked += 1
        if _revision(later) >= _revision(newest):
            continue
        violations.append(
            Violation(
                name,
                f"session {later.session} (region {later.region}) read key {later.key!r} "
                f"(group {later.group}) at revision {_revision(later)} invoked at "
                f"{_at(later.invoke_s)}, after read #{newest.id} had returned revision "
                f"{_revision(newest)} (completed {_at(newest.complete_s)})",
                (newest.id, later.id),
            )
        )
    return checked, violations


def monotonic_reads(ops: Sequence[Op]) -> CheckResult:
    """Within a session, a read never returns older than a read that completed before it began.

    Reads that overlap in time are concurrent and constrain nothing. ``checked``
    counts the reads that had at least one earlier completed read in their session.
    """
    name = "monotonic-reads"
    sessions = _grouped(ops, _is_observation, lambda op: (op.session, op.group, op.key))
    checked = 0
    violations: list[Violation] = []
    for session_reads in sessions.values():
        session_checked, session_violations = _session_violations(name, session_reads)
        checked += session_checked
        violations.extend(session_violations)
    violations.sort(key=lambda v: v.op_ids[::-1])
    return CheckResult(name, checked, tuple(violations))


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
