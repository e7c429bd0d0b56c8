"""A Redis password reaches Redis and nothing else: no printed line, no command line.

Against a real ``redis-server --requirepass``: central and an edge take the
password from ``EDGEKV_REDIS_PASSWORD`` or ``--redis-password-file`` (neither
shows in ``ps``), a password written in the URL is shown as ``***`` in every
line edgekv prints, and ``edgekv up`` moves a topology URL's password out of
its nodes' command lines into their environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekv
from edgekv.locate import read_state_file
from tests.support.central_process import run_central_to_exit, start_central
from tests.support.edge_process import start_edge
from tests.support.redis_server import RedisServer, start_redis

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-pw-0f9a"


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis-auth"), ["--requirepass", PASSWORD])
    yield server
    server.stop()


def bare_url(redis: RedisServer, db: int = 0) -> str:
    return f"redis://127.0.0.1:{redis.port}/{db}"


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, text


@pytest.fixture
def no_password_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEKV_REDIS_PASSWORD", raising=False)


async def test_central_and_edge_take_the_password_from_the_environment(
    redis_with_password: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKV_REDIS_PASSWORD", PASSWORD)
    with start_central(bare_url(redis_with_password), tmp_path) as central:
        assert central.ready_line.endswith(
            f"storage={bare_url(redis_with_password)} durability=local revision=0 time-scale=1 "
            "auth=off tls=off"
        )
        extra = ["--cache", bare_url(redis_with_password, 1)]
        with start_edge(central.address, "eu-west", tmp_path, extra) as edge:
            async with edgekv.Client(central=central.address, edge=edge.address) as client:
                namespace = await client.create_namespace("secret-keeping")
                await client.namespace(namespace.id).put("k", "v")
                assert await client.namespace(namespace.id).get("k") == "v"
            if sys.platform == "linux":
                assert_hidden(command_line(central.pid), command_line(edge.pid))
            assert_hidden(edge.stdout(), edge.stderr())
        assert_hidden(central.stdout(), central.stderr())


async def test_central_takes_the_password_from_a_file(
    redis_with_password: RedisServer, tmp_path: Path, no_password_variable: None
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    extra = ["--redis-password-file", str(secret)]
    with start_central(bare_url(redis_with_password), tmp_path, extra) as central:
        async with edgekv.Client(central=central.address) as client:
            await client.create_namespace("from-a-file")
        assert_hidden(central.stdout(), central.stderr())


def test_a_password_in_the_url_is_shown_as_stars(
    redis_with_password: RedisServer, tmp_path: Path, no_password_variable: None
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_with_password.port}/0"
    with start_central(url, tmp_path) as central:
        shown = f"storage='redis://:***@127.0.0.1:{redis_with_password.port}/0'"  # shell-quoted
        assert shown in central.ready_line
        assert_hidden(central.stdout(), central.stderr())


def test_a_wrong_or_missing_password_is_one_line_that_hides_it(
    redis_with_password: RedisServer, tmp_path: Path, no_password_variable: None
) -> None:
    wrong = f"redis://:{PASSWORD}-wrong@127.0.0.1:{redis_with_password.port}/0"
    ended = run_central_to_exit(wrong, tmp_path)
    assert ended.returncode == 1
    assert ended.stderr.startswith(
        f"edgekv: error: cannot use Redis at redis://:***@127.0.0.1:{redis_with_password.port}/0"
    ), ended.stderr
    assert_hidden(ended.stdout, ended.stderr)
    assert len(ended.stderr.splitlines()) == 1
    missing = run_central_to_exit(bare_url(redis_with_password), tmp_path)
    assert (missing.returncode, len(missing.stderr.splitlines())) == (1, 1), missing.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    no_file = run_central_to_exit(
        bare_url(redis_with_password), tmp_path, ["--redis-password-file", str(empty)]
    )
    assert no_file.stderr == f"edgekv: error: --redis-password-file {empty}: the file is empty\n"


@pytest.mark.skipif(sys.platform != "linux", reason="reads command lines from /proc")
def test_up_keeps_a_topology_password_out_of_its_nodes_command_lines(
    redis_with_password: RedisServer, tmp_path: Path
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_with_password.port}"
    topology = tmp_path / "auth.toml"
    topology.write_text(
        f'[central]\nstorage = "{url}/2"\n[[regions]]\nname = "eu-west"\ncache = "{url}/3"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    env["EDGEKV_STATE_FILE"] = str(tmp_path / "cluster.json")
    data = tmp_path / "data"
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekv",
            "up",
            "--topology",
            str(topology),
            "--data-dir",
            str(data),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not Path(env["EDGEKV_STATE_FILE"]).exists():
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline, "no state file within 30 s"
            time.sleep(0.05)
        state = read_state_file(Path(env["EDGEKV_STATE_FILE"]))
        for info in state.nodes.values():
            assert_hidden(command_line(int(str(info["pid"]))), str(info["cmdline"]))
            assert_hidden(Path(str(info["log"])).read_text())
        up.send_signal(signal.SIGTERM)
        stdout, stderr = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, stderr
    assert_hidden(stdout, stderr, *(log.read_text() for log in (data / "logs").iterdir()))
