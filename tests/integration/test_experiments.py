"""The consistency experiments, end to end: ``edgekv experiment`` as a user runs it.

Each test starts a real five-region cluster through the command line, with a
large time scale so that hours of simulated workload take seconds, and then
judges the results folder the run wrote. Seeds fix the workload; what the
machine's timing adds is within each test's stated tolerances.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgekv.control import NodeControl

pytestmark = pytest.mark.slow


def edgekv(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    return subprocess.run(
        [sys.executable, "-m", "edgekv", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=environment,
    )


def one_error(stderr: str) -> str:
    """The one error line of a failed run (after the line that says how long it would take)."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("edgekv: error:")]
    assert len(errors) == 1, stderr
    assert stderr.strip().splitlines()[-1] == errors[0], "the error is the last word"
    return errors[0]


def only_run(out: Path, experiment: str) -> Path:
    runs = list((out / experiment).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def summary_of(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def checks_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in summary["checks"]}


@pytest.mark.timeout(240)
def test_staleness_on_a_cluster_matches_theory_and_the_simulation_and_report_redraws_it(
    tmp_path: Path,
) -> None:
    # `edgekv sim compare` runs the seeded workload on a fresh cluster, then in the
    # simulation, and exits 0 only when the two agree within its tolerances. The stale
    # fraction is compared with the simulation's rather than the theory's: with ~3,000
    # reads a setting, ten seeds of this workload spread from -16 % to +22 % around the
    # prediction, while the two engines, seeing the same arrivals, agree within 2 %. The
    # theory's precision is checked in the simulation, where a run can hold enough reads
    # (tests/integration/test_simulation.py).
    done = edgekv(
        "sim", "compare", "--seed", "3", "--out", str(tmp_path),
        "--cache-ttls", "30,60,120", "--duration", "2400", "--time-scale", "150",
        "--reader-regions", "us-west,eu-west,ap-southeast",
        "--read-rate", "0.4", "--write-rate", "0.05",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the engines agree within every tolerance" in done.stdout
    runs = {
        json.loads((folder / "run.json").read_text())["engine"]: folder
        for folder in (tmp_path / "compare-engines" / "staleness").iterdir()
    }
    run_dir = runs["cluster"]
    expected = {
        "run.json", "history.jsonl", "summary.json", "summary.csv", "report.md",
        "staleness-vs-ttl.png", "staleness-tradeoff.png", "staleness-time-behind-cdf.png",
        "staleness-heatmap.png",
    }  # fmt: skip
    assert expected <= {path.name for path in run_dir.iterdir()}
    run = json.loads((run_dir / "run.json").read_text())
    assert run["seed"] == 3 and run["git_commit"] and run["cluster"]["time_scale"] == 150
    assert run["driver"]["dropped"] == 0

    measures = summary_of(run_dir)["measures"]
    simulated = summary_of(runs["sim"])["measures"]
    assert set(measures) == {"ttl=30", "ttl=60", "ttl=120"}
    for setting, got in measures.items():
        want = got["predicted"]
        assert got["reads"] > 1500, setting
        hit_error = abs(got["hit_ratio"] - want["hit_ratio"]) / want["hit_ratio"]
        assert hit_error <= 0.05, (setting, got["hit_ratio"], want["hit_ratio"])
        stale_gap = abs(got["stale_fraction"] - simulated[setting]["stale_fraction"])
        assert stale_gap <= max(0.005, 0.10 * got["stale_fraction"]), setting
        central_error = abs(got["upstream_per_s"] - want["upstream_per_s"]) / want["upstream_per_s"]
        assert central_error <= 0.10, setting
    # The longer the cacheTtl, the more stale reads and the fewer central reads.
    stale = [measures[f"ttl={t}"]["stale_fraction"] for t in (30, 60, 120)]
    assert stale == sorted(stale)

    # `edgekv report` redraws everything from run.json and history.jsonl alone.
    for derived in ("summary.json", "summary.csv", "report.md", "staleness-vs-ttl.png"):
        (run_dir / derived).unlink()
    redrawn = edgekv("report", str(run_dir))
    assert redrawn.returncode == 0, redrawn.stderr
    assert "stale reads, hit ratio and central load per cacheTtl" in redrawn.stdout
    assert summary_of(run_dir)["measures"] == measures
    assert (run_dir / "staleness-vs-ttl.png").stat().st_size > 10_000
    assert "![staleness-vs-ttl.png]" in (run_dir / "report.md").read_text()


@pytest.mark.timeout(120)
def test_visibility_in_ttl_mode_keeps_the_promise_converges_and_reads_own_writes(
    tmp_path: Path,
) -> None:
    done = edgekv(
        "experiment", "visibility", "--seed", "2", "--out", str(tmp_path),
        "--duration", "500", "--time-scale", "60", "--keys", "2", "--write-rate", "0.05",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run(tmp_path, "visibility")
    summary = summary_of(run_dir)
    checks = checks_of(summary)
    for name in ("visibility-promise", "convergence", "read-your-writes", "monotonic-reads"):
        assert checks[name]["ok"], checks[name]
        assert checks[name]["checked"] > 0, name
    per_region = summary["measures"]["visibility"]
    assert set(per_region) == {"us-east", "us-west", "eu-west", "ap-southeast", "sa-east"}
    for region, seen in per_region.items():
        assert seen["seen"] == seen["writes"] > 5, region
        # Nobody waits longer than a cacheTtl plus a poll gap or two to see a write.
        assert seen["max_s"] < 60 + 15, region
    assert per_region["us-east"]["p50_s"] < 10, "the writer's region sees its write at once"
    assert {"visibility-cdf.png", "visibility-heatmap.png"} <= {p.name for p in run_dir.iterdir()}


@pytest.mark.timeout(180)
def test_invalidate_and_push_cut_staleness_and_refresh_ahead_raises_hits(tmp_path: Path) -> None:
    done = edgekv(
        "experiment", "modes", "--seed", "5", "--out", str(tmp_path), "--duration", "500",
        "--time-scale", "100", "--cache-ttl", "120", "--write-rate", "0.1", "--read-rate", "0.5",
        "--reader-regions", "eu-west,sa-east",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    measures = summary_of(only_run(tmp_path, "modes"))["measures"]
    assert set(measures) == {"ttl", "invalidate", "push", "refresh-ahead"}
    ttl = measures["ttl"]["stale_fraction"]
    assert ttl > 0.1
    assert measures["invalidate"]["stale_fraction"] < ttl / 4
    assert measures["push"]["stale_fraction"] < ttl / 4
    assert measures["refresh-ahead"]["hit_ratio"] > measures["ttl"]["hit_ratio"]
    # Push pays in bytes what it saves in staleness: it sends values nobody asked for yet.
    assert measures["push"]["upstream_bytes"] > measures["invalidate"]["upstream_bytes"] * 0.5


@pytest.mark.timeout(120)
def test_partition_serves_stale_then_fails_then_recovers_and_loses_nothing(tmp_path: Path) -> None:
    done = edgekv(
        "experiment", "partition", "--seed", "4", "--out", str(tmp_path), "--duration", "900",
        "--time-scale", "100", "--cut-at", "200", "--heal-at", "600", "--max-stale", "120",
        "--region", "sa-east",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = summary_of(only_run(tmp_path, "partition"))
    assert checks_of(summary)["nothing-lost"]["ok"]
    assert checks_of(summary)["nothing-lost"]["checked"] > 50
    columns = summary["tables"][0]["columns"][1:]
    phases = {
        name: dict(zip(columns, row, strict=True))
        for name, row in summary["measures"]["phases"].items()
    }
    before, during, after = phases["before"], phases["during"], phases["after"]
    assert before["stale_served"] == before["reads_failed"] == before["writes_failed"] == 0
    assert during["stale_served"] > 0, "copies within max-stale are served STALE"
    assert during["reads_failed"] > 0, "past max-stale the edge fails UNAVAILABLE"
    assert during["writes_failed"] > 0 and during["writes_ok"] == 0
    assert during["writes_unknown"] == 0, "a write that never left the edge surely failed"
    assert after["stale_served"] == after["reads_failed"] == after["writes_failed"] == 0
    assert summary["measures"]["read_recovery_s"] is not None
    assert summary["measures"]["read_recovery_s"] < 30


def test_bad_input_is_one_line_and_leaves_no_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cases = {
        ("experiment", "nonsense"): "invalid choice: 'nonsense'",
        ("experiment", "staleness", "--read-rate", "0"): "--read-rate must be a positive",
        ("experiment", "staleness", "--write-rate", "-1"): "--write-rate must be a positive",
        ("experiment", "staleness", "--read-rate", "nan"): "--read-rate must be a positive",
        ("experiment", "staleness", "--cache-ttls", "29,60"): (
            "--cache-ttls: Invalid cache_ttl of 29. Cache TTL must be at least 30."
        ),
        ("experiment", "visibility", "--cache-ttl", "29"): "Cache TTL must be at least 30.",
        ("experiment", "visibility", "--duration", "100"): "--duration 100 is too short",
        ("experiment", "partition", "--cut-at", "900", "--heal-at", "800"): "must fit in the run",
        ("experiment", "modes", "--modes", "ttl,psh"): "unknown mode 'psh'",
        ("report", str(tmp_path)): "is not an experiment's results folder",
    }
    for args, message in cases.items():
        done = edgekv(*args, "--out", str(out)) if args[0] == "experiment" else edgekv(*args)
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.rglob("*")), "a refused run writes nothing"


def test_a_dead_cluster_or_an_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "cluster.json"
    state.write_text(
        json.dumps({"central": f"127.0.0.1:{port}", "edges": {"eu-west": [f"127.0.0.1:{port}"]}})
    )
    out = tmp_path / "results"
    done = edgekv("experiment", "visibility", "--state", str(state), "--out", str(out))
    assert done.returncode == 1
    assert f"the cluster in {state} is not running" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not any(out.rglob("*")), "no results folder for a run that never ran"

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = edgekv("experiment", "visibility", "--out", str(blocker / "results"))
    assert done.returncode == 1
    assert "cannot write results under" in one_error(done.stderr)


@pytest.mark.timeout(60)
def test_a_run_that_fails_midway_leaves_nothing_that_looks_like_a_result(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = edgekv(
        "experiment", "visibility", "--writer-region", "mars", "--out", str(out),
        "--duration", "200", "--time-scale", "100",
    )  # fmt: skip
    assert done.returncode == 1
    assert "no edge in region 'mars'" in one_error(done.stderr)
    assert not out.exists(), "the partial folder, and the folders made for it, are removed"


@pytest.mark.timeout(120)
def test_an_experiment_runs_on_a_cluster_started_by_up_detach(tmp_path: Path) -> None:
    state = tmp_path / "cluster.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environment["EDGEKV_STATE_FILE"] = str(state)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgekv", *args],
            capture_output=True, text=True, timeout=90, env=environment,
        )  # fmt: skip

    up = cli("up", "--detach", "--time-scale", "100", "--data-dir", str(tmp_path / "data"))
    assert up.returncode == 0, up.stderr
    try:
        done = cli(
            "experiment", "visibility", "--state", str(state), "--out", str(tmp_path / "out"),
            "--duration", "200", "--cache-ttl", "30", "--poll-interval", "1",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        run = json.loads((only_run(tmp_path / "out", "visibility") / "run.json").read_text())
        assert run["cluster"]["fresh"] is False
        assert run["cluster"]["time_scale"] == 100
        assert run["cluster"]["regions"]["ap-southeast"]["rtt_ms"] == 223
        refused = cli("experiment", "modes", "--state", str(state))
        assert refused.returncode == 1 and "cannot use --state" in refused.stderr
    finally:
        assert cli("down").returncode == 0


def as_a_foreground_job() -> None:
    """Let Ctrl-C (SIGINT) reach the child as it reaches a command typed in a terminal: a
    shell starts background jobs with SIGINT ignored, and a test run in the background
    would pass that on, so the child would ignore the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class RunningCluster:
    """A cluster started by `edgekv up --detach`, and the commands a user runs beside it."""

    def __init__(self, tmp_path: Path, time_scale: str) -> None:
        self.state = tmp_path / "cluster.json"
        self.out = tmp_path / "out"
        self.environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
        self.environment["EDGEKV_STATE_FILE"] = str(self.state)
        up = self.cli("up", "--detach", "--time-scale", time_scale, "--data-dir",
                      str(tmp_path / "data"))  # fmt: skip
        assert up.returncode == 0, up.stderr

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgekv", *args],
            capture_output=True, text=True, timeout=90, env=self.environment,
        )  # fmt: skip

    def experiment(self, name: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "edgekv", "experiment", name, "--state", str(self.state),
                "--out", str(self.out), *args]  # fmt: skip

    def start(self, name: str, *args: str) -> subprocess.Popen[str]:
        """Start an experiment and return once its workload is running."""
        process = subprocess.Popen(
            self.experiment(name, *args), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True, env=self.environment, preexec_fn=as_a_foreground_job,
        )  # fmt: skip
        assert process.stderr is not None
        for line in process.stderr:  # the progress line comes once the workload has begun
            if "s simulated" in line:
                return process
        raise AssertionError(f"{name} ended before its workload began: {process.wait()}")

    def namespaces(self) -> list[str]:
        listed = self.cli("kv", "namespace", "list")
        assert listed.returncode == 0, listed.stderr
        return [namespace["title"] for namespace in json.loads(listed.stdout)]

    def node(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = json.loads(self.state.read_text())["nodes"][name]
        return info


def partitioned(address: str) -> bool:
    async def read_link() -> bool:
        async with NodeControl(address) as control:
            return (await control.link()).partitioned

    return asyncio.run(read_link())


@pytest.mark.timeout(240)
def test_on_a_running_cluster_a_long_run_is_refused_and_a_failed_run_leaves_nothing(
    tmp_path: Path,
) -> None:
    cluster = RunningCluster(tmp_path, time_scale="100")
    try:
        # 70,000 simulated s at the cluster's time scale of 100: about 12 minutes.
        refused = cluster.cli(*cluster.experiment("visibility", "--duration", "70000")[3:])
        assert refused.returncode == 1
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "about 12 min of real time" in refused.stderr, refused.stderr
        assert "start the cluster with `edgekv up --time-scale 200 --detach`" in refused.stderr
        assert "--duration 59600 or less, or --yes" in refused.stderr
        assert not cluster.out.exists(), "a refused run writes nothing"
        assert cluster.namespaces() == [], "a refused run creates nothing"

        # --yes runs it; Ctrl-C stops it, and it takes its namespaces with it.
        run = cluster.start("visibility", "--duration", "70000", "--yes")
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=30) == 130
        assert cluster.namespaces() == []
        assert not cluster.out.exists()

        # SIGTERM while eu-west is cut off: namespaces removed, the link healed.
        eu_west = cluster.node("eu-west-1")["address"]
        run = cluster.start("partition", "--duration", "70000", "--yes", "--cut-at", "50",
                            "--heal-at", "60000")  # fmt: skip
        deadline = time.monotonic() + 10
        while not partitioned(eu_west):
            assert time.monotonic() < deadline, "the cut never came"
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 128 + signal.SIGTERM
        assert not partitioned(eu_west)
        assert cluster.namespaces() == []
        assert not cluster.out.exists()

        # An error mid-way (an edge dies under the run): one line, and nothing left behind.
        run = cluster.start("staleness", "--duration", "1000", "--cache-ttls", "30")
        os.kill(int(cluster.node("sa-east-1")["pid"]), signal.SIGKILL)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 1
        assert "cannot read the counters of sa-east-1" in one_error(stderr)
        assert cluster.namespaces() == []
        assert not cluster.out.exists()
    finally:
        cluster.cli("down")
