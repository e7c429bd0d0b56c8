"""The experiments' own workload driver, run inside a lab namespace, its history to a file.

Theory of operation: :class:`WorkloadRun` starts ``python -m
tests.support.netns_workload CONFIG`` through
:meth:`~tests.support.netns.NetnsLab.exec_argv`. That process reads a
:class:`WorkloadConfig`, builds a :class:`~edgekv.experiments.cluster.ClusterView`
of a running cluster — the central address list, the edges, the clock every
node shares (time scale and anchor) — and runs
:class:`~edgekv.experiments.driver.Driver` as an experiment does: setup (one
namespace, every key written once through central), then seeded Poisson
streams, open loop, each operation recorded as an
:class:`~edgekv.experiments.history.Op` into a history file by a
:class:`~edgekv.experiments.history.HistoryWriter` — the records the checkers
of :mod:`edgekv.experiments.checkers` take. Client retries are off, as in an
experiment: a write that failed and may have been applied is recorded as
``unknown``, one that surely was not as ``failed``.

The process prints one JSON line on stdout when the run proper is about to
begin — ``t0``, the simulated Unix time its operations' times count from, and
the namespace id — so that the test can schedule faults on the same clock
(:meth:`WorkloadRun.started`), and one when it is over, with the driver's stats
(:meth:`WorkloadRun.finished`). Its stderr goes to a file the test names.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.support.netns import NetnsLab
from tests.support.node_process import REPO_ROOT, child_env

# The one workload group (an experiment sweeping a setting has several).
GROUP = "replicas"


@dataclass(frozen=True)
class WorkloadConfig:
    """What to drive. Times and rates are simulated (seconds since the run began)."""

    central: str  # an address list: A:P,B:P
    edges: list[tuple[str, str, str]]  # (node, region, address)
    time_scale: float
    time_anchor: float
    history: str  # the history file to write
    seed: int
    keys: int
    duration_s: float
    writes_end_s: float
    writer_region: str
    write_rate_per_s: float
    read_rate_per_s: float  # per region
    cache_ttl_s: float
    read_sessions: int
    write_sessions: int
    value_bytes: int = 16

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkloadConfig:
        record = json.loads(text)
        record["edges"] = [tuple(edge) for edge in record["edges"]]
        return cls(**record)


async def _run(config: WorkloadConfig) -> None:
    from edgekv.clock import ScaledClock
    from edgekv.experiments.cluster import ClusterView, EdgeAddress
    from edgekv.experiments.driver import Driver
    from edgekv.experiments.history import HistoryWriter
    from edgekv.experiments.workload import KeySpace, Stream

    view = ClusterView(
        central=config.central,
        edges=[EdgeAddress(node, region, address) for node, region, address in config.edges],
        rtt_ms={},
        jitter_ms={},
        clock=ScaledClock(config.time_scale, config.time_anchor),
        fresh=False,
    )
    keys = KeySpace(config.keys)
    streams = [
        Stream(
            "write",
            config.writer_region,
            config.write_rate_per_s,
            keys,
            GROUP,
            0.0,
            config.writes_end_s,
            sessions=config.write_sessions,
            value_bytes=config.value_bytes,
        ),
        *(
            Stream(
                "read",
                region,
                config.read_rate_per_s,
                keys,
                GROUP,
                0.0,
                config.duration_s,
                sessions=config.read_sessions,
                cache_ttl_s=config.cache_ttl_s,
            )
            for region in view.regions
        ),
    ]
    async with Driver(view) as driver:
        planned = driver.plan(streams, config.seed)
        await driver.setup("netns workload", [GROUP], keys)
        print(json.dumps({"t0": driver.t0, "namespace": driver.namespaces[GROUP]}), flush=True)
        with HistoryWriter(Path(config.history)) as history:
            await driver.run(planned, history.append)
        print(json.dumps({"stats": driver.stats.as_dict()}), flush=True)


class WorkloadRun:
    """One workload process inside ``node``'s namespace (see the module docstring)."""

    def __init__(self, lab: NetnsLab, node: str, config: WorkloadConfig, log_dir: Path) -> None:
        config_path = log_dir / "workload.json"
        config_path.write_text(config.to_json())
        self.stderr_path = log_dir / "workload.stderr"
        argv = [sys.executable, "-m", "tests.support.netns_workload", str(config_path)]
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                lab.exec_argv(node, argv),
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env={**child_env(), "PYTHONUNBUFFERED": "1"},
                cwd=REPO_ROOT,
                text=True,
            )

    def _line(self, timeout_s: float, what: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.kill()
            raise AssertionError(
                f"the workload printed no {what} line within {timeout_s:g} s "
                f"(exit code {self.process.returncode})\n"
                f"stderr:\n{self.stderr_path.read_text(errors='replace')}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def started(self, timeout_s: float) -> tuple[float, str]:
        """(t0, namespace id) once setup is done and the run proper is about to begin."""
        line = self._line(timeout_s, "start")
        return float(line["t0"]), str(line["namespace"])

    def finished(self, timeout_s: float) -> dict[str, Any]:
        """The driver's stats once the run is over and the process exited cleanly."""
        stats: dict[str, Any] = self._line(timeout_s, "end")["stats"]
        code = self.process.wait(timeout=10)
        assert code == 0, (
            f"the workload exited {code}\nstderr:\n{self.stderr_path.read_text(errors='replace')}"
        )
        return stats

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


if __name__ == "__main__":
    asyncio.run(_run(WorkloadConfig.from_json(Path(sys.argv[1]).read_text())))
