"""``edgekv bench api``: the REST API node's GET beside the floors it stands on, in one run.

Theory of operation: the API node (``edgekv api``) is one HTTP hop (aiohttp) in
front of one gRPC hop (central's ``Get``). So it is judged on its own share:
what its GET adds to central's Get, ``API GET p50 - central Get p50``, against
what a bare HTTP hop of the same framework costs (target <= 1.2 x that hop's
p50), and its throughput at 16 concurrent callers against central's own Get
(target >= 0.7). Four measurements, all against child processes started by
:class:`~edgekv.bench.servers.ServerGroup` and measured in the same run:

- ``floor``: a no-op call to the bare ``grpc.aio`` server of
  :mod:`edgekv.bench.servers` — what any gRPC hop costs here;
- ``central-get``: central's ``Get`` of a 100-byte value through the raw stub,
  with the same prepared request and token metadata the API node sends —
  exactly the API's second hop;
- ``http-floor``: a bare aiohttp app (``python -m edgekv.bench.api
  --serve-http-noop HOST:PORT``), set up as the API node's app (one catch-all
  route, no access log), answering 200 with a small JSON body to the very
  requests the API gets;
- ``api-get``: ``GET …/values/{key}`` through ``edgekv api`` with a bearer
  token (its identity cache makes that one central call per request).

HTTP calls go through one aiohttp ``ClientSession`` per generator (keep-alive,
a pool of 16 connections), gRPC calls through one ``grpc.aio`` channel, as in
:mod:`edgekv.bench.scenarios`. Each measurement is taken twice: open loop at a
low rate (latency from the intended start, :func:`~edgekv.bench.loadgen.run_workers`)
and closed loop with 16 callers (throughput,
:func:`~edgekv.bench.loadgen.closed_loop`). Both run in interleaved rounds —
floor, central, HTTP, API, floor, … — whose histograms and counts are summed,
so that drift on a shared machine falls on all four alike. Around every slice
each process's CPU time is read from ``/proc``, so the summary also says what
one call costs in CPU in each process: what the throughput ratio is made of.

Everything goes to ``results/bench/api-<timestamp>/``: ``summary.json``
(machine, provenance, options, every row, CPU per call, the ratios with their
verdicts) and ``histograms/*.hlog``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

import edgekv
from edgekv.bench.loadgen import (
    Arrival,
    CallFn,
    LoadResult,
    LoadSettings,
    closed_loop,
    run_workers,
)
from edgekv.bench.runner import (
    DEFAULT_OUT,
    RATE_PER_WORKER,
    Measured,
    Ratio,
    print_line,
    print_ratios,
    results_folder,
    write_hlog,
)
from edgekv.bench.scenarios import KEY_COUNT, VALUE, Scenario, connect_floor, key
from edgekv.bench.servers import (
    CALL_TIMEOUT_S,
    NOOP_ARGV,
    ServerGroup,
    finish_machine,
    machine,
    print_machine,
    process_cpu_s,
)
from edgekv.channels import open_channel
from edgekv.core.accounts import DEFAULT_ACCOUNT_ID
from edgekv.node_args import ANY_LOOPBACK_PORT, api_args, central_args, edgekv_command
from edgekv.process import format_ready
from edgekv.provenance import provenance
from edgekv.rpc import AUTHORIZATION_METADATA_KEY
from edgekv.topology import CentralSpec, Topology
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc

CALLERS = 16
HTTP_POOL = 16
ROUNDS = 3
DEFAULT_RATE_PER_S = 300.0
# What the bare HTTP endpoint answers: Cloudflare's envelope, empty.
NOOP_BODY: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": {}}
HTTP_NOOP_ARGV = (sys.executable, "-m", "edgekv.bench.api", "--serve-http-noop", ANY_LOOPBACK_PORT)
GENERATOR = "generator"
SHARE_TARGET = "<= 1.2"
THROUGHPUT_TARGET = ">= 0.7"


# -- the bare HTTP endpoint (a child process) ------------------------------------------


async def _noop_answer(request: web.Request) -> web.Response:
    return web.json_response(NOOP_BODY)


async def serve_http_noop(listen: str) -> None:
    """Answer every request 200 with :data:`NOOP_BODY` until SIGTERM or SIGINT.

    Set up as :class:`api.server.ApiServer` sets up its app: one catch-all route,
    an ``AppRunner`` without access log or signal handling.
    """
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _noop_answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(format_ready("http-noop", f"{host}:{runner.addresses[0][1]}"), flush=True)
    await stop.wait()
    await runner.cleanup()


# -- connectors (module level: a worker process rebuilds them by name) ------------------


@asynccontextmanager
async def connect_central_get(targets: dict[str, Any]) -> AsyncIterator[CallFn]:
    """Central's Get through the raw stub, with the token: the API node's own second hop."""
    metadata = ((AUTHORIZATION_METADATA_KEY, f"Bearer {targets['token']}"),)
    requests = [
        pb.GetRequest(namespace_id=targets["namespace"], key=key(k).encode())
        for k in range(KEY_COUNT)
    ]
    async with open_channel(targets["central"]) as channel:
        stub = central_pb2_grpc.CentralStoreStub(channel)

        async def call(index: int) -> object:
            answer = await stub.Get(
                requests[index % KEY_COUNT], timeout=CALL_TIMEOUT_S, metadata=metadata
            )
            if not answer.entry.found:
                raise RuntimeError(f"{key(index)} not found")
            return answer

        yield call


@asynccontextmanager
async def connect_http_floor(targets: dict[str, Any]) -> AsyncIterator[CallFn]:
    """The API's very requests, sent to the bare endpoint."""
    async with _http_calls(targets, targets["http_noop"], expected=None) as call:
        yield call


@asynccontextmanager
async def connect_api_get(targets: dict[str, Any]) -> AsyncIterator[CallFn]:
    """``GET …/values/{key}`` through the API node; the body must be the value."""
    async with _http_calls(targets, targets["api"], expected=VALUE) as call:
        yield call


@asynccontextmanager
async def _http_calls(
    targets: dict[str, Any], address: str, expected: bytes | None
) -> AsyncIterator[CallFn]:
    urls = [value_url(address, targets["namespace"], key(k)) for k in range(KEY_COUNT)]
    headers = {"Authorization": f"Bearer {targets['token']}"}
    connector = aiohttp.TCPConnector(limit=HTTP_POOL)
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call(index: int) -> object:
            async with session.get(urls[index % KEY_COUNT], headers=headers) as response:
                body = await response.read()
            if response.status != 200 or (expected is not None and body != expected):
                raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
            return body

        yield call


def value_url(address: str, namespace_id: str, name: str) -> URL:
    """The v4 route of a value (keys here need no percent-encoding)."""
    path = (
        f"/client/v4/accounts/{DEFAULT_ACCOUNT_ID}/storage/kv/namespaces/"
        f"{namespace_id}/values/{name}"
    )
    return URL(f"http://{address}{path}", encoded=True)


def measurements(rate_per_s: float, callers: int) -> list[Scenario]:
    """The four, in the order each round runs them."""
    return [
        Scenario(
            "floor",
            "a no-op gRPC call to a bare grpc.aio server",
            connect_floor,
            rate_per_s,
            floor=None,
            closed_callers=callers,
        ),
        Scenario(
            "central-get",
            "central's Get of 100 bytes, raw stub with the token (the API's second hop)",
            connect_central_get,
            rate_per_s,
            closed_callers=callers,
        ),
        Scenario(
            "http-floor",
            "the same GET to a bare aiohttp endpoint answering a small JSON body",
            connect_http_floor,
            rate_per_s,
            floor=None,
            closed_callers=callers,
        ),
        Scenario(
            "api-get",
            "GET …/values/{key} (100 bytes) through edgekv api",
            connect_api_get,
            rate_per_s,
            floor="http-floor",
            closed_callers=callers,
        ),
    ]


# -- the servers ------------------------------------------------------------------------


def start_servers(group: ServerGroup, storage: str) -> dict[str, Any]:
    """The gRPC floor, the HTTP floor and central, then the API node in front of central."""
    url = f"sqlite:{group.log_dir / 'central.db'}" if storage == "sqlite" else "memory:"
    topology = Topology(CentralSpec(storage=url, write_rate_limit=False), ())
    noop, http_noop, central = group.start(
        [
            ("noop", NOOP_ARGV),
            ("http-noop", HTTP_NOOP_ARGV),
            ("central", edgekv_command(central_args(topology))),
        ]
    )
    (api,) = group.start([("api", edgekv_command(api_args(central=central.address)))])
    return {
        "noop": noop.address,
        "http_noop": http_noop.address,
        "central": central.address,
        "api": api.address,
    }


async def prepare(targets: dict[str, Any]) -> None:
    """A namespace of the default account with the keys every GET reads, and a token."""
    async with edgekv.Client(central=targets["central"]) as client:
        namespace = await client.create_namespace("bench-api")
        entries = [{"key": key(k), "value": VALUE.decode()} for k in range(KEY_COUNT)]
        await client.namespace(namespace.id).bulk_put(entries)
        token, _ = await client.create_token(DEFAULT_ACCOUNT_ID)
    targets.update(namespace=namespace.id, token=token)


# -- measuring --------------------------------------------------------------------------


@dataclass
class ApiBenchOptions:
    duration_s: float = 6.0
    rate_per_s: float = DEFAULT_RATE_PER_S
    callers: int = CALLERS
    rounds: int = ROUNDS
    storage: str = "sqlite"
    arrival: Arrival = "poisson"
    workers: int = 0  # 0: as many as the rate needs
    seed: int = 1
    out: Path = DEFAULT_OUT


@dataclass
class Total:
    """One measurement's rounds, summed: their results and each process's CPU seconds."""

    result: LoadResult
    cpu_s: dict[str, float] = field(default_factory=dict)

    def add(self, part: LoadResult, cpu_s: dict[str, float]) -> None:
        span_s = self.result.finish_span_s + part.finish_span_s
        sent_span_s = self.result.send_span_s + part.send_span_s
        self.result.merge(part)
        self.result.finish_span_s, self.result.send_span_s = span_s, sent_span_s
        for name, seconds in cpu_s.items():
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + seconds

    def cpu_us_per_call(self) -> dict[str, float]:
        calls = max(1, self.result.completed)
        return {name: round(s * 1e6 / calls, 1) for name, s in self.cpu_s.items()}


@dataclass
class ApiBenchRun:
    options: ApiBenchOptions
    folder: Path
    pids: dict[str, int]
    measured: list[Measured] = field(default_factory=list)
    cpu: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def of(self, name: str, mode: str) -> LoadResult:
        return next(m.result for m in self.measured if (m.scenario, m.mode) == (name, mode))

    def p50_ms(self, name: str) -> float:
        return float(self.of(name, "open").latency.get_value_at_percentile(50)) / 1000

    def throughput(self, name: str) -> float:
        return self.of(name, "closed").throughput_per_s

    def rows(self) -> list[dict[str, Any]]:
        return [
            {**m.row(), "cpu_us_per_call": self.cpu[(m.scenario, m.mode)]} for m in self.measured
        ]


def cpu_now(pids: dict[str, int], with_generator: bool) -> dict[str, float]:
    """Each process's CPU seconds so far (the generator's: this process, when it ran here)."""
    now = {name: process_cpu_s(pid) for name, pid in pids.items()}
    if with_generator:
        now[GENERATOR] = process_cpu_s(os.getpid())
    return now


def cpu_since(before: dict[str, float], pids: dict[str, int]) -> dict[str, float]:
    after = cpu_now(pids, GENERATOR in before)
    return {name: after[name] - before[name] for name in before}


def workers_for(options: ApiBenchOptions) -> int:
    return options.workers or max(1, math.ceil(options.rate_per_s / RATE_PER_WORKER))


def measure_open(targets: dict[str, Any], scenarios: list[Scenario], run: ApiBenchRun) -> None:
    """Latency at the open-loop rate, ``duration_s`` per measurement over the rounds."""
    options = run.options
    slice_s = options.duration_s / options.rounds
    workers = workers_for(options)
    settings = LoadSettings(options.rate_per_s, options.duration_s, options.arrival, options.seed)
    totals = {s.name: Total(LoadResult(settings)) for s in scenarios}
    for round_index in range(options.rounds):
        part_settings = LoadSettings(
            options.rate_per_s, slice_s, options.arrival, options.seed * 100 + round_index
        )
        for scenario in scenarios:
            before = cpu_now(run.pids, with_generator=workers == 1)
            part = run_workers(scenario.connect, targets, part_settings, workers)
            totals[scenario.name].add(part, cpu_since(before, run.pids))
    keep(run, totals, "open", options.rate_per_s, 0)


def measure_closed(targets: dict[str, Any], scenarios: list[Scenario], run: ApiBenchRun) -> None:
    """Throughput of ``callers`` callers back to back, ``duration_s`` over the rounds."""
    options = run.options
    slice_s = options.duration_s / options.rounds
    totals = {
        s.name: Total(LoadResult(LoadSettings(math.inf, options.duration_s))) for s in scenarios
    }
    for _ in range(options.rounds):
        for scenario in scenarios:
            before = cpu_now(run.pids, with_generator=True)
            part = asyncio.run(closed_slice(scenario, targets, options.callers, slice_s))
            totals[scenario.name].add(part, cpu_since(before, run.pids))
    keep(run, totals, "closed", math.inf, options.callers)


async def closed_slice(
    scenario: Scenario, targets: dict[str, Any], callers: int, duration_s: float
) -> LoadResult:
    async with scenario.connect(targets) as call:
        # Warm up every connection of the pool before the clock runs.
        await asyncio.gather(*(call(-1) for _ in range(callers)))
        return await closed_loop(call, callers, duration_s)


def keep(
    run: ApiBenchRun, totals: dict[str, Total], mode: str, rate_per_s: float, callers: int
) -> None:
    for name, total in totals.items():
        measured = Measured(name, mode, rate_per_s, callers, total.result)
        label = f"{name}-closed-{callers}" if mode == "closed" else f"{name}-open-{rate_per_s:g}"
        measured.hlog = write_hlog(run.folder, label, total.result)
        run.measured.append(measured)
        run.cpu[(name, mode)] = total.cpu_us_per_call()
        print_line(measured)


# -- judging and reporting --------------------------------------------------------------


def _over(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def api_ratios(run: ApiBenchRun) -> list[Ratio]:
    """The issue's two targets, then what explains them (info)."""
    p50, rate = run.p50_ms, run.throughput
    callers = run.options.callers
    share = _over(p50("api-get") - p50("central-get"), p50("http-floor"))
    return [
        Ratio("(api-get p50 - central-get p50) / http-floor p50", share, SHARE_TARGET),
        Ratio(
            f"api-get / central-get throughput at {callers} callers",
            _over(rate("api-get"), rate("central-get")),
            THROUGHPUT_TARGET,
        ),
        Ratio("central-get p50 / floor p50", _over(p50("central-get"), p50("floor"))),
        Ratio("http-floor p50 / floor p50", _over(p50("http-floor"), p50("floor"))),
        Ratio(
            "api-get p50 / (central-get p50 + http-floor p50)",
            _over(p50("api-get"), p50("central-get") + p50("http-floor")),
        ),
        Ratio(
            f"central-get / floor throughput at {callers} callers",
            _over(rate("central-get"), rate("floor")),
        ),
        Ratio(
            f"http-floor / floor throughput at {callers} callers",
            _over(rate("http-floor"), rate("floor")),
        ),
    ]


def print_cpu(run: ApiBenchRun) -> None:
    names = [GENERATOR, *run.pids]
    print(f"\nCPU per call (µs) in the closed loop, {run.options.callers} callers:")
    print(f"  {'measurement':<14}" + "".join(f"{name:>11}" for name in names))
    for m in run.measured:
        if m.mode == "closed":
            cpu = run.cpu[(m.scenario, m.mode)]
            print(f"  {m.scenario:<14}" + "".join(f"{cpu.get(n, 0.0):11.0f}" for n in names))


def write_summary(run: ApiBenchRun, info: dict[str, Any], found: list[Ratio]) -> None:
    rows = run.rows()
    options = {**asdict(run.options), "out": str(run.options.out)}
    summary = {
        "machine": info,
        **provenance(),
        "options": options,
        "what": {s.name: s.what for s in measurements(run.options.rate_per_s, 0)},
        "rows": rows,
        "ratios": [ratio.as_dict() for ratio in found],
        "valid": all(row["valid"] and not row["errors"] for row in rows),
    }
    (run.folder / "summary.json").write_text(json.dumps(summary, indent=2))


def measure_all(group: ServerGroup, options: ApiBenchOptions, folder: Path) -> ApiBenchRun:
    """Start the servers in ``group``, write the data, measure the four open then closed."""
    targets = start_servers(group, options.storage)
    asyncio.run(prepare(targets))
    run = ApiBenchRun(options, folder, {server.name: server.pid for server in group.servers})
    print(f"results in {folder}", flush=True)
    scenarios = measurements(options.rate_per_s, options.callers)
    measure_open(targets, scenarios, run)
    measure_closed(targets, scenarios, run)
    return run


def run_api_bench(options: ApiBenchOptions) -> ApiBenchRun:
    """Start the servers, measure the four open and closed, write and print the results."""
    folder = results_folder(options.out, prefix="api-")
    info = machine()
    print_machine(info)
    with (
        tempfile.TemporaryDirectory(prefix="edgekv-bench-api-") as work_dir,
        ServerGroup(Path(work_dir)) as group,
    ):
        run = measure_all(group, options, folder)
    finish_machine(info)
    found = api_ratios(run)
    write_summary(run, info, found)
    print_cpu(run)
    print_ratios(found, {})
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekv.bench.api")
    parser.add_argument("--serve-http-noop", metavar="HOST:PORT", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve_http_noop(args.serve_http_noop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
