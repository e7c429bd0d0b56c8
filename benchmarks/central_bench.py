"""Central store latency and throughput, measured against the gRPC floor in the same run.

Run::

    .venv/bin/python -m benchmarks.central_bench [--duration-s 3] [--out FILE.json]

Theory of operation:

* **Floor in the same run.** Absolute numbers say more about the machine than
  about edgekv, so every run also measures what gRPC alone costs here: a child
  process serving ``/bench.Noop/Call`` through a generic handler with identity
  (de)serializers that returns its (empty) request. The targets are ratios to
  that floor, or between scenarios of the same run.
* **Interleaved rounds.** Every scenario's measured time is split into
  ``--rounds`` slices and the slices run round-robin (floor, Get, Put, ...,
  then again), so a neighbour's load or a clock change skews all scenarios
  alike instead of one of them; the slices of a scenario add up to its result.
* **Separate processes.** Both servers (the no-op one and ``python -m edgekv
  central --storage sqlite:... --no-write-rate-limit``) are child processes,
  so the load generator never shares an event loop or a GIL with a server;
  only one of them is busy at a time. They run in their own session (Ctrl-C
  reaches only this script, which then stops them), are stopped in
  ``finally`` (SIGTERM, then SIGKILL), and have the kernel send them SIGTERM
  should this script die without cleaning up (``PR_SET_PDEATHSIG``). Their
  stdout and stderr go to files, never pipes, so they cannot block.
* **Closed loop.** A scenario runs N coroutines on one channel, each issuing
  its next call as soon as the previous one returns, first for a warm-up and
  then for the measured slice. Latencies (µs) are appended to plain lists in
  the loop and put into an HdrHistogram afterwards, so recording costs the
  loop almost nothing. Throughput is calls begun in the slices divided by
  their length. A closed loop under-reports tail latency (a slow call delays
  the next one: coordinated omission) and its throughput is "N callers'
  worth", not capacity; it is a first script, to be replaced by an open-loop
  harness with a fixed arrival rate.
* **Two paths.** ``client`` is what users see (``edgekv.Client``:
  ``kv.get`` / ``kv.put`` with validation, the read-retry wrapper, decoding);
  ``stub`` calls the raw generated stub with prepared requests, which
  separates client-library cost from server cost. The target ratios use the
  client path; the stub ratios are printed next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from edgekv import Client
from edgekv.client import BulkPutEntry, KVNamespace
from edgekv.rpc import CHANNEL_OPTIONS
from edgekv.v1 import central_pb2 as pb

REPO_ROOT = Path(__file__).resolve().parents[1]
NOOP_METHOD = "/bench.Noop/Call"
NOOP_READY = re.compile(r"^noop ready on (?P<address>\S+)$", re.MULTILINE)
CENTRAL_READY = re.compile(r"^edgekv central ready on (?P<address>\S+) ", re.MULTILINE)
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0
# HdrHistogram range, in µs: 1 µs .. 60 s, 3 significant digits.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 60_000_000
HDR_DIGITS = 3
VALUE_BYTES = 100
GET_KEYS = 1000
CONCURRENCIES = (1, 16)
OPERATIONS = (
    ("floor", "raw"),
    ("get", "client"),
    ("get", "stub"),
    ("put", "client"),
    ("put", "stub"),
)
ALL_LABELS = tuple(f"{op}-{path}-{n}" for n in CONCURRENCIES for op, path in OPERATIONS)
TARGET_GET_OVER_FLOOR_P50 = 1.3
TARGET_PUT_OVER_GET_THROUGHPUT = 0.7
# The floor at 16 callers should keep (up to two) cores this busy; less means contention.
CONTENDED_BELOW = 0.85

# Run in each server child before its module: die with this script, whatever happens to it.
_CHILD_PRELUDE = """\
import ctypes, os, runpy, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent died before the prctl took effect
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""

Call = Callable[[int, int], Awaitable[object]]


# -- the no-op server (a child process) -----------------------------------------------


async def _noop_call(request: bytes, context: Any) -> bytes:
    return request


async def serve_noop(listen: str) -> None:
    """Serve ``/bench.Noop/Call`` (bytes in, same bytes out) until SIGTERM or SIGINT."""
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        "bench.Noop",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                _noop_call, request_deserializer=None, response_serializer=None
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"noop ready on {listen.rpartition(':')[0]}:{port}", flush=True)
    await stop.wait()
    await server.stop(1.0)


# -- server processes -------------------------------------------------------------------


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    stdout_path: Path
    stderr_path: Path

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    name: str, module_argv: Sequence[str], ready: re.Pattern[str], log_dir: Path
) -> ServerProcess:
    """Start ``python -m MODULE ARGS`` and return once its ready line names its address."""
    stdout_path = log_dir / f"{name}.stdout"
    stderr_path = log_dir / f"{name}.stderr"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-c", _CHILD_PRELUDE, str(os.getpid()), *module_argv]
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=log_dir,
            start_new_session=True,
        )
    server = ServerProcess(name, process, "", stdout_path, stderr_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            match = ready.search(stdout_path.read_text(errors="replace"))
            if match:
                server.address = match["address"]
                return server
            if process.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {process.returncode}" if process.poll() is not None else "slow"
                raise RuntimeError(
                    f"{name} did not start ({why}): {' '.join(module_argv)}\n"
                    f"stderr:\n{stderr_path.read_text(errors='replace')}"
                )
            time.sleep(0.02)
    except BaseException:
        server.stop()
        raise


# -- closed-loop load -----------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all threads (0.0 if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass
class Result:
    scenario: str
    path: str
    callers: int
    count: int
    errors: int
    window_s: float
    ops_per_s: float
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float
    # CPU time per call (warm-up included), of the server process and of this load generator.
    server_cpu_us_per_call: float
    client_cpu_us_per_call: float
    # Cores kept busy by server + load generator; below the machine's cores when
    # the scenario waits (fsync) -- or when something else on the machine took CPU.
    cores_busy: float
    first_error: str | None = None


@dataclass
class Scenario:
    """One (operation, path, callers) cell; its slices from every round add up here."""

    name: str
    path: str
    callers: int
    make_call: Callable[[int], Call]  # round number -> the call its callers repeat
    samples: list[int] = field(default_factory=list)
    window_s: float = 0.0
    errors: list[BaseException] = field(default_factory=list)
    server_pid: int = 0
    calls: int = 0  # every call finished, warm-up included
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    elapsed_s: float = 0.0  # warm-up included

    @property
    def label(self) -> str:
        return f"{self.name}-{self.path}-{self.callers}"

    def result(self) -> Result:
        histogram = HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)
        for value in self.samples:
            histogram.record_value(max(value, HDR_LOWEST_US))
        count = histogram.get_total_count()
        return Result(
            scenario=self.name,
            path=self.path,
            callers=self.callers,
            count=count,
            errors=len(self.errors),
            window_s=round(self.window_s, 3),
            ops_per_s=round(count / self.window_s, 1) if self.window_s > 0 else 0.0,
            p50_us=histogram.get_value_at_percentile(50),
            p90_us=histogram.get_value_at_percentile(90),
            p99_us=histogram.get_value_at_percentile(99),
            max_us=histogram.get_max_value(),
            mean_us=round(histogram.get_mean_value(), 1),
            server_cpu_us_per_call=round(self.server_cpu_s / max(self.calls, 1) * 1e6, 1),
            client_cpu_us_per_call=round(self.client_cpu_s / max(self.calls, 1) * 1e6, 1),
            cores_busy=round(
                (self.server_cpu_s + self.client_cpu_s) / max(self.elapsed_s, 1e-9), 2
            ),
            first_error=repr(self.errors[0]) if self.errors else None,
        )


async def closed_loop(scenario: Scenario, call: Call, warmup_s: float, duration_s: float) -> None:
    """``callers`` coroutines calling back to back; keep the calls begun in the window."""
    loop = asyncio.get_running_loop()
    clock = loop.time
    perf = time.perf_counter_ns
    slice_start = clock()
    window_start = slice_start + warmup_s
    window_end = window_start + duration_s
    samples: list[list[int]] = [[] for _ in range(scenario.callers)]
    calls = [0] * scenario.callers
    server_cpu_start = process_cpu_s(scenario.server_pid)
    client_cpu_start = time.process_time()

    async def caller(worker: int) -> None:
        record = samples[worker].append
        i = 0
        while (now := clock()) < window_end:
            t0 = perf()
            try:
                await call(worker, i)
            except Exception as exc:
                scenario.errors.append(exc)
                await asyncio.sleep(0.01)  # do not spin on a dead server
                continue
            finally:
                i += 1
            if now >= window_start:
                record((perf() - t0) // 1000)
            calls[worker] += 1

    await asyncio.gather(*(caller(worker) for worker in range(scenario.callers)))
    # Calls begun before window_end finish a little after it; count that time too.
    scenario.window_s += clock() - window_start
    scenario.elapsed_s += clock() - slice_start
    scenario.client_cpu_s += time.process_time() - client_cpu_start
    scenario.server_cpu_s += process_cpu_s(scenario.server_pid) - server_cpu_start
    scenario.calls += sum(calls)
    for worker_samples in samples:
        scenario.samples.extend(worker_samples)


# -- scenarios ------------------------------------------------------------------------


@dataclass
class Settings:
    duration_s: float
    warmup_s: float
    rounds: int
    only: tuple[str, ...]
    db_dir: Path
    work_dir: Path  # server logs; removed at the end


def _print_result(result: Result) -> None:
    errors = f"  errors={result.errors} ({result.first_error})" if result.errors else ""
    print(
        f"  {result.scenario:<6} {result.path:<6} c={result.callers:<3}"
        f" p50={result.p50_us:>7} p90={result.p90_us:>7} p99={result.p99_us:>7}"
        f" max={result.max_us:>8} µs  {result.ops_per_s:>7.0f} ops/s"
        f"  cpu/call server {result.server_cpu_us_per_call:>4.0f}"
        f" client {result.client_cpu_us_per_call:>4.0f} µs, {result.cores_busy:.2f} cores busy"
        f"  (n={result.count}){errors}",
        flush=True,
    )


def noop_scenarios(channel: grpc.aio.Channel) -> list[Scenario]:
    method = channel.unary_unary(NOOP_METHOD, request_serializer=None, response_deserializer=None)

    async def noop(worker: int, i: int) -> object:
        return await method(b"", timeout=CALL_TIMEOUT_S)

    return [Scenario("floor", "raw", callers, lambda _: noop) for callers in CONCURRENCIES]


def central_scenarios(client: Client, kv: KVNamespace, keys: list[str]) -> list[Scenario]:
    value = b"v" * VALUE_BYTES
    # Each caller walks the keys from its own offset, so concurrent callers read different rows.
    stride = len(keys) // max(CONCURRENCIES) + 1

    async def get_client(worker: int, i: int) -> object:
        return await kv.get(keys[(worker * stride + i) % len(keys)])

    requests = [pb.GetRequest(namespace_id=kv.id, key=key.encode()) for key in keys]
    stub_get = client.stub.Get

    async def get_stub(worker: int, i: int) -> object:
        request = requests[(worker * stride + i) % len(requests)]
        return await stub_get(request, timeout=CALL_TIMEOUT_S)

    stub_put = client.stub.Put

    def put(path: str, callers: int) -> Callable[[int], Call]:
        # Every call writes a key never written before: the per-key limit can never trigger.
        def make(round_number: int) -> Call:
            tag = f"p-{path}-{callers}-{round_number}"

            async def put_client(worker: int, i: int) -> object:
                return await kv.put(f"{tag}-{worker}-{i}", value)

            async def put_stub(worker: int, i: int) -> object:
                key = f"{tag}-{worker}-{i}".encode()
                request = pb.PutRequest(namespace_id=kv.id, key=key, value=value)
                return await stub_put(request, timeout=CALL_TIMEOUT_S)

            return put_client if path == "client" else put_stub

        return make

    scenarios = []
    for callers in CONCURRENCIES:
        scenarios += [
            Scenario("get", "client", callers, lambda _: get_client),
            Scenario("get", "stub", callers, lambda _: get_stub),
            Scenario("put", "client", callers, put("client", callers)),
            Scenario("put", "stub", callers, put("stub", callers)),
        ]
    return scenarios


async def measure(settings: Settings, log_dir: Path) -> list[Result]:
    """Start both servers, then run every scenario for a slice in each of the rounds."""
    servers: list[ServerProcess] = []
    db_path = settings.db_dir / "central-bench.db"
    storage = f"sqlite:{db_path}"
    try:
        noop = start_server(
            "noop", ["benchmarks.central_bench", "--serve-noop", "127.0.0.1:0"], NOOP_READY, log_dir
        )
        servers.append(noop)
        print(f"noop server: pid {noop.process.pid} on {noop.address}", flush=True)
        central_argv = ["edgekv", "central", "--listen", "127.0.0.1:0", "--storage", storage]
        central = start_server(
            "central", [*central_argv, "--no-write-rate-limit"], CENTRAL_READY, log_dir
        )
        servers.append(central)
        print(f"central: pid {central.process.pid} on {central.address} {storage}", flush=True)
        async with (
            grpc.aio.insecure_channel(noop.address, options=CHANNEL_OPTIONS) as channel,
            Client(central=central.address, timeout_s=CALL_TIMEOUT_S) as client,
        ):
            ns = await client.create_namespace(f"bench-{os.getpid()}-{time.time_ns()}")
            kv = client.namespace(ns.id)
            keys = [f"k{i:05d}" for i in range(GET_KEYS)]
            bulk = await kv.bulk_put([BulkPutEntry(key, b"v" * VALUE_BYTES) for key in keys])
            if bulk.successful_key_count != GET_KEYS:
                raise RuntimeError(f"pre-writing {GET_KEYS} keys failed: {bulk}")
            scenarios = noop_scenarios(channel) + central_scenarios(client, kv, keys)
            for scenario in scenarios:
                server = noop if scenario.name == "floor" else central
                scenario.server_pid = server.process.pid
            scenarios.sort(key=lambda s: s.callers)  # stable: floor first at each concurrency
            if settings.only:
                scenarios = [s for s in scenarios if s.label in settings.only]
            slice_s = settings.duration_s / settings.rounds
            for round_number in range(settings.rounds):
                for scenario in scenarios:
                    call = scenario.make_call(round_number)
                    await closed_loop(scenario, call, settings.warmup_s, slice_s)
                print(f"round {round_number + 1}/{settings.rounds} done", flush=True)
    finally:
        for server in servers:
            code = server.stop()
            if code not in (0, None):
                tail = server.stderr_path.read_text(errors="replace")[-2000:]
                print(f"{server.name} exited with {code}; its stderr ends:\n{tail}")
        for suffix in ("", "-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    results = [scenario.result() for scenario in scenarios]
    print("results (µs; ops/s over the measured windows):")
    for result in results:
        _print_result(result)
    return results


# -- report ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": f"{protobuf_version} ({api_implementation.Type()})",
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _find(results: list[Result], scenario: str, path: str, callers: int) -> Result | None:
    for result in results:
        if (result.scenario, result.path, result.callers) == (scenario, path, callers):
            return result
    return None


def ratios(results: list[Result]) -> dict[str, dict[str, Any]]:
    """The target ratios (client path) and the same ratios on the stub path, for comparison."""
    out: dict[str, dict[str, Any]] = {}
    top = max(CONCURRENCIES)
    floor = _find(results, "floor", "raw", 1)
    for path in ("client", "stub"):
        get1 = _find(results, "get", path, 1)
        if floor and get1 and floor.p50_us:
            value = get1.p50_us / floor.p50_us
            out[f"get_p50_over_floor_p50_c1_{path}"] = {
                "label": f"Get p50 / floor p50 at 1 caller ({path})",
                "value": round(value, 3),
                "target": f"<= {TARGET_GET_OVER_FLOOR_P50}",
                "pass": value <= TARGET_GET_OVER_FLOOR_P50,
                "is_target": path == "client",
            }
        get16 = _find(results, "get", path, top)
        put16 = _find(results, "put", path, top)
        if get16 and put16 and get16.ops_per_s:
            value = put16.ops_per_s / get16.ops_per_s
            out[f"put_over_get_throughput_c{top}_{path}"] = {
                "label": f"Put throughput / Get throughput at {top} callers ({path})",
                "value": round(value, 3),
                "target": f">= {TARGET_PUT_OVER_GET_THROUGHPUT}",
                "pass": value >= TARGET_PUT_OVER_GET_THROUGHPUT,
                "is_target": path == "client",
            }
    return out


def contention(results: list[Result], cores: int) -> str | None:
    """Why the run is unreliable, if the no-op floor could not keep the machine busy.

    With 16 callers server and load generator between them keep every core busy
    (they are CPU-bound, nothing waits); when they do not, something else ran here.
    """
    floor = _find(results, "floor", "raw", max(CONCURRENCIES))
    if floor is None or cores < 1 or floor.cores_busy >= CONTENDED_BELOW * min(cores, 2):
        return None
    return (
        f"the floor at {floor.callers} callers kept only {floor.cores_busy:.2f} of {cores} cores"
        " busy: other work on this machine took CPU, so these figures are skewed; rerun when idle"
    )


# -- main -----------------------------------------------------------------------------


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


async def run(settings: Settings) -> dict[str, Any]:
    info = machine()
    print(
        f"machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}, "
        f"Linux {info['kernel']}, load average {info['load_average_at_start']}",
        flush=True,
    )
    print(
        f"closed loop, callers {'/'.join(map(str, CONCURRENCIES))}; per scenario "
        f"{settings.duration_s:g} s measured in {settings.rounds} rounds, each slice after "
        f"{settings.warmup_s:g} s warm-up; {VALUE_BYTES}-byte values; sqlite in {settings.db_dir}",
        flush=True,
    )
    results = await measure(settings, settings.work_dir)
    computed = ratios(results)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at end {info['load_average_at_end']}")
    contended = contention(results, info["usable_cores"])
    if contended:
        print(f"WARNING: {contended}")
    print("ratios (client path = what users see; stub path for comparison):")
    for entry in computed.values():
        verdict = "PASS" if entry["pass"] else "MISS"
        kind = "target" if entry["is_target"] else "info  "
        print(
            f"  {kind} {entry['label']}: {entry['value']:.2f} (target {entry['target']}) {verdict}"
        )
    return {
        "machine": info,
        "settings": {
            "duration_s": settings.duration_s,
            "rounds": settings.rounds,
            "warmup_s_per_slice": settings.warmup_s,
            "callers": list(CONCURRENCIES),
            "value_bytes": VALUE_BYTES,
            "get_keys": GET_KEYS,
            "loop": "closed",
            "storage": "sqlite (WAL, synchronous=FULL)",
        },
        "results": [asdict(result) for result in results],
        "ratios": computed,
        "contention_warning": contended,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.central_bench",
        description="Central Get/Put latency and throughput against a gRPC no-op floor.",
    )
    parser.add_argument(
        "--duration-s",
        type=float,
        default=3.0,
        help="measured time per scenario, split over the rounds (default 3)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run every scenario this many times, interleaved, so drift hits all alike (default 3)",
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=0.5,
        help="unmeasured warm-up before each slice (default 0.5)",
    )
    parser.add_argument("--out", type=Path, help="write a JSON summary here")
    parser.add_argument(
        "--only",
        default="",
        metavar="LABELS",
        help="comma-separated subset to run, e.g. get-client-1 (for profiling); "
        f"of: {', '.join(ALL_LABELS)}",
    )
    parser.add_argument(
        "--db-dir", type=Path, help="folder for the SQLite file (default: a fresh temp folder)"
    )
    parser.add_argument("--serve-noop", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = tuple(label for label in args.only.split(",") if label)
    if unknown := set(args.only) - set(ALL_LABELS):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    if args.db_dir is not None and not args.db_dir.is_dir():
        parser.error(f"--db-dir: {args.db_dir} is not a folder")
    if args.duration_s <= 0 or args.warmup_s < 0 or args.rounds < 1:
        parser.error("need --duration-s > 0, --warmup-s >= 0 and --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_noop:
        asyncio.run(serve_noop(args.serve_noop))
        return 0
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    work_dir = Path(tempfile.mkdtemp(prefix="edgekv-bench-"))
    settings = Settings(
        args.duration_s, args.warmup_s, args.rounds, args.only, args.db_dir or work_dir, work_dir
    )
    try:
        summary = asyncio.run(run(settings))
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")
    # A missed target is a finding, not a failure; calls that failed are.
    return 2 if any(result["errors"] for result in summary["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
