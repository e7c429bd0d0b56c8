"""``edgekv experiment --engine sim``: the real nodes on virtual time, replayed by the seed.

Each test runs the command as a user would (a subprocess, its own hash seed)
and judges the results folder. A simulated run takes seconds whatever its
simulated duration, so these are not slow tests.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgekv.experiments.history import annotate_central_revisions, read_history

STALENESS = (
    "experiment", "staleness", "--engine", "sim", "--duration", "300",
    "--cache-ttls", "30,60", "--read-rate", "1", "--write-rate", "0.2",
)  # fmt: skip


def edgekv(*args: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environment["PYTHONHASHSEED"] = hash_seed  # sets of strings iterate differently
    return subprocess.run(
        [sys.executable, "-m", "edgekv", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def only_run(out: Path, experiment: str) -> Path:
    [run_dir] = list((out / experiment).iterdir())
    return run_dir


def test_the_same_seed_writes_the_same_history_and_summary_to_the_byte(tmp_path: Path) -> None:
    runs = []
    for attempt, hash_seed in enumerate(("1", "2")):
        out = tmp_path / f"run-{attempt}"
        done = edgekv(*STALENESS, "--seed", "7", "--out", str(out), hash_seed=hash_seed)
        assert done.returncode == 0, done.stderr
        runs.append(only_run(out, "staleness"))
    first, second = runs
    history = (first / "history.jsonl").read_bytes()
    assert history.count(b"\n") > 500
    assert history == (second / "history.jsonl").read_bytes()
    assert (first / "summary.json").read_bytes() == (second / "summary.json").read_bytes()
    run = json.loads((first / "run.json").read_text())
    assert run["engine"] == "sim" and run["cluster"]["engine"] == "sim"
    assert run["driver"]["ops_per_real_s"] > 0
    assert "ops/s" in done.stderr  # the progress line says how fast the simulation runs


def test_a_compressed_history_is_the_same_bytes_for_a_seed_and_reads_back_the_same(
    tmp_path: Path,
) -> None:
    # --gzip-history: no name or time in the gzip header, so the file replays to the byte;
    # its summary is the plain history's, and `edgekv report` redraws it.
    folders = []
    for name, extra in (("gz-a", ["--gzip-history"]), ("gz-b", ["--gzip-history"]), ("plain", [])):
        done = edgekv(*STALENESS, "--seed", "7", *extra, "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        folders.append(only_run(tmp_path / name, "staleness"))
    first, second, plain = folders
    compressed = (first / "history.jsonl.gz").read_bytes()
    assert compressed == (second / "history.jsonl.gz").read_bytes()
    assert not (first / "history.jsonl").exists()
    assert gzip.decompress(compressed) == (plain / "history.jsonl").read_bytes()
    assert (first / "summary.json").read_bytes() == (plain / "summary.json").read_bytes()
    (first / "summary.json").unlink()
    redrawn = edgekv("report", str(first))
    assert redrawn.returncode == 0, redrawn.stderr
    assert (first / "summary.json").read_bytes() == (plain / "summary.json").read_bytes()


def test_a_smaller_edge_cache_evicts_copies_and_bad_sizes_are_one_line(tmp_path: Path) -> None:
    ratios = {}
    for size in ("64MiB", "1KiB"):  # 1 KiB holds about five copies of 100 keys
        done = edgekv(*STALENESS, "--keys", "100", "--edge-cache", size,
                      "--out", str(tmp_path / size))  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads((only_run(tmp_path / size, "staleness") / "summary.json").read_text())
        ratios[size] = summary["measures"]["ttl=60"]["hit_ratio"]
    assert ratios["1KiB"] < ratios["64MiB"] / 2
    for size, message in (("0", "--edge-cache must be positive, got 0"),
                          ("12XB", "--edge-cache: '12XB' is not a size like 64MiB")):  # fmt: skip
        done = edgekv(*STALENESS, "--edge-cache", size, "--out", str(tmp_path / "bad"))
        assert (done.returncode, done.stderr.strip()) == (1, f"edgekv: error: {message}")
    assert not (tmp_path / "bad").exists()


def test_reads_learn_central_s_revision_as_they_go_as_the_whole_history_would_say(
    tmp_path: Path,
) -> None:
    # The driver hands operations on in order as they complete (InOrder); a read's
    # central_revision must be what the whole history, annotated at the end, gives.
    done = edgekv(*STALENESS, "--write-rate", "2", "--keys", "5", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    ops = read_history(only_run(tmp_path, "staleness") / "history.jsonl")
    assert [op.id for op in ops] == list(range(len(ops)))
    streamed = [op.central_revision for op in ops]
    annotate_central_revisions(ops)
    assert streamed == [op.central_revision for op in ops]
    assert sum(1 for op in ops if op.is_read and op.central_revision) > 1000


def test_watch_driven_modes_replay_to_the_byte_too(tmp_path: Path) -> None:
    # Central's Watch fan-out reaches its watchers in the order they came, not in the
    # order of their memory addresses, so push and invalidate replay as ttl does.
    histories = []
    for attempt in ("a", "b"):
        done = edgekv(
            "experiment", "modes", "--engine", "sim", "--modes", "invalidate,push",
            "--duration", "300", "--read-rate", "2", "--write-rate", "0.5",
            "--out", str(tmp_path / attempt),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        histories.append((only_run(tmp_path / attempt, "modes") / "history.jsonl").read_bytes())
    assert histories[0] == histories[1]


def test_with_enough_reads_the_stale_fraction_matches_the_theory(tmp_path: Path) -> None:
    # About 48,000 reads per setting (a cluster would take over four minutes at time
    # scale 150; here about fifteen seconds): sampling noise of a few per cent at most.
    done = edgekv(
        "experiment", "staleness", "--engine", "sim", "--seed", "11", "--duration", "40000",
        "--cache-ttls", "30,120", "--reader-regions", "us-west,eu-west,ap-southeast",
        "--read-rate", "0.4", "--write-rate", "0.05", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((only_run(tmp_path, "staleness") / "summary.json").read_text())
    for setting, got in summary["measures"].items():
        want = got["predicted"]
        assert got["reads"] > 40_000, setting
        assert abs(got["hit_ratio"] / want["hit_ratio"] - 1) <= 0.01, setting
        assert abs(got["stale_fraction"] / want["stale_fraction"] - 1) <= 0.05, setting


def test_a_different_seed_gives_a_different_history(tmp_path: Path) -> None:
    histories = []
    for seed in ("7", "8"):
        done = edgekv(*STALENESS, "--seed", seed, "--out", str(tmp_path / seed))
        assert done.returncode == 0, done.stderr
        histories.append((only_run(tmp_path / seed, "staleness") / "history.jsonl").read_bytes())
    assert histories[0] != histories[1]


@pytest.mark.parametrize(
    ("experiment", "options"),
    [
        ("visibility", ["--duration", "400", "--keys", "2", "--write-rate", "0.05"]),
        ("modes", ["--duration", "300"]),
        ("partition", []),
    ],
)
def test_every_experiment_runs_on_the_simulation_and_its_checks_pass(
    tmp_path: Path, experiment: str, options: list[str]
) -> None:
    done = edgekv("experiment", experiment, "--engine", "sim", "--out", str(tmp_path), *options)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((only_run(tmp_path, experiment) / "summary.json").read_text())
    failed = [check for check in summary["checks"] if not check["passes"]]
    assert not failed


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--state", "cluster.json"], "--engine sim builds its own nodes in this process"),
        (["--time-scale", "100"], "--time-scale means nothing to --engine sim"),
    ],
)
def test_options_a_simulation_cannot_take_are_one_line_and_leave_nothing(
    tmp_path: Path, options: list[str], says: str
) -> None:
    done = edgekv(*STALENESS, "--out", str(tmp_path), *options)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"edgekv: error: {says}")
    assert not (tmp_path / "staleness").exists()


def test_an_unknown_engine_is_one_line(tmp_path: Path) -> None:
    done = edgekv("experiment", "staleness", "--engine", "warp", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "edgekv: error: edgekv experiment staleness: argument --engine: invalid choice: 'warp' "
        "(choose from 'cluster', 'sim') (see --help)"
    ]
    assert not tmp_path.joinpath("staleness").exists()


def test_a_run_too_large_for_memory_is_refused_with_its_estimate(tmp_path: Path) -> None:
    done = edgekv(
        "experiment", "staleness", "--engine", "sim", "--regions", "300", "--keys", "1000000",
        "--read-rate", "1000", "--duration", "86400", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if line.startswith("edgekv: error:")]
    assert "this run would hold about" in line and "GiB available" in line
    assert "300 simulated edges" in line
    assert not (tmp_path / "staleness").exists()


def test_a_generated_topology_of_thirty_regions_runs_with_central_s_region_writing(
    tmp_path: Path,
) -> None:
    done = edgekv(
        "experiment", "staleness", "--engine", "sim", "--regions", "30", "--edges-per-region",
        "2", "--duration", "120", "--cache-ttls", "60", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = json.loads((only_run(tmp_path, "staleness") / "run.json").read_text())
    regions = run["cluster"]["regions"]
    assert len(regions) == 30 and regions["pop-030"]["edges"] == ["pop-030-1", "pop-030-2"]
    assert run["options"]["writer_region"] == "pop-001"
    assert run["facts"]["readers"][0] == "pop-002" and len(run["facts"]["readers"]) == 29


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('[edge_defaults]\ncache = "redis://127.0.0.1:6379/0"\n', "edges with a memory cache"),
        ('[central]\nstorage = "redis://127.0.0.1:6379/0"\n', "central on memory: or sqlite:"),
    ],
)
def test_redis_in_a_topology_is_refused_by_the_simulation_in_one_line(
    tmp_path: Path, table: str, says: str
) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text(table + '\n[[regions]]\nname = "us-east"\nrtt_ms = 2\n')
    done = edgekv(*STALENESS, "--topology", str(topology), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert (
        last.startswith(f"edgekv: error: the simulation runs {says}") and "--engine cluster" in last
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_precision_grid_measures_every_point_with_its_noise_and_replays(
    tmp_path: Path,
) -> None:
    # A small grid (the real one is `edgekv sim grid` in benchmarks/): 21 points, each the
    # average of two seeds with its standard error, against docs/design.md's theory.
    points = []
    for attempt in ("a", "b"):
        done = edgekv("sim", "grid", "--seeds", "2", "--reads", "2000", "--episodes", "200",
                      "--jobs", "2", "--out", str(tmp_path / attempt))  # fmt: skip
        assert done.returncode in (0, 1), done.stderr  # 1: too few reads to be sized
        [folder] = list((tmp_path / attempt).iterdir())
        assert {p.name for p in folder.iterdir()} == {"grid.json", "grid.csv", "grid.png"}
        points.append(json.loads((folder / "grid.json").read_text())["points"])
    assert points[0] == points[1]  # the same seeds, the same numbers
    assert len(points[0]) == 21
    assert len({(p["read_rate_per_key"], p["write_rate_per_key"]) for p in points[0]}) == 7
    for point in points[0]:
        # About 2,000 reads per seed: Poisson arrivals over a whole number of keys.
        assert point["seeds"] == 2 and point["reads"] >= 0.75 * 2 * 2000
        assert abs(point["hit_rel_err"]) < 0.05  # 2,000 reads: within a few per cent
        assert 0 < point["hit_noise"] < 0.05
        assert point["sized"] is False or point["hit_noise"] <= 0.01 / 3
    assert "points within tolerance of the theory" in done.stdout


def test_the_precision_grid_refuses_a_single_seed_it_could_not_measure_noise_with(
    tmp_path: Path,
) -> None:
    done = edgekv("sim", "grid", "--seeds", "1", "--out", str(tmp_path))
    assert (done.returncode, done.stderr.strip()) == (
        1,
        "edgekv: error: --seeds must be at least 2, got 1",
    )
    assert not list(tmp_path.iterdir())


def test_ctrl_c_stops_a_simulation_mid_run_cleanly_and_leaves_nothing(tmp_path: Path) -> None:
    # The history is being written as the run goes: stopping must stop every operation
    # still in flight before the file closes, and discard the half-written folder.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    run = subprocess.Popen(
        [sys.executable, "-m", "edgekv", *STALENESS, "--duration", "1000000", "--gzip-history",
         "--out", str(tmp_path)],
        stderr=subprocess.PIPE, text=True, env=environment,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert run.stderr is not None
    for line in run.stderr:  # the progress line: the workload is under way
        if "ops/s" in line and " 0 ops " not in line:
            break
    run.send_signal(signal.SIGINT)
    rest = run.stderr.read()
    assert run.wait(timeout=60) == 130, rest
    assert "Traceback" not in rest and "exception was never retrieved" not in rest, rest
    assert not [path for path in tmp_path.rglob("*") if path.is_file()], "nothing left behind"
