"""``edgekv bench`` against real servers: a short seeded run and its results folder."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.log import HistogramLogReader

from edgekv.bench.loadgen import new_histogram

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
def test_a_short_seeded_run_writes_a_complete_results_folder(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekv",
            "bench",
            "run",
            "--scenarios",
            "edge-hit,edge-miss-eu-west,central-put-sqlite",
            "--duration",
            "1.5",
            "--rate",
            "200",
            "--seed",
            "4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        env=environment,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    (folder,) = list((tmp_path / "bench").iterdir())
    names = {path.name for path in folder.iterdir()}
    assert {
        "options.json",
        "machine.json",
        "summary.json",
        "summary.csv",
        "percentiles.png",
        "histograms",
    } <= names
    options = json.loads((folder / "options.json").read_text())
    assert options["seed"] == 4 and options["edgekv_version"] not in ("", "unknown")
    assert options["git_commit"], "this checkout's commit"
    machine = json.loads((folder / "machine.json").read_text())
    for field in ("cpu_model", "cores", "python", "grpcio", "redis_py", "hdrhistogram"):
        assert machine[field], field

    summary = json.loads((folder / "summary.json").read_text())
    rows = {(row["scenario"], row["mode"]): row for row in summary["rows"]}
    # The floor came along, since every ratio needs it; closed-loop throughput for the put.
    assert {
        ("floor", "open"),
        ("edge-hit", "open"),
        ("edge-miss-eu-west", "open"),
        ("central-put-sqlite", "open"),
        ("central-put-sqlite", "closed"),
    } <= set(rows)
    miss = rows[("edge-miss-eu-west", "open")]
    assert miss["errors"] == 0, miss["first_error"]
    assert miss["p50_ms"] > 83, "a MISS pays the modelled 83 ms RTT"
    assert rows[("edge-hit", "open")]["p50_ms"] < 83
    assert rows[("edge-hit", "open")]["calls"] == 300
    with (folder / "summary.csv").open() as table:
        assert len(list(csv.DictReader(table))) == len(summary["rows"])
    ratio_names = [item["name"] for item in summary["ratios"]]
    assert "edge-hit p50 / floor p50" in ratio_names
    assert "edge-miss-eu-west (p50 - RTT) / floor p50" in ratio_names

    # The summary's percentiles are the raw histogram's, recomputed from the .hlog file.
    for row in summary["rows"]:
        reference = new_histogram()
        reader = HistogramLogReader(str(folder / row["histogram_log"]), reference)
        histogram = reader.get_next_interval_histogram()
        assert histogram is not None, row["histogram_log"]
        assert histogram.get_total_count() == row["calls"]
        for p in (50, 90, 99, 99.9):
            assert histogram.get_value_at_percentile(p) / 1000 == row[f"p{p:g}_ms"]
        assert histogram.get_max_value() / 1000 == row["max_ms"]


def test_an_unknown_scenario_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgekv", "bench", "run", "--scenarios", "edge-hot"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("edgekv: error: unknown scenario 'edge-hot'")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(180)
def test_a_short_soak_samples_every_process_and_passes(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    done = subprocess.run(
        [sys.executable, "-m", "edgekv", "bench", "soak", "--duration", "16", "--rate", "100",
         "--sample-every", "2", "--out", str(tmp_path)],
        env=environment, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = (tmp_path / "bench").glob("soak-*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["passed"] and summary["errors"] == 0 and summary["calls"] >= 1400
    processes = {"central", "generator", "us-east-1", "us-west-1", "eu-west-1", "ap-southeast-1"}
    assert processes | {"sa-east-1", "api"} == set(summary["growth"])
    with (folder / "samples.csv").open() as samples:
        rows = list(csv.DictReader(samples))
    # Seven processes sampled after each slice; a slice ends when its last call answered,
    # so 16 s hold seven or eight slices of 2 s.
    assert len(rows) in (8 * 7, 8 * 8) and all(int(row["open_fds"]) > 0 for row in rows)
    assert (folder / "soak.png").stat().st_size > 10_000
    assert "results:" in done.stdout


def test_a_soak_too_short_to_judge_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgekv", "bench", "soak", "--duration", "10",
         "--sample-every", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "edgekv: error: --duration must hold at least 8 samples (--sample-every x 8)"
    )
    assert not (tmp_path / "bench").exists()


def test_the_simulation_s_speed_is_measured_against_the_node_code_s_floor(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgekv", "bench", "sim", "--duration", "20", "--read-rate", "20",
         "--profile", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [folder] = list((tmp_path / "bench").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["ops"] > 1000 and summary["ops_per_real_s"] > 0
    assert summary["ratio_to_floor"] > 1  # the whole path costs more than the read logic
    assert 0.99 < sum(summary["profile"].values()) < 1.01
    assert {"event loop", "transport", "client", "edge"} <= set(summary["profile"])
    assert "simulated ops per real second" in done.stdout


@pytest.mark.timeout(180)
def test_the_api_bench_measures_the_four_and_writes_both_ratios(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    done = subprocess.run(
        [sys.executable, "-m", "edgekv", "bench", "api", "--duration", "1", "--rate", "200",
         "--out", str(tmp_path)],
        env=environment, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    # 1 (not 0) only when a busy machine made the generator late: no call may fail.
    assert done.returncode == 0 or "not every run is valid" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr
    [folder] = (tmp_path / "bench").glob("api-*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["machine"]["cpu_model"]
    rows = {(row["scenario"], row["mode"]): row for row in summary["rows"]}
    four = ("floor", "central-get", "http-floor", "api-get")
    assert set(rows) == {(name, mode) for name in four for mode in ("open", "closed")}
    for row in rows.values():
        assert row["errors"] == 0 and row["calls"] > 0 and row["p50_ms"] > 0, row
        assert (folder / row["histogram_log"]).exists()
    assert rows[("api-get", "closed")]["callers"] == 16
    assert rows[("api-get", "closed")]["cpu_us_per_call"]["api"] > 0
    ratios = {ratio["name"]: ratio for ratio in summary["ratios"]}
    for name, target in (
        ("(api-get p50 - central-get p50) / http-floor p50", "<= 1.2"),
        ("api-get / central-get throughput at 16 callers", ">= 0.7"),
    ):
        ratio = ratios[name]
        assert ratio["target"] == target and ratio["verdict"] in ("PASS", "MISS")
        assert isinstance(ratio["value"], float) and math.isfinite(ratio["value"])
    assert "results:" in done.stdout


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_the_replicas_bench_measures_one_and_two_centrals_on_one_redis(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    done = subprocess.run(
        [sys.executable, "-m", "edgekv", "bench", "replicas", "--duration", "1", "--callers", "2",
         "--rounds", "2", "--out", str(tmp_path)],
        env=environment, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = (tmp_path / "bench").glob("replicas-*")
    summary = json.loads((folder / "summary.json").read_text())
    rows = {(row["configuration"], row["operation"]): row for row in summary["rows"]}
    assert set(rows) == {(c, o) for c in ("1-replica", "2-replicas") for o in ("get", "put")}
    centrals = {"1-replica": ["central-1"], "2-replicas": ["central-2a", "central-2b"]}
    for (configuration, _operation), row in rows.items():
        assert row["errors"] == 0 and row["calls"] > 0 and row["throughput_per_s"] > 0, row
        assert row["callers"] == 2 and (folder / row["histogram_log"]).exists()
        # Every operation is one script call in Redis, whichever central ran it.
        evalsha = row["redis_commands"]["evalsha"]["calls_per_op"]
        assert evalsha == pytest.approx(1.0, abs=0.01), row["redis_commands"]
        assert set(centrals[configuration]) <= set(row["cpu_us_per_op"])
    ratios = {ratio["name"]: ratio for ratio in summary["ratios"]}
    for operation in ("get", "put"):
        for name, target in (
            (f"central CPU per {operation}, 2 replicas / 1", "<= 1.1"),
            (f"{operation} throughput at 2 callers, 2 replicas / 1", ">= 1.0"),
        ):
            assert ratios[name]["target"] == target and ratios[name]["verdict"] in ("PASS", "MISS")
    assert summary["bounds"]["get-2-replicas"]["4_cores"]["predicted_per_s"] > 0
    assert "results:" in done.stdout
