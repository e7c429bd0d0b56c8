"""``edgekv bench replicas``: central's Get and Put with one and with two replicas on one Redis.

Theory of operation: several ``edgekv central --storage redis://…`` processes can
serve one Redis store at once (:mod:`central.feed`), so central's work — gRPC,
protobuf, the service's checks, all under one GIL per process — can be spread
over processes and cores. This benchmark says what a second replica costs and
what it brings, measured in one run against one ``redis-server``
(:func:`~edgekv.bench.servers.start_redis`: ``appendonly yes``, ``appendfsync
always``, which central's default ``--durability local`` demands and checks —
so the Puts pay what users' Puts pay; the fsync is the same for both
configurations, and it is the comparison that is judged):

- ``1 replica``: one central on database 1;
- ``2 replicas``: two centrals on database 2, called through one channel to
  both (the comma list ``A,B``: gRPC's ``round_robin``,
  :func:`edgekv.channels.open_channel`), so the calls are spread over them.

The two configurations use two databases of the same server rather than one,
so that neither configuration's centrals work while the other is measured: a
central follows its store's feed, which every commit appends to, and the idle
configuration's centrals would otherwise read every event of the other's
Puts. (Their CPU while idle is still read and reported as ``idle``.) All
three centrals run ``--no-write-rate-limit``, and every Put writes a key of
its own, so no Put is refused.

The load is a closed loop of ``callers`` callers (:func:`~edgekv.bench.loadgen.closed_loop`)
through the raw ``CentralStore`` stub with prepared Get requests, run by a
generator in a process of its own (spawned once, kept for the whole run, its
channels open: not this one, whose thread also reads ``/proc``). Each round
measures Get and Put on each configuration, alternating which configuration
goes first; the rounds' counts and histograms are summed, so drift on a
shared machine falls on both alike. Around every slice each process's CPU
time is read from ``/proc/PID/stat`` (utime + stime, every thread), and
Redis's main thread's from ``/proc/PID/task/PID/stat`` (Redis executes
commands and scripts on that one thread). CPU per operation is CPU seconds
over operations answered. What explains the figures is read around every
slice too: the machine's busy time (``/proc/stat``; less the measured
processes', what other work on the host took meanwhile), each process's
context switches, and Redis's own ``INFO commandstats`` and
``total_reads_processed`` — how many commands of each kind, and how many
requests (a pipeline is one), one operation costs Redis, and how long it
spent executing each.

The figures of merit: central CPU per operation with 2 replicas over with 1
(target <= 1.1: a replica must not make each operation dearer) and
throughput with 2 over with 1 (target >= 1.0: it must not fall). On a host
whose cores are all busy — the generator, Redis and the centrals share them —
throughput cannot grow with replicas, so :func:`bounds` also turns the CPU per
operation into what a host with more cores would allow: each central process
at most one core, Redis's main thread at most one, and all processes together
at most the cores.

Everything goes to ``results/bench/replicas-<timestamp>/``: ``summary.json``
(machine, provenance, options, every row with its CPU per operation, cores
busy, context switches and Redis commands per operation, the ratios with
their verdicts, the bounds) and ``histograms/*.hlog``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

import edgekv
from edgekv.bench.api import Total
from edgekv.bench.loadgen import CallFn, LoadResult, LoadSettings, closed_loop
from edgekv.bench.runner import (
    DEFAULT_OUT,
    Measured,
    Ratio,
    print_line,
    print_ratios,
    results_folder,
    write_hlog,
)
from edgekv.bench.scenarios import KEY_COUNT, VALUE, key, unique_prefix
from edgekv.bench.servers import (
    CALL_TIMEOUT_S,
    ServerGroup,
    finish_machine,
    machine,
    print_machine,
    process_cpu_s,
    start_redis,
)
from edgekv.channels import open_channel
from edgekv.node_args import central_args, edgekv_command
from edgekv.provenance import provenance
from edgekv.topology import CentralSpec, Topology
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc

CALLERS = 16
# Short slices, so that other work on a shared host falls on both configurations alike.
ROUNDS = 6
OPERATIONS = ("get", "put")
# Configuration name -> (central process names, Redis database).
CONFIGURATIONS: dict[str, tuple[tuple[str, ...], int]] = {
    "1-replica": (("central-1",), 1),
    "2-replicas": (("central-2a", "central-2b"), 2),
}
REDIS = "redis"
REDIS_MAIN = "redis-main-thread"
GENERATOR = "generator"
# The whole machine's busy CPU; less the measured processes', what others used meanwhile
# (this benchmark's own thread, and whatever else runs on the host: noise to report).
MACHINE = "machine"
OTHERS = "others"
CPU_TARGET = "<= 1.1"
THROUGHPUT_TARGET = ">= 1.0"
# The host the README's prediction is for.
PREDICTED_CORES = 4
# How long the generator may take to start (a fresh interpreter importing grpc) and
# to answer an order beyond the slice itself.
GENERATOR_START_TIMEOUT_S = 60.0
GENERATOR_SLACK_S = 60.0


# -- the load generator (a process of its own) ---------------------------------------------


def _calls(stub: Any, namespace_id: str, operation: str) -> CallFn:
    """One Get of a prepared key, or one Put of a key no call wrote before."""
    if operation == "get":
        requests = [
            pb.GetRequest(namespace_id=namespace_id, key=key(k).encode()) for k in range(KEY_COUNT)
        ]

        async def get(index: int) -> object:
            answer = await stub.Get(requests[index % KEY_COUNT], timeout=CALL_TIMEOUT_S)
            if not answer.entry.found:
                raise RuntimeError(f"{key(index)} not found")
            return answer

        return get
    # The closed loop numbers each slice's calls from 0 again: a counter of the generator's
    # own keeps every Put's key distinct over the whole run.
    prefix, serial = unique_prefix(), itertools.count()

    async def put(index: int) -> object:
        name = f"put-{prefix}-{next(serial)}".encode()
        return await stub.Put(
            pb.PutRequest(namespace_id=namespace_id, key=name, value=VALUE), timeout=CALL_TIMEOUT_S
        )

    return put


async def _generate(connection: Any, targets: dict[str, Any]) -> None:
    """Open a channel per configuration, warm it, then run each order until told to stop.

    An order is ``(configuration, operation, callers, duration_s)``; the answer is the
    closed loop's result (:meth:`LoadResult.to_wire`) or, if it failed, a string.
    """
    channels = {name: open_channel(targets[name]["central"]) for name in CONFIGURATIONS}
    try:
        calls = {
            (name, operation): _calls(
                central_pb2_grpc.CentralStoreStub(channel), targets[name]["namespace"], operation
            )
            for name, channel in channels.items()
            for operation in OPERATIONS
        }
        for name, channel in channels.items():
            await channel.channel_ready()
            # round_robin connects to every address at once and picks READY ones only:
            # a few waves of calls, and every replica has its connection before the clock runs.
            for _ in range(3):
                await asyncio.gather(*(calls[(name, "get")](-1) for _ in range(CALLERS)))
                await asyncio.sleep(0.05)
        connection.send("ready")
        while (order := await asyncio.to_thread(connection.recv)) is not None:
            name, operation, callers, duration_s = order
            try:
                result = await closed_loop(calls[(name, operation)], callers, duration_s)
                connection.send(result.to_wire())
            except Exception as exc:  # report, so the parent does not wait forever
                connection.send(f"{type(exc).__name__}: {exc}")
    finally:
        for channel in channels.values():
            await channel.close()


def _generator_main(connection: Any, targets: dict[str, Any]) -> None:
    try:
        asyncio.run(_generate(connection, targets))
    except EOFError:
        pass  # the parent went away: nothing left to answer
    except BaseException as exc:
        connection.send(f"{type(exc).__name__}: {exc}")


class Generator:
    """The load generator's process: ``with Generator(targets) as g: g.run(...)``."""

    def __init__(self, targets: dict[str, Any]) -> None:
        # spawn, not fork: this process has gRPC's threads already.
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_generator_main, args=(child_end, targets), daemon=True, name=GENERATOR
        )
        self._process.start()
        child_end.close()
        self._expect(GENERATOR_START_TIMEOUT_S)

    @property
    def pid(self) -> int:
        assert self._process.pid is not None, "started in __init__"
        return self._process.pid

    def _expect(self, timeout_s: float) -> Any:
        if not self._connection.poll(timeout_s):
            raise RuntimeError(f"the load generator did not answer within {timeout_s:g} s")
        answer = self._connection.recv()
        if isinstance(answer, str) and answer != "ready":
            raise RuntimeError(f"the load generator failed: {answer}")
        return answer

    def run(self, configuration: str, operation: str, callers: int, duration_s: float) -> Any:
        """One closed-loop slice; its result in wire form."""
        self._connection.send((configuration, operation, callers, duration_s))
        return self._expect(duration_s + GENERATOR_SLACK_S)

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):  # it may be gone already
            self._connection.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()


# -- the servers ------------------------------------------------------------------------


def start_servers(group: ServerGroup) -> tuple[dict[str, Any], dict[str, int]]:
    """Redis, then every configuration's centrals at once; the targets and each one's PID."""
    redis_server, redis_address = start_redis(group)
    topology = Topology(CentralSpec(storage="memory:", write_rate_limit=False), ())
    specs = [
        (central, edgekv_command(central_args(topology, storage=f"redis://{redis_address}/{db}")))
        for centrals, db in CONFIGURATIONS.values()
        for central in centrals
    ]
    started = {server.name: server for server in group.start(specs)}
    targets = {
        name: {"central": ",".join(started[central].address for central in centrals)}
        for name, (centrals, _db) in CONFIGURATIONS.items()
    }
    pids = {REDIS: redis_server.pid, **{name: server.pid for name, server in started.items()}}
    return {**targets, REDIS: redis_address}, pids


async def prepare(targets: dict[str, Any]) -> None:
    """In each configuration's store, a namespace with the keys every Get reads."""
    for name in CONFIGURATIONS:
        target = targets[name]
        async with edgekv.Client(central=target["central"]) as client:
            namespace = await client.create_namespace(f"bench-{name}")
            entries = [{"key": key(k), "value": VALUE.decode()} for k in range(KEY_COUNT)]
            await client.namespace(namespace.id).bulk_put(entries)
        target["namespace"] = namespace.id


# -- measuring --------------------------------------------------------------------------


@dataclass
class ReplicasBenchOptions:
    duration_s: float = 6.0  # per configuration and operation, over the rounds
    callers: int = CALLERS
    rounds: int = ROUNDS
    out: Path = DEFAULT_OUT


def thread_cpu_s(pid: int, tid: int) -> float:
    """User + system CPU seconds of thread ``tid`` of process ``pid`` (0.0 if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> tuple[int, int]:
    """Voluntary (it waited: for I/O, a lock, a wake-up) and involuntary (preempted: the
    core was wanted) context switches of every thread ``pid`` has now."""
    voluntary = involuntary = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0, 0
    for task in tasks:
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        for line in status.splitlines():
            name, _, value = line.partition(":")
            if name == "voluntary_ctxt_switches":
                voluntary += int(value)
            elif name == "nonvoluntary_ctxt_switches":
                involuntary += int(value)
    return voluntary, involuntary


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has been busy (``/proc/stat``: user, nice,
    system, irq, softirq; not idle, iowait or steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """Every process's CPU seconds so far, Redis's main thread's (its TID is its PID), and
    the whole machine's (:data:`MACHINE`)."""
    now = {name: process_cpu_s(pid) for name, pid in pids.items()}
    now[REDIS_MAIN] = thread_cpu_s(pids[REDIS], pids[REDIS])
    now[MACHINE] = machine_busy_s()
    return now


# The key under which a snapshot counts the requests Redis read (``total_reads_processed``:
# one per batch a client sent, a pipeline of scripts being one): how well calls share
# round trips.
READS = "(requests read)"


def redis_commands(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Redis's count of calls and µs spent executing, per command, since it started; and
    under :data:`READS`, the requests it read (µs: 0)."""
    # One request for both sections: between two snapshots Redis then read exactly one
    # request of this benchmark's, the second snapshot's own.
    stats = client.info("commandstats", "stats")
    counts = {
        name.removeprefix("cmdstat_"): (int(entry["calls"]), int(entry["usec"]))
        for name, entry in stats.items()
        # INFO is this benchmark's own question, not the centrals' work.
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    }
    counts[READS] = (int(stats["total_reads_processed"]), 0)
    return counts


@dataclass
class Commands:
    """One measurement's Redis commands, summed over its slices: calls and µs per command."""

    calls: dict[str, int] = field(default_factory=dict)
    usec: dict[str, int] = field(default_factory=dict)

    def add(self, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> None:
        for name, (calls, usec) in after.items():
            calls_before, usec_before = before.get(name, (0, 0))
            if name == READS:
                calls_before += 1  # the read of the second snapshot's INFO
            if calls > calls_before:
                self.calls[name] = self.calls.get(name, 0) + calls - calls_before
                self.usec[name] = self.usec.get(name, 0) + usec - usec_before

    def per_op(self, ops: int) -> dict[str, dict[str, float]]:
        """Per command: calls per operation and Redis's µs per call, busiest first (the
        requests read, :data:`READS`, last)."""
        ops = max(1, ops)
        return {
            name: {
                "calls_per_op": round(self.calls[name] / ops, 3),
                "us_per_call": round(self.usec[name] / self.calls[name], 1),
                "us_per_op": round(self.usec[name] / ops, 1),
            }
            for name in sorted(self.usec, key=lambda n: (n == READS, -self.usec[n]))
        }

    def reads_per_op(self, ops: int) -> float:
        return round(self.calls.get(READS, 0) / max(1, ops), 3)


@dataclass
class ReplicasRun:
    options: ReplicasBenchOptions
    folder: Path
    pids: dict[str, int]
    totals: dict[tuple[str, str], Total] = field(default_factory=dict)
    commands: dict[tuple[str, str], Commands] = field(default_factory=dict)
    # Context switches (voluntary, involuntary) per process, summed over the slices.
    switches: dict[tuple[str, str], dict[str, list[int]]] = field(default_factory=dict)
    measured: list[Measured] = field(default_factory=list)

    def switches_per_op(self, configuration: str, operation: str) -> dict[str, dict[str, float]]:
        """Context switches per operation: the configuration's centrals together, Redis
        and the generator. A process that waits for each call alone (less busy) wakes up
        more often per call than one that finds several waiting."""
        counts = self.switches[(configuration, operation)]
        ops = max(1, self.totals[(configuration, operation)].result.completed)
        centrals = CONFIGURATIONS[configuration][0]
        grouped = {
            "central": [sum(counts[c][i] for c in centrals) for i in (0, 1)],
            REDIS: counts[REDIS],
            GENERATOR: counts[GENERATOR],
        }
        return {
            name: {"voluntary": round(v / ops, 2), "involuntary": round(i / ops, 2)}
            for name, (v, i) in grouped.items()
        }

    def throughput(self, configuration: str, operation: str) -> float:
        return self.totals[(configuration, operation)].result.throughput_per_s

    def cpu_us(self, configuration: str, operation: str) -> dict[str, float]:
        """CPU µs per operation: ``central`` (the configuration's centrals together), each
        of them, Redis, its main thread, the generator, and ``idle`` (the other's centrals)."""
        total = self.totals[(configuration, operation)]
        per_op = total.cpu_us_per_call()
        centrals = CONFIGURATIONS[configuration][0]
        others = [
            c for name, (cs, _) in CONFIGURATIONS.items() if name != configuration for c in cs
        ]
        ops = max(1, total.result.completed)
        central_s = sum(total.cpu_s.get(c, 0.0) for c in centrals)
        idle_s = sum(total.cpu_s.get(c, 0.0) for c in others)
        return {
            "central": round(central_s * 1e6 / ops, 1),
            **{c: per_op.get(c, 0.0) for c in centrals},
            REDIS: per_op.get(REDIS, 0.0),
            REDIS_MAIN: per_op.get(REDIS_MAIN, 0.0),
            GENERATOR: per_op.get(GENERATOR, 0.0),
            "idle": round(idle_s * 1e6 / ops, 1),
        }

    def cores_busy(self, configuration: str, operation: str) -> dict[str, float]:
        """How many cores each process kept busy on average while it was measured."""
        total = self.totals[(configuration, operation)]
        wall_s = total.result.finish_span_s or math.nan
        busy = {name: s / wall_s for name, s in total.cpu_s.items()}
        ours = sum(cores for name, cores in busy.items() if name not in (REDIS_MAIN, MACHINE))
        busy[OTHERS] = busy.pop(MACHINE, math.nan) - ours
        return {name: round(cores, 2) for name, cores in busy.items()}

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for m in self.measured:
            configuration, operation = _split(m.scenario)
            rows.append(
                {
                    **m.row(),
                    "configuration": configuration,
                    "replicas": len(CONFIGURATIONS[configuration][0]),
                    "operation": operation,
                    "cpu_us_per_op": self.cpu_us(configuration, operation),
                    "cores_busy": self.cores_busy(configuration, operation),
                    "redis_commands": self.commands[(configuration, operation)].per_op(
                        m.result.completed
                    ),
                    "context_switches_per_op": self.switches_per_op(configuration, operation),
                }
            )
        return rows


def _label(configuration: str, operation: str) -> str:
    return f"{operation}-{configuration}"


def _split(label: str) -> tuple[str, str]:
    operation, _, configuration = label.partition("-")
    return configuration, operation


def measure(generator: Generator, redis_client: redis.Redis, run: ReplicasRun) -> None:
    """``rounds`` rounds of Get then Put, each on both configurations in alternating order."""
    options = run.options
    slice_s = options.duration_s / options.rounds
    pids = {**run.pids, GENERATOR: generator.pid}
    for configuration in CONFIGURATIONS:
        for operation in OPERATIONS:
            settings = LoadSettings(math.inf, options.duration_s)
            run.totals[(configuration, operation)] = Total(LoadResult(settings))
            run.commands[(configuration, operation)] = Commands()
            run.switches[(configuration, operation)] = {name: [0, 0] for name in pids}
    order = list(CONFIGURATIONS)
    for round_index in range(options.rounds):
        # Alternate which configuration goes first: what the first leaves behind (Redis's
        # AOF to rewrite, a warmer cache) falls on each as often.
        ordered = order if round_index % 2 == 0 else order[::-1]
        for operation in OPERATIONS:
            for configuration in ordered:
                commands_before = redis_commands(redis_client)
                switches_before = {name: context_switches(pid) for name, pid in pids.items()}
                before = cpu_now(pids)
                wire = generator.run(configuration, operation, options.callers, slice_s)
                after = cpu_now(pids)
                switches = run.switches[(configuration, operation)]
                for name, pid in pids.items():
                    now = context_switches(pid)
                    for i in (0, 1):
                        # Not below 0: a thread that ended during the slice took its count.
                        switches[name][i] += max(0, now[i] - switches_before[name][i])
                commands = redis_commands(redis_client)
                run.commands[(configuration, operation)].add(commands_before, commands)
                part = LoadResult.from_wire(LoadSettings(math.inf, slice_s), wire)
                spent = {name: after[name] - before[name] for name in before}
                run.totals[(configuration, operation)].add(part, spent)
    for operation in OPERATIONS:
        for configuration in CONFIGURATIONS:
            result = run.totals[(configuration, operation)].result
            label = _label(configuration, operation)
            measured = Measured(label, "closed", math.inf, options.callers, result)
            measured.hlog = write_hlog(run.folder, f"{label}-closed-{options.callers}", result)
            run.measured.append(measured)
            print_line(measured)


# -- judging and reporting --------------------------------------------------------------


def _over(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def replica_ratios(run: ReplicasRun) -> list[Ratio]:
    """The issue's two targets for each operation, then Redis's and the generator's (info)."""
    one, two = CONFIGURATIONS
    found = []
    for operation in OPERATIONS:
        found.append(
            Ratio(
                f"central CPU per {operation}, 2 replicas / 1",
                _over(run.cpu_us(two, operation)["central"], run.cpu_us(one, operation)["central"]),
                CPU_TARGET,
            )
        )
        found.append(
            Ratio(
                f"{operation} throughput at {run.options.callers} callers, 2 replicas / 1",
                _over(run.throughput(two, operation), run.throughput(one, operation)),
                THROUGHPUT_TARGET,
            )
        )
    for operation in OPERATIONS:
        for process in (REDIS_MAIN, GENERATOR):
            found.append(
                Ratio(
                    f"{process} CPU per {operation}, 2 replicas / 1",
                    _over(run.cpu_us(two, operation)[process], run.cpu_us(one, operation)[process]),
                )
            )
    return found


def bounds(cpu_us: dict[str, float], replicas: int, cores: float) -> dict[str, float]:
    """Operations per second each limit allows, from CPU µs per operation.

    A central process works under one GIL: at most one core each, and the load is
    spread evenly. Redis executes commands on one thread: at most one core. The
    generator is one process: one core. All processes together: ``cores``.
    (Latency limits of a closed loop, and Redis's fsyncs, are not in it.)
    """

    def per_s(cores_used: float, us_per_op: float) -> float:
        return round(cores_used * 1e6 / us_per_op, 0) if us_per_op > 0 else math.inf

    together = cpu_us["central"] + cpu_us[REDIS] + cpu_us[GENERATOR]
    return {
        "centrals": per_s(replicas, cpu_us["central"]),
        "redis main thread": per_s(1, cpu_us[REDIS_MAIN]),
        "generator": per_s(1, cpu_us[GENERATOR]),
        "cores": per_s(cores, together),
    }


def _model(cpu_us: dict[str, float], replicas: int, cores: float) -> dict[str, Any]:
    limits = bounds(cpu_us, replicas, cores)
    binding = min(limits, key=lambda name: limits[name])
    return {
        "cores": round(cores, 2),
        "bounds_per_s": limits,
        "predicted_per_s": limits[binding],
        "binding": binding,
    }


def all_bounds(run: ReplicasRun, cores_here: int) -> dict[str, dict[str, Any]]:
    """For each configuration and operation, what the limits allow: ``here``, with the
    cores other processes left free (to check the model against the measured throughput),
    and on a host of :data:`PREDICTED_CORES` cores with nothing else running."""
    found: dict[str, dict[str, Any]] = {}
    for operation, configuration in itertools.product(OPERATIONS, CONFIGURATIONS):
        cpu = run.cpu_us(configuration, operation)
        replicas = len(CONFIGURATIONS[configuration][0])
        free = max(0.0, cores_here - run.cores_busy(configuration, operation)[OTHERS])
        found[_label(configuration, operation)] = {
            "measured_per_s": round(run.throughput(configuration, operation)),
            "here": _model(cpu, replicas, free),
            f"{PREDICTED_CORES}_cores": _model(cpu, replicas, PREDICTED_CORES),
        }
    return found


def print_table(run: ReplicasRun) -> None:
    print(f"\nclosed loop, {run.options.callers} callers; CPU µs per operation:")
    print(
        f"  {'':<20}{'ops/s':>9}{'central':>9}{'(each)':>16}{'redis':>8}{'(main)':>8}"
        f"{'generator':>11}{'idle':>6}   cores used by others"
    )
    for operation in OPERATIONS:
        for configuration in CONFIGURATIONS:
            cpu = run.cpu_us(configuration, operation)
            each = "/".join(f"{cpu[c]:.0f}" for c in CONFIGURATIONS[configuration][0])
            print(
                f"  {operation + ' ' + configuration:<20}"
                f"{run.throughput(configuration, operation):9.0f}{cpu['central']:9.0f}"
                f"{each:>16}{cpu[REDIS]:8.0f}{cpu[REDIS_MAIN]:8.0f}{cpu[GENERATOR]:11.0f}"
                f"{cpu['idle']:6.0f}   {run.cores_busy(configuration, operation)[OTHERS]:.2f}"
            )


def print_commands(run: ReplicasRun) -> None:
    print(
        "\nRedis per operation: requests read (a pipeline is one), and the busiest commands "
        "(calls x Redis's µs per call):"
    )
    for operation in OPERATIONS:
        for configuration in CONFIGURATIONS:
            ops = run.totals[(configuration, operation)].result.completed
            commands = run.commands[(configuration, operation)]
            busiest = [item for item in commands.per_op(ops).items() if item[0] != READS][:3]
            shown = ", ".join(
                f"{name} {c['calls_per_op']:.2f} x {c['us_per_call']:.1f}" for name, c in busiest
            )
            print(
                f"  {operation + ' ' + configuration:<20}"
                f"{commands.reads_per_op(ops):5.2f} read;  {shown}"
            )


def print_switches(run: ReplicasRun) -> None:
    print("\ncontext switches per operation, voluntary + involuntary:")
    for operation in OPERATIONS:
        for configuration in CONFIGURATIONS:
            per_op = run.switches_per_op(configuration, operation)
            shown = ",  ".join(
                f"{name} {c['voluntary']:.2f} + {c['involuntary']:.2f}"
                for name, c in per_op.items()
            )
            print(f"  {operation + ' ' + configuration:<20}{shown}")


def print_bounds(found: dict[str, dict[str, Any]]) -> None:
    print(
        "\nthroughput (ops/s) the limits allow, from the CPU per operation: here, with the "
        f"cores others left free, and on {PREDICTED_CORES} cores"
    )
    for label, entry in found.items():
        here, there = entry["here"], entry[f"{PREDICTED_CORES}_cores"]
        print(
            f"  {label:<16} measured {entry['measured_per_s']:5.0f};  here ({here['cores']:.1f} "
            f"cores) {here['predicted_per_s']:5.0f}, {here['binding']};  "
            f"{PREDICTED_CORES} cores {there['predicted_per_s']:5.0f}, {there['binding']}"
        )


def write_summary(
    run: ReplicasRun,
    info: dict[str, Any],
    found: list[Ratio],
    limits: dict[str, dict[str, Any]],
) -> None:
    rows = run.rows()
    summary = {
        "machine": info,
        **provenance(),
        "options": {**asdict(run.options), "out": str(run.options.out)},
        "configurations": {
            name: {"centrals": list(centrals), "redis_db": db}
            for name, (centrals, db) in CONFIGURATIONS.items()
        },
        "rows": rows,
        "ratios": [ratio.as_dict() for ratio in found],
        "bounds": limits,
        "valid": all(row["valid"] and not row["errors"] for row in rows),
    }
    (run.folder / "summary.json").write_text(json.dumps(summary, indent=2))


def run_replicas_bench(options: ReplicasBenchOptions) -> ReplicasRun:
    """Start Redis and the centrals, measure both configurations, write and print the results."""
    folder = results_folder(options.out, prefix="replicas-")
    info = machine()
    print_machine(info)
    with (
        tempfile.TemporaryDirectory(prefix="edgekv-bench-replicas-") as work_dir,
        ServerGroup(Path(work_dir)) as group,
    ):
        targets, pids = start_servers(group)
        asyncio.run(prepare(targets))
        run = ReplicasRun(options, folder, pids)
        print(f"results in {folder}", flush=True)
        host, _, port = targets[REDIS].rpartition(":")
        with (
            Generator(targets) as generator,
            redis.Redis(host=host, port=int(port)) as redis_client,
        ):
            print(f"{GENERATOR}: pid {generator.pid}", flush=True)
            measure(generator, redis_client, run)
    finish_machine(info)
    cores_here = int(info["usable_cores"] or 1)
    found = replica_ratios(run)
    limits = all_bounds(run, cores_here)
    write_summary(run, info, found, limits)
    print_table(run)
    print_commands(run)
    print_switches(run)
    print_ratios(found, {})
    print_bounds(limits)
    return run
