"""Driving a cluster with a planned workload, open loop, and recording its history.

Theory of operation: :class:`Driver` holds one :class:`edgekv.Client` per edge
(and one for central), with client-side retries off, so the history records
what the edge answered rather than what a retry hid. :meth:`Driver.setup`
creates one namespace per workload group and writes every key once through
central, so that reads find something. :meth:`Driver.run` walks the plan in
time order on the cluster's shared clock — a chain of timers, one per arrival,
starts each operation when it is due as its own task, never waiting for
earlier ones to answer — and hands each operation on to its history as soon as
everything before it has been (:class:`~.history.InOrder`), so that the run
never holds its history; each operation records its invoke and completion
times (simulated seconds since the run began) and what came back. How late
the driver itself started each operation is kept, so a run can say whether
the machine kept up; operations beyond ``max_in_flight`` are dropped and
counted rather than queued, because queueing them would turn an open loop
into a closed one.
"""

from __future__ import annotations

import asyncio
import gc
import math
import sys
import zlib
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import edgekv
from edgekv.client import RetryPolicy
from edgekv.control import NodeControl
from edgekv.core.errors import KVError
from edgekv.experiments.capacity import refuse_unless_it_fits
from edgekv.experiments.cluster import ClusterView, EdgeAddress
from edgekv.experiments.history import InOrder, Op
from edgekv.experiments.workload import KeySpace, Planned, Stream
from edgekv.experiments.workload import planned as planned_lazily

# Deadline of one call, in real seconds: generous, since the edge retries for itself.
CALL_TIMEOUT_S = 30.0
# Real seconds between the end of setup and the first operation, so it is not late.
LEAD_REAL_S = 0.2
# Below this an operation's lag is the rounding of simulated seconds (a timer set for
# the due time fires at it, give or take 1e-10 s), not lateness.
ROUNDING_S = 1e-6
# Setup writes sent together (each wave waits for the one before it).
SETUP_WAVE = 1000


class Progress(Protocol):
    def __call__(self, sim_s: float, ops: int, errors: int) -> None: ...

    def finish(self, sim_s: float | None = None, ops: int = 0, errors: int = 0) -> None: ...


@dataclass
class DriverStats:
    planned: int = 0
    started: int = 0
    dropped: int = 0
    errors: int = 0
    # How late each operation started (simulated seconds after it was due): how many
    # started on time, and each lag of those that did not (on virtual time, none).
    on_time: int = 0
    late_s: list[float] = field(default_factory=list)

    def started_late_by(self, lag_s: float) -> None:
        if lag_s > ROUNDING_S:
            self.late_s.append(lag_s)
        else:
            self.on_time += 1

    def lag_percentile(self, q: float) -> float:
        """:func:`percentile` of every lag, the on-time zeros included, without listing them."""
        total = self.on_time + len(self.late_s)
        if not self.late_s:
            return 0.0
        position = q / 100.0 * (total - 1) - self.on_time  # into the sorted late ones
        if position <= -1:
            return 0.0
        late = sorted(self.late_s)
        below = math.floor(position)
        low = late[below] if below >= 0 else 0.0
        high = late[min(below + 1, len(late) - 1)]
        return low + (high - low) * (position - below)

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "started": self.started,
            "dropped": self.dropped,
            "errors": self.errors,
            "lag_p50_s": self.lag_percentile(50),
            "lag_p99_s": self.lag_percentile(99),
            "lag_max_s": max(self.late_s, default=0.0),
        }


# Python 3.12 can run a new task at once, as far as its first wait, in its own task.
EAGER_TASKS = sys.version_info >= (3, 12)


def started(operation: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """``operation`` as a task, run at once where asyncio can (Python 3.12 on): then an
    operation that never waits — a cache HIT — costs no turn of the event loop."""
    if EAGER_TASKS:
        eager: Any = asyncio.Task  # eager_start is 3.12's; typeshed for 3.11 lacks it
        task: asyncio.Task[None] = eager(
            operation, loop=asyncio.get_running_loop(), eager_start=True
        )
        return task
    return asyncio.create_task(operation)


class _Pacer:
    """Starts each planned operation when it is due, from a timer, one timer at a time.

    Not a task that sleeps between operations: a sleep costs a future and a
    second turn of the event loop to wake the sleeper, and a simulation pays
    that for every one of its millions of operations. Operations due at once
    (or overdue) start in the same turn.
    """

    def __init__(
        self, driver: Driver, plan: Iterator[Planned], start: Callable[[Planned], None]
    ) -> None:
        self._driver = driver
        self._plan = plan
        self._start = start
        self._loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._due = next(self._plan, None)
        self._fire()

    def stop(self) -> None:
        """Start nothing more (the run failed or was cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
        if not self.finished.done():
            self.finished.cancel()

    def _fire(self, woken: bool = False) -> None:
        if self.finished.done():  # the run was cancelled: start nothing more
            return
        try:
            while self._due is not None:
                # Woken by its timer, the operation is due, whatever rounding says.
                delay_s = 0.0 if woken else self._due.at_s - self._driver.now_s()
                if delay_s > 0:
                    real_s = self._driver.clock.real_seconds(delay_s)
                    self._timer = self._loop.call_later(real_s, self._fire, True)
                    return
                woken = False
                self._start(self._due)
                self._due = next(self._plan, None)
        except BaseException as exc:  # the plan or a start failed: the run fails with it
            self.finished.set_exception(exc)
            return
        self.finished.set_result(None)


class Driver:
    def __init__(self, view: ClusterView, max_in_flight: int = 4096) -> None:
        self.view = view
        self.clock = view.clock
        self.max_in_flight = max_in_flight
        self.stats = DriverStats()
        # The setup's operations; the run's go on to its history in order (see run).
        self.ops: list[Op] = []
        self._order: InOrder | None = None
        self._next_id = 0
        # Every key an operation touched, by group (central_revisions asks central for them).
        self._keys: dict[str, set[str]] = {}
        self.namespaces: dict[str, str] = {}
        self.t0 = self.clock.now()
        # The setup's and the final reads' calls to central are retried with seeded jitter.
        self._central = edgekv.Client(
            central=view.target(view.central), timeout_s=CALL_TIMEOUT_S, retry=RetryPolicy(seed=0)
        )
        self._edges_by_region = {region: view.edges_in(region) for region in view.regions}
        self._edges = {
            edge.address: edgekv.Client(
                edge=view.target(edge.address), timeout_s=CALL_TIMEOUT_S, retry=RetryPolicy.NONE
            )
            for edge in view.edges
        }

    async def close(self) -> None:
        for client in [self._central, *self._edges.values()]:
            await client.close()

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def now_s(self) -> float:
        """Simulated seconds since the run began (negative during setup)."""
        return self.clock.now() - self.t0

    async def setup(self, title: str, groups: Iterable[str], keys: KeySpace) -> None:
        """One namespace per group, and every key written once through central."""
        for group in groups:
            namespace = await self._central.create_namespace(f"{title} {group}")
            self.namespaces[group] = namespace.id
            self.view.namespaces.append(namespace.id)
        self.t0 = self.clock.now()
        writes = [
            Planned(0.0, "write", "central", "setup", key, group, value_bytes=16)
            for group in self.namespaces
            for key in keys.names
        ]
        # In waves: a million keys at once would be a million tasks held together.
        for start in range(0, len(writes), SETUP_WAVE):
            wave = writes[start : start + SETUP_WAVE]
            await asyncio.gather(*(self._perform(op, via=None) for op in wave))
        self.stats = DriverStats()  # the driver's lag is judged on the run proper
        # The run proper begins a moment from now; setup happened before its time 0.
        setup_origin = self.t0
        self.t0 = self.clock.now() + self.clock.scale * LEAD_REAL_S
        shift_s = setup_origin - self.t0
        for op in self.ops:
            op.scheduled_s += shift_s
            op.invoke_s += shift_s
            op.complete_s += shift_s
            if op.commit_s is not None:
                op.commit_s += shift_s

    def plan(self, streams: list[Stream], seed: int, histories_held: int = 1) -> Iterator[Planned]:
        """The streams' operations in time order, drawn as the run goes, once it is sure to
        fit in memory (with ``histories_held`` such workloads' histories listed by the
        summary; 0 for a summary that streams)."""
        simulated = self.view.engine == "sim"
        topology = self.view.topology
        cache_bytes = None
        if simulated and topology is not None and topology.regions:
            cache_bytes = max(region.edge.cache_max_bytes for region in topology.regions)
        refuse_unless_it_fits(
            streams,
            len(self.view.edges) if simulated else 0,
            histories_held=histories_held,
            edge_cache_bytes=cache_bytes,
        )
        return planned_lazily(streams, seed)

    async def run(
        self,
        plan: Iterable[Planned],
        record: Callable[[Op], None],
        progress: Progress | None = None,
        at_time: Iterable[tuple[float, Callable[[], Any]]] = (),
    ) -> None:
        """Send every planned operation when it is due; hand each to ``record`` in id order.

        The history goes on as the run goes (see :class:`InOrder`), so a run
        need not hold it: ``record`` may write it to a file. ``at_time`` holds
        (simulated second, action) pairs run on schedule beside the workload,
        such as cutting a link.
        """
        setup, self.ops = self.ops, []  # handed on now: a million keys' writes go at once
        self._order = InOrder(record, first_id=setup[0].id if setup else self._next_id)
        for op in setup:  # the setup's writes come first
            self._order.started(op)
            self._order.completed(op)
        del setup
        if self.view.engine == "sim":
            # What the cluster holds now (central's keys, the key space, the edges) lives
            # to the end: the collector need not walk it again (about 10 % of a big run).
            gc.freeze()
        try:
            await self._run(plan, progress, at_time)
        finally:
            if self.view.engine == "sim":
                gc.unfreeze()

    async def _run(
        self,
        plan: Iterable[Planned],
        progress: Progress | None,
        at_time: Iterable[tuple[float, Callable[[], Any]]],
    ) -> None:
        assert self._order is not None
        in_flight: dict[asyncio.Task[None], None] = {}  # ordered: a replay gathers alike
        actions = [asyncio.create_task(self._act_at(at_s, act)) for at_s, act in at_time]

        def start(planned: Planned) -> None:
            self.stats.planned += 1
            if len(in_flight) >= self.max_in_flight:
                self.stats.dropped += 1
                return
            task = started(self._perform(planned, via=self._edge_for(planned)))
            if not task.done():  # a started task may be done already (a HIT never waits)
                in_flight[task] = None
                task.add_done_callback(in_flight.pop)
            if progress is not None:
                progress(self.now_s(), self.stats.started, self.stats.errors)

        pacer = _Pacer(self, iter(plan), start)
        try:
            await pacer.finished
            await asyncio.gather(*in_flight, *actions)
        except BaseException:
            # Failed or cancelled: nothing more starts, and nothing still running goes on
            # to hand operations to a history that is being closed.
            pacer.stop()
            unfinished = [*in_flight, *actions]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            raise
        if progress is not None:
            progress.finish(self.now_s(), self.stats.started, self.stats.errors)
        assert not self._order.waiting, "every operation completed, so every one was handed on"
        self._order = None

    async def _act_at(self, at_s: float, act: Callable[[], Any]) -> None:
        delay_s = at_s - self.now_s()
        if delay_s > 0:
            await self.clock.sleep(delay_s)
        result = act()
        if asyncio.iscoroutine(result):
            await result

    def _edge_for(self, planned: Planned) -> EdgeAddress:
        """A session always uses the same edge of its region."""
        edges = self._edges_by_region.get(planned.region) or self.view.edges_in(planned.region)
        return edges[zlib.crc32(planned.session.encode()) % len(edges)]

    async def _perform(self, planned: Planned, via: EdgeAddress | None) -> None:
        client = self._central if via is None else self._edges[via.address]
        namespace = client.namespace(self.namespaces[planned.group])
        op = Op(
            id=self._next_id,
            kind=planned.kind,
            session=planned.session,
            region=planned.region,
            node="central" if via is None else via.node,
            key=planned.key,
            group=planned.group,
            scheduled_s=planned.at_s,
            invoke_s=self.now_s(),
            complete_s=0.0,
            outcome="ok",
            cache_ttl_s=planned.cache_ttl_s,
        )
        self._next_id += 1
        self._keys.setdefault(planned.group, set()).add(planned.key)
        if self._order is None:
            self.ops.append(op)
        else:
            self._order.started(op)
        self.stats.started += 1
        self.stats.started_late_by(op.invoke_s - op.scheduled_s)
        try:
            if planned.kind == "read":
                await self._read(namespace, planned, op)
            else:
                await self._write(namespace, planned, op)
        except KVError as exc:
            op.outcome = "failed" if planned.kind == "read" or exc.definite else "unknown"
            op.error = f"{exc.kind.name}: {exc.message}"
            self.stats.errors += 1
        op.complete_s = self.now_s()
        if self._order is not None:
            self._order.completed(op)

    async def _read(self, namespace: edgekv.KVNamespace, planned: Planned, op: Op) -> None:
        ttl = None if planned.cache_ttl_s is None else int(planned.cache_ttl_s)
        result = await namespace.get_with_metadata(planned.key, type="bytes", cache_ttl=ttl)
        op.revision = result.info.revision
        op.cache_status = result.cache_status
        op.age_s = result.info.age_s
        op.value_bytes = 0 if result.value is None else len(result.value)
        if result.info.node and result.info.node != "central":
            op.node = result.info.node

    async def _write(self, namespace: edgekv.KVNamespace, planned: Planned, op: Op) -> None:
        value = f"{op.id}:".encode().ljust(planned.value_bytes, b".")
        written = await namespace.put(planned.key, value)
        op.revision = written.revision
        op.commit_s = written.commit_time - self.t0
        op.value_bytes = len(value)

    async def central_revisions(self) -> dict[str, dict[str, int]]:
        """Group → key → the revision central holds now (0 when the key is gone)."""
        held: dict[str, dict[str, int]] = {}
        for group, namespace_id in self.namespaces.items():
            keys = sorted(self._keys.get(group, ()))
            namespace = self._central.namespace(namespace_id)
            held[group] = {}
            for start in range(0, len(keys), 100):
                chunk = keys[start : start + 100]
                found = await namespace.get_with_metadata(chunk)
                for key in chunk:
                    read = found.get(key)
                    held[group][key] = 0 if read is None else read.info.revision
        return held

    async def edge_counters(self) -> dict[str, dict[str, int]]:
        """Each edge's counters (EdgeControl.GetStats), by node name."""
        counters: dict[str, dict[str, int]] = {}
        for edge in self.view.edges:
            async with NodeControl(self.view.target(edge.address)) as control:
                try:
                    stats = await control.stats()
                except KVError as exc:
                    raise OSError(
                        f"cannot read the counters of {edge.node} at {edge.address}: {exc.message}"
                    ) from None
            counters[edge.node] = stats.as_dict()
        return counters
