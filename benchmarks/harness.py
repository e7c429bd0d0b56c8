"""What the benchmarks share: server processes, the no-op floor, a closed loop, reports.

``central_bench`` and ``edge_bench`` are each a list of scenarios and the
ratios that judge them; everything else lives here, so both measure alike:

* **Server processes.** Every server is a child process (``python -m
  MODULE ...``) in its own session (Ctrl-C reaches only the benchmark, which
  then stops them), with stdout and stderr in files (never pipes, so they
  cannot block), and with ``PR_SET_PDEATHSIG`` so the kernel sends them
  SIGTERM should the benchmark die without cleaning up. :class:`ServerGroup`
  starts several at once, waits for each one's ready line, and stops them all
  in ``finally`` (SIGTERM, then SIGKILL after 10 s).
* **The floor.** ``python -m benchmarks.harness --serve-noop HOST:PORT`` serves
  ``/bench.Noop/Call`` through a generic handler with identity
  (de)serializers and returns its (empty) request: what a gRPC call costs on
  this machine, measured in the same run as the scenarios it judges. With
  ``--forward-to NOOP`` it is a *relay*: it crosses a modelled link (the RTT
  named in the request, waited as the edge waits it) to the no-op server, so
  it is a do-nothing edge: what two hops and a link cost here.
* **Closed loop, interleaved rounds.** A scenario runs N coroutines on one
  channel, each issuing its next call when the previous one returns, first
  for a warm-up and then for a measured slice; :func:`run_rounds` runs every
  scenario's slices round-robin, so drift hits all scenarios alike. Latencies
  (µs) go to plain lists in the loop and into an HdrHistogram afterwards.
  CPU per call comes from ``/proc/PID/stat`` (servers) and
  ``time.process_time()`` (this process).
* **Reports.** A machine description, one line (or Markdown row) per
  scenario, target ratios with PASS/MISS, a contention warning when the floor
  could not keep the cores busy, and the JSON summary for ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from edgekv.rpc import CHANNEL_OPTIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
NOOP_METHOD = "/bench.Noop/Call"
NOOP_READY = re.compile(r"^noop ready on (?P<address>\S+)$", re.MULTILINE)
RELAY_READY = re.compile(r"^relay ready on (?P<address>\S+)$", re.MULTILINE)
CENTRAL_READY = re.compile(r"^edgekv central ready on (?P<address>\S+) ", re.MULTILINE)
EDGE_READY = re.compile(r"^edgekv edge ready on (?P<address>\S+) ", re.MULTILINE)
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0
# HdrHistogram range, in µs: 1 µs .. 60 s, 3 significant digits.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 60_000_000
HDR_DIGITS = 3
# The floor at its highest concurrency should keep (up to two) cores this busy; less
# means something else on the machine took CPU.
CONTENDED_BELOW = 0.85
MiB = 1024 * 1024

# Run in each server child before its module: die with the benchmark, whatever happens to it.
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

# (worker, i) -> one call; worker is the caller's index, i its call count.
Call = Callable[[int, int], Awaitable[object]]


# -- the no-op server and the relay (child processes) ---------------------------------


async def _noop_call(request: bytes, context: Any) -> bytes:
    return request


def _relay_call(forward_to: str) -> Callable[[bytes, Any], Awaitable[bytes]]:
    """A two-hop no-op: wait half an RTT, call the no-op server, wait the other half.

    The request is the modelled RTT in ms as ASCII (empty: none); the waits are
    ``asyncio.sleep``, as in the edge's link model, so a relay is an edge that
    does nothing but cross its link.
    """
    channel = grpc.aio.insecure_channel(forward_to, options=CHANNEL_OPTIONS)
    forward = channel.unary_unary(NOOP_METHOD, request_serializer=None, response_deserializer=None)

    async def relay(request: bytes, context: Any) -> bytes:
        half_s = float(request or b"0") / 2000
        if half_s:
            await asyncio.sleep(half_s)
        await forward(b"", timeout=CALL_TIMEOUT_S)
        if half_s:
            await asyncio.sleep(half_s)
        return b""

    return relay


async def serve_noop(listen: str, forward_to: str | None = None) -> None:
    """Serve ``/bench.Noop/Call`` until SIGTERM or SIGINT: bytes in, same bytes out.

    With ``forward_to``, relay each call to the no-op server there instead.
    """
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    call = _noop_call if forward_to is None else _relay_call(forward_to)
    handler = grpc.method_handlers_generic_handler(
        "bench.Noop",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=None, response_serializer=None
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
    kind = "noop" if forward_to is None else "relay"
    print(f"{kind} ready on {listen.rpartition(':')[0]}:{port}", flush=True)
    await stop.wait()
    await server.stop(1.0)


NOOP_ARGV = ("benchmarks.harness", "--serve-noop", "127.0.0.1:0")


def relay_argv(noop_address: str) -> tuple[str, ...]:
    return (*NOOP_ARGV, "--forward-to", noop_address)


def noop_call(channel: grpc.aio.Channel, rtt_ms: float = 0.0) -> Call:
    """A call of the no-op server (or, with ``rtt_ms``, of a relay: its link's RTT)."""
    method = channel.unary_unary(NOOP_METHOD, request_serializer=None, response_deserializer=None)
    request = f"{rtt_ms:g}".encode() if rtt_ms else b""

    async def noop(worker: int, i: int) -> object:
        return await method(request, timeout=CALL_TIMEOUT_S)

    return noop


# -- server processes -------------------------------------------------------------------


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    argv: Sequence[str]
    ready: re.Pattern[str]
    stdout_path: Path
    stderr_path: Path
    address: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_ready(self) -> bool:
        """True once the ready line named the address; raise if the server died."""
        match = self.ready.search(self.stdout_path.read_text(errors="replace"))
        if match:
            self.address = match["address"]
            return True
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} did not start (exited with {self.process.returncode}): "
                f"{' '.join(self.argv)}\nstderr:\n{self.stderr_tail()}"
            )
        return False

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

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


def spawn_server(
    name: str, module_argv: Sequence[str], ready: re.Pattern[str], log_dir: Path
) -> ServerProcess:
    """Start ``python -m MODULE ARGS``; :meth:`ServerProcess.check_ready` says when it serves."""
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
    return ServerProcess(name, process, module_argv, ready, stdout_path, stderr_path)


class ServerGroup:
    """Servers started together and stopped together: ``with ServerGroup(dir) as group``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[ServerProcess] = []

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def start(
        self, specs: Sequence[tuple[str, Sequence[str], re.Pattern[str]]]
    ) -> list[ServerProcess]:
        """Start (name, module argv, ready pattern) servers at once; return when all serve."""
        started = []
        for name, argv, ready in specs:
            server = spawn_server(name, argv, ready, self.log_dir)
            self.servers.append(server)
            started.append(server)
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = list(started)
        while waiting:
            waiting = [server for server in waiting if not server.check_ready()]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(server.name for server in waiting)
                raise RuntimeError(f"{names} did not start within {START_TIMEOUT_S:g} s")
            if waiting:
                time.sleep(0.02)
        for server in started:
            print(f"{server.name}: pid {server.pid} on {server.address}", flush=True)
        return started

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            code = server.stop()
            if code not in (0, None):
                print(f"{server.name} exited with {code}; its stderr ends:\n{server.stderr_tail()}")
        self.servers.clear()


# -- /proc ------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all threads (0.0 if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_memory(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of ``pid``, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0]) * 1024  # reported in kB
    return out


# -- closed-loop load -----------------------------------------------------------------


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
    # CPU time per call (warm-up included), of the server processes and of this load generator.
    server_cpu_us_per_call: float
    client_cpu_us_per_call: float
    # Cores kept busy by servers + load generator; below the machine's cores when
    # the scenario waits (fsync, a modelled link) -- or when something else took CPU.
    cores_busy: float
    first_error: str | None = None
    # Scenario-specific checks (e.g. an edge's hit and miss counters over the slices).
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    """One (operation, path, callers) cell; its slices from every round add up here."""

    name: str
    path: str
    callers: int
    make_call: Callable[[int], Call]  # round number -> the call its callers repeat
    server_pids: tuple[int, ...] = ()  # whose CPU counts as the server's
    # Measured seconds of this scenario relative to the others (slow calls need longer).
    duration_factor: float = 1.0
    # Runs around each slice (warm-up included): e.g. reads an edge's counters before and after.
    around_slice: Callable[[Scenario], AbstractAsyncContextManager[None]] | None = None
    samples: list[int] = field(default_factory=list)
    window_s: float = 0.0
    errors: list[BaseException] = field(default_factory=list)
    calls: int = 0  # every call finished, warm-up included
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    elapsed_s: float = 0.0  # warm-up included
    checks: dict[str, Any] = field(default_factory=dict)

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
            checks=dict(self.checks),
        )


def _servers_cpu_s(pids: Sequence[int]) -> float:
    return sum(process_cpu_s(pid) for pid in pids)


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
    server_cpu_start = _servers_cpu_s(scenario.server_pids)
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
    scenario.server_cpu_s += _servers_cpu_s(scenario.server_pids) - server_cpu_start
    scenario.calls += sum(calls)
    for worker_samples in samples:
        scenario.samples.extend(worker_samples)


@dataclass(frozen=True)
class LoopSettings:
    duration_s: float  # measured seconds per scenario (times its duration_factor)
    warmup_s: float  # unmeasured warm-up before each slice
    rounds: int


async def run_rounds(scenarios: Sequence[Scenario], settings: LoopSettings) -> None:
    """Every scenario for one slice per round, round-robin, ``settings.rounds`` times."""
    for round_number in range(settings.rounds):
        for scenario in scenarios:
            call = scenario.make_call(round_number)
            slice_s = settings.duration_s * scenario.duration_factor / settings.rounds
            around = (
                scenario.around_slice(scenario)
                if scenario.around_slice is not None
                else contextlib.nullcontext()
            )
            async with around:
                await closed_loop(scenario, call, settings.warmup_s, slice_s)
        print(f"round {round_number + 1}/{settings.rounds} done", flush=True)


def add_loop_arguments(
    parser: argparse.ArgumentParser, labels: Sequence[str], duration_s: float = 3.0
) -> None:
    """``--duration-s``, ``--rounds``, ``--warmup-s``, ``--only`` and ``--out``."""
    parser.add_argument(
        "--duration-s",
        type=float,
        default=duration_s,
        help=f"measured time per scenario, split over the rounds (default {duration_s:g})",
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
        "--markdown", action="store_true", help="also print the results as a Markdown table"
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="LABELS",
        help=f"comma-separated subset to run (e.g. to profile one); of: {', '.join(labels)}",
    )


def check_loop_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, labels: Sequence[str]
) -> None:
    args.only = tuple(label for label in args.only.split(",") if label)
    if unknown := set(args.only) - set(labels):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    if args.duration_s <= 0 or args.warmup_s < 0 or args.rounds < 1:
        parser.error("need --duration-s > 0, --warmup-s >= 0 and --rounds >= 1")


def loop_settings(args: argparse.Namespace) -> LoopSettings:
    return LoopSettings(args.duration_s, args.warmup_s, args.rounds)


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


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}, "
        f"Linux {info['kernel']}, load average {info['load_average_at_start']}",
        flush=True,
    )


def finish_machine(info: dict[str, Any]) -> None:
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at end {info['load_average_at_end']}")


def print_results(results: Sequence[Result], markdown: bool = False) -> None:
    print("results (µs; ops/s over the measured windows):")
    width = max((len(result.scenario) for result in results), default=6)
    for result in results:
        errors = f"  errors={result.errors} ({result.first_error})" if result.errors else ""
        print(
            f"  {result.scenario:<{width}} {result.path:<6} c={result.callers:<3}"
            f" p50={result.p50_us:>7} p90={result.p90_us:>7} p99={result.p99_us:>7}"
            f" max={result.max_us:>8} µs  {result.ops_per_s:>7.0f} ops/s"
            f"  cpu/call server {result.server_cpu_us_per_call:>4.0f}"
            f" client {result.client_cpu_us_per_call:>4.0f} µs, {result.cores_busy:.2f} cores busy"
            f"  (n={result.count}){errors}",
            flush=True,
        )
    if markdown:
        print()
        print(
            "| scenario | path | callers | p50 µs | p90 µs | p99 µs | max µs | ops/s"
            " | server CPU µs/call | client CPU µs/call | cores busy |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(
                f"| {r.scenario} | {r.path} | {r.callers} | {r.p50_us:,} | {r.p90_us:,}"
                f" | {r.p99_us:,} | {r.max_us:,} | {r.ops_per_s:,.0f}"
                f" | {r.server_cpu_us_per_call:,.0f} | {r.client_cpu_us_per_call:,.0f}"
                f" | {r.cores_busy:.2f} |"
            )
        print()


def find(results: Sequence[Result], scenario: str, path: str, callers: int) -> Result | None:
    for result in results:
        if (result.scenario, result.path, result.callers) == (scenario, path, callers):
            return result
    return None


def ratio(
    label: str, value: float, target: str | None, passed: bool | None, is_target: bool
) -> dict[str, Any]:
    """One entry of the ``ratios`` summary: a target (PASS/MISS) or, if not, information.

    Information may still be judged against the target (e.g. the same ratio on
    another path); with ``target=None`` it is a plain figure.
    """
    return {
        "label": label,
        "value": round(value, 3),
        "target": target,
        "pass": passed,
        "is_target": is_target,
    }


def print_ratios(ratios: dict[str, dict[str, Any]], heading: str) -> None:
    print(heading)
    for entry in ratios.values():
        kind = "target" if entry["is_target"] else "info  "
        if entry["target"] is None:
            value = entry["value"]
            shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
            print(f"  {kind} {entry['label']}: {shown}")
            continue
        verdict = "PASS" if entry["pass"] else "MISS"
        print(
            f"  {kind} {entry['label']}: {entry['value']:.2f} (target {entry['target']}) {verdict}"
        )


def contention(results: Sequence[Result], cores: int) -> str | None:
    """Why the run is unreliable, if the no-op floor could not keep the machine busy.

    With many callers server and load generator between them keep every core
    busy (they are CPU-bound, nothing waits); when they do not, something else
    ran here.
    """
    floors = [result for result in results if result.scenario == "floor"]
    if not floors or cores < 1:
        return None
    floor = max(floors, key=lambda result: result.callers)
    if floor.callers < 2 or floor.cores_busy >= CONTENDED_BELOW * min(cores, 2):
        return None
    return (
        f"the floor at {floor.callers} callers kept only {floor.cores_busy:.2f} of {cores} cores"
        " busy: other work on this machine took CPU, so these figures are skewed; rerun when idle"
    )


# -- main -----------------------------------------------------------------------------


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_main(run: Callable[[Path], Coroutine[Any, Any, dict[str, Any]]], out: Path | None) -> int:
    """Run a benchmark in a fresh work folder (removed after) and write its summary.

    Exit status: 0 when every call succeeded (a missed target is a finding, not
    a failure), 2 when calls failed, 130 on Ctrl-C.
    """
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    work_dir = Path(tempfile.mkdtemp(prefix="edgekv-bench-"))
    try:
        summary = asyncio.run(run(work_dir))
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if out:
        out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {out}")
    failed = any(result["errors"] for result in summary["results"]) or summary.get("failed")
    return 2 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness")
    parser.add_argument("--serve-noop", metavar="HOST:PORT", required=True)
    parser.add_argument("--forward-to", metavar="HOST:PORT", help="relay to this no-op server")
    args = parser.parse_args(argv)
    asyncio.run(serve_noop(args.serve_noop, args.forward_to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
