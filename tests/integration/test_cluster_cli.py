"""``edgekv up / status / down`` and ``edgekv demo`` as a user runs them: real processes.

Every test points EDGEKV_STATE_FILE into its own temp folder, so a developer's
own cluster is never touched, and checks by PID that nothing is left running.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekv.locate import ClusterState, read_state_file
from edgekv.process import ProcessIdentity, alive

EDGEKV = [sys.executable, "-m", "edgekv"]


def run(env: dict[str, str], *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGEKV, *args], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environ["EDGEKV_STATE_FILE"] = str(tmp_path / "state" / "cluster.json")
    return environ


def node_pids(state_file: Path) -> dict[str, int]:
    state = json.loads(state_file.read_text())
    return {name: int(info["pid"]) for name, info in state["nodes"].items()}


def test_down_signals_only_the_processes_the_launcher_started(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A stale state file whose PIDs now belong to someone else: down leaves them alone."""
    state_file = Path(env["EDGEKV_STATE_FILE"])
    state_file.parent.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        # Just after exec the kernel may show an empty command line for a moment.
        while (identity := ProcessIdentity.of(bystander.pid)) is not None and not identity.cmdline:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert identity is not None
        stale = {
            "pid": bystander.pid,
            "started_ticks": (identity.start_ticks or 0) + 1,
            "cmdline": [sys.executable, "-m", "edgekv", "edge"],
        }
        for state in (
            # Recorded by an edgekv up that started another process under this PID.
            ClusterState(
                "127.0.0.1:1",
                launcher_pid=bystander.pid,
                launcher=stale,
                nodes={"central": {"kind": "central", **stale}},
            ),
            # Made by hand, or by an edgekv that recorded PIDs alone.
            ClusterState(
                "127.0.0.1:1",
                launcher_pid=bystander.pid,
                nodes={"central": {"kind": "central", "pid": bystander.pid}},
            ),
        ):
            state.write(state_file)
            down = run(env, "down")
            assert down.returncode == 0, down.stderr
            assert down.stdout == "stopped 0 nodes\n"
            assert f"pid {bystander.pid} left alone" in down.stderr
            assert not state_file.exists()
            time.sleep(0.2)
            assert bystander.poll() is None, "down signalled a process it did not start"
        # The process the file records, still running as recorded: down stops it.
        ClusterState(
            "127.0.0.1:1", nodes={"central": {"kind": "central", **identity.to_json()}}
        ).write(state_file)
        down = run(env, "down")
        assert (down.returncode, down.stdout) == (0, "stopped 1 nodes\n"), down.stderr
        assert bystander.wait(5) == -signal.SIGTERM
    finally:
        bystander.kill()


@pytest.mark.slow
def pids_state(env: dict[str, str]) -> dict[str, str]:
    """The address of each node of the running cluster, from its state file."""
    state = json.loads(Path(env["EDGEKV_STATE_FILE"]).read_text())
    return {name: str(info["address"]) for name, info in state["nodes"].items()}


def test_up_detached_status_kv_through_the_state_file_and_down(
    env: dict[str, str], tmp_path: Path
) -> None:
    state_file = Path(env["EDGEKV_STATE_FILE"])
    started = time.monotonic()
    up = run(env, "up", "--detach", "--data-dir", str(tmp_path / "data"), "--time-scale", "10")
    took_s = time.monotonic() - started
    assert up.returncode == 0, up.stderr
    pids = node_pids(state_file)
    launcher_pid = json.loads(state_file.read_text())["launcher_pid"]
    try:
        assert sorted(pids) == sorted(
            ["api", "central", "us-east-1", "us-west-1", "eu-west-1", "ap-southeast-1", "sa-east-1"]
        )
        assert "eu-west-1" in up.stdout and "83" in up.stdout
        assert took_s < 30, f"up --detach took {took_s:.1f} s"

        status = run(env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SERVING") == 7  # central, the API node, five edges

        exports = run(env, "env")
        assert exports.returncode == 0, exports.stderr
        variables = dict(
            line.removeprefix("export ").split("=", 1) for line in exports.stdout.splitlines()
        )
        api = pids_state(env)["api"]
        assert variables["CLOUDFLARE_API_BASE_URL"] == f"http://{api}/client/v4"
        assert variables["CLOUDFLARE_BASE_URL"] == variables["CLOUDFLARE_API_BASE_URL"]
        assert variables["CLOUDFLARE_ACCOUNT_ID"] == "0" * 32
        assert len(variables["CLOUDFLARE_API_TOKEN"]) == 40
        fish = run(env, "env", "--shell", "fish").stdout
        assert f"set -gx CLOUDFLARE_API_BASE_URL http://{api}/client/v4;" in fish
        powershell = run(env, "env", "--shell", "powershell").stdout
        assert f"$Env:CLOUDFLARE_ACCOUNT_ID = '{'0' * 32}'" in powershell
        tokens = run(env, "token", "list")  # the operator token found through the state file
        assert tokens.returncode == 0 and "0" * 32 in tokens.stdout, tokens.stderr

        created = run(env, "kv", "namespace", "create", "CLUSTER")
        assert created.returncode == 0, created.stderr
        namespace_id = created.stdout.split('id = "')[1].split('"')[0]
        ns = ["--namespace-id", namespace_id]
        assert run(env, "kv", "key", "put", "k", "v", *ns).returncode == 0
        first = run(env, "kv", "key", "get", "k", *ns, "--region", "eu-west", "--verbose")
        second = run(env, "kv", "key", "get", "k", *ns, "--region", "eu-west", "--verbose")
        assert (first.stdout, second.stdout) == ("v", "v")
        assert "cache_status=MISS" in first.stderr and "node=eu-west-1" in first.stderr
        assert "cache_status=HIT" in second.stderr

        again = run(env, "up", "--detach", "--data-dir", str(tmp_path / "other"))
        assert again.returncode == 1
        assert again.stderr.startswith("edgekv: error: a cluster is already running")
    finally:
        down = run(env, "down")
    assert down.returncode == 0, down.stderr
    assert "stopped 7 nodes" in down.stdout
    assert not state_file.exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(alive, [launcher_pid, *pids.values()])):
        time.sleep(0.05)
    assert not [name for name, pid in pids.items() if alive(pid)], "orphan nodes after down"
    assert not alive(launcher_pid)


def test_up_in_the_foreground_stops_everything_on_sigterm(
    env: dict[str, str], tmp_path: Path
) -> None:
    topology = tmp_path / "small.toml"
    topology.write_text("[[regions]]\nname = 'eu-west'\nedges = 2\n")
    state_file = Path(env["EDGEKV_STATE_FILE"])
    process = subprocess.Popen(
        [*EDGEKV, "up", "--topology", str(topology), "--data-dir", str(tmp_path / "data")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no state file within 30 s"
            time.sleep(0.05)
        pids = node_pids(state_file)
        assert sorted(pids) == ["api", "central", "eu-west-1", "eu-west-2"]
        os.kill(pids["eu-west-2"], signal.SIGKILL)  # a node that dies is reported at once
        time.sleep(0.6)  # the launcher checks its nodes every 0.2 s
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "node eu-west-2 exited with code -9" in stderr
    assert "stopped" in stdout
    assert not state_file.exists()
    assert not [name for name, pid in pids.items() if alive(pid)], "orphan nodes after SIGTERM"


def test_up_creates_its_state_database_and_logs_for_its_owner_only(
    env: dict[str, str], tmp_path: Path
) -> None:
    topology = tmp_path / "small.toml"
    topology.write_text("[[regions]]\nname = 'eu-west'\n")
    state_file = Path(env["EDGEKV_STATE_FILE"])  # in a folder that does not exist yet
    data = tmp_path / "new" / "data"
    up = shlex.join([*EDGEKV, "up", "--topology", str(topology), "--data-dir", str(data)])
    process = subprocess.Popen(
        ["sh", "-c", f"umask 022 && exec {up}"],  # the usual umask: files readable by all
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no state file within 30 s"
            time.sleep(0.05)
        modes = {
            path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
            for path in [state_file.parent, state_file, *(tmp_path / "new").rglob("*")]
        }
        process.terminate()
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert modes == {
        "state": 0o700,
        "state/cluster.json": 0o600,
        "new/data": 0o700,
        "new/data/logs": 0o700,
        "new/data/logs/central.log": 0o600,
        "new/data/logs/api.log": 0o600,
        "new/data/operator-token": 0o600,
        "new/data/logs/eu-west-1.log": 0o600,
        "new/data/central.db": 0o600,
        "new/data/central.db-wal": 0o600,
        "new/data/central.db-shm": 0o600,
        "new/data/central.db.record.json": 0o600,
    }, {name: oct(mode) for name, mode in modes.items()}


def test_a_bad_topology_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    topology = tmp_path / "bad.toml"
    topology.write_text("[[regions]]\nname = 'x'\nrtt_ms = 'far'\n")
    result = run(env, "up", "--topology", str(topology), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert result.stderr == f"edgekv: error: {topology}: regions[0].rtt_ms: must be a number\n"


def test_status_and_down_without_a_cluster_say_so(env: dict[str, str]) -> None:
    for command in ("status", "down"):
        result = run(env, command)
        assert result.returncode == 1
        assert result.stderr.startswith("edgekv: error: no cluster is running"), result.stderr


@pytest.mark.slow
def test_the_demo_converges_within_the_bound(env: dict[str, str]) -> None:
    started = time.monotonic()
    result = run(env, "demo", timeout_s=120)
    took_s = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every region converged within the bound" in result.stdout
    for region in ("us-west", "eu-west", "ap-southeast", "sa-east"):
        line = next(
            line
            for line in result.stdout.splitlines()
            if line.strip().startswith(region) and "bound" in line
        )
        seen_s = float(line.split()[1])
        assert 50 <= seen_s <= 61, line  # its copy was filled ~2 s before the write
    assert took_s < 30, f"the demo took {took_s:.1f} s"


@pytest.mark.redis
def test_up_with_two_central_replicas_over_redis(
    env: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    """``[central] replicas = 2`` on Redis: two centrals, every node given both; the
    cluster serves through either, and carries on with one of them killed."""
    topology = tmp_path / "replicas.toml"
    topology.write_text(
        f'time_scale = 10\n[central]\nstorage = "{redis_url}"\nreplicas = 2\n'
        '[[regions]]\nname = "eu-west"\nrtt_ms = 20\n'
    )
    up = run(env, "up", "--detach", "--topology", str(topology), "--data-dir", str(tmp_path / "d"))
    assert up.returncode == 0, up.stderr
    state = pids_state(env)
    pids = node_pids(Path(env["EDGEKV_STATE_FILE"]))
    try:
        assert sorted(pids) == ["api", "central-1", "central-2", "eu-west-1"]
        recorded = read_state_file(Path(env["EDGEKV_STATE_FILE"]))
        assert recorded.central == f"{state['central-1']},{state['central-2']}"
        status = run(env, "status")
        assert status.stdout.count("SERVING") == 4, status.stdout + status.stderr

        created = run(env, "kv", "namespace", "create", "SPREAD")
        assert created.returncode == 0, created.stderr
        ns = ["--namespace-id", created.stdout.split('id = "')[1].split('"')[0]]
        for i in range(4):  # each command a client of its own, given both replicas
            assert run(env, "kv", "key", "put", f"k{i}", f"v{i}", *ns).returncode == 0
        os.kill(pids["central-1"], signal.SIGKILL)
        for i in range(4):  # the survivor serves everything, through the edge too
            got = run(env, "kv", "key", "get", f"k{i}", *ns, "--region", "eu-west")
            assert (got.returncode, got.stdout) == (0, f"v{i}"), got.stderr
    finally:
        down = run(env, "down")
    assert down.returncode == 0, down.stderr
