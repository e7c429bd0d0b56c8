"""When the storage itself fails — a full disk, a Redis out of memory — callers are told so.

A namespace created or renamed on a full disk answered UNKNOWN (and, once a
COMMIT had failed, every later namespace change failed too: the transaction
was left open). Now every storage failure is STORAGE_FAILED (UNAVAILABLE) in
the back-end's own words, and central recovers once there is room again.

The full disk is real: ``edgekv central`` runs in a mount namespace of its
own, its data folder a 2 MiB tmpfs, which the test fills through
``/proc/PID/root`` (the central's view of the file system).
"""

from __future__ import annotations

import random
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import edgekv
from central.server import start_central
from central.storage.sqlite import SqliteStorage
from edgekv.clock import ManualClock
from edgekv.core.errors import ErrorKind
from edgekv.core.model import Namespace, Put
from tests.support import disks
from tests.support.central_process import CentralProcess, central_command
from tests.support.metrics import scrape
from tests.support.node_process import start_node
from tests.support.redis_server import RedisServer, free_port

TMPFS_SIZE = "2m"
NAMESPACE_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def central_on_a_small_disk(tmp_path: Path) -> Iterator[tuple[CentralProcess, Path, int]]:
    """``edgekv central`` over SQLite on a tmpfs of its own; that folder, seen from here;
    and the port of its metrics."""
    disks.require_root("giving central a small disk of its own (a mount namespace)")
    if shutil.which("unshare") is None:
        disks.cannot_run("unshare(1) is missing: apt-get install util-linux")
    disk = tmp_path / "disk"
    disk.mkdir()
    metrics_port = free_port()
    metrics = ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    command = shlex.join(central_command(f"sqlite:{disk / 'central.db'}", metrics))
    mount = f"mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 tmpfs {shlex.quote(str(disk))}"
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f"{mount} && exec {command}",
    ]
    central = start_node(CentralProcess, argv, tmp_path / "logs")
    try:
        yield central, Path(f"/proc/{central.pid}/root") / disk.relative_to("/"), metrics_port
    finally:
        central.kill()


async def test_a_namespace_change_on_a_full_disk_is_storage_failed_and_central_recovers(
    central_on_a_small_disk: tuple[CentralProcess, Path, int],
) -> None:
    central, disk, metrics_port = central_on_a_small_disk
    async with edgekv.Client(central=central.address, retry=edgekv.RetryPolicy.NONE) as client:
        kept = await client.create_namespace("made before the disk filled")
        filler = disks.fill(disk)
        for change in (
            lambda: client.create_namespace("x" * 500),
            lambda: client.rename_namespace(kept.id, "y" * 500),
        ):
            with pytest.raises(edgekv.KVError) as failed:
                await change()
            assert (failed.value.kind, failed.value.status) == (
                ErrorKind.STORAGE_FAILED,
                "UNAVAILABLE",
            )
            assert failed.value.reason == (
                "The central store's storage failed: database or disk is full."
            )
        samples = await scrape(metrics_port)
        assert samples["edgekv_central_storage_errors_total"] == {"": 2.0}
        filler.unlink()
        again = await client.create_namespace("made once there was room")
        assert {ns.id for ns in await client.list_namespaces()} == {kept.id, again.id}
    assert "Traceback" not in central.stderr(), central.stderr()


@pytest.mark.redis
async def test_a_redis_out_of_memory_is_storage_failed(redis_server: RedisServer) -> None:
    admin = redis.Redis(port=redis_server.port)
    admin.flushall()
    server = await start_central("127.0.0.1:0", redis_server.url(), ManualClock())
    try:
        async with edgekv.Client(central=server.address) as client:
            kept = await client.create_namespace("made before Redis filled")
            admin.config_set("maxmemory", "1")
            try:
                # (A rename frees memory before it takes any: Redis lets it run.)
                for change in (
                    lambda: client.create_namespace("refused"),
                    lambda: client.namespace(kept.id).put("k", "v"),
                ):
                    with pytest.raises(edgekv.KVError) as failed:
                        await change()
                    assert failed.value.kind is ErrorKind.STORAGE_FAILED, failed.value.message
                    assert failed.value.reason.startswith(
                        "The central store's storage failed: command not allowed when used "
                        "memory > 'maxmemory'"
                    )
            finally:
                admin.config_set("maxmemory", "0")
            await client.create_namespace("made once there was room")
    finally:
        await server.stop(grace_s=0)
        admin.close()


async def test_a_damaged_sqlite_file_answers_reads_storage_failed(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    store = await SqliteStorage.open(path)
    await store.create_namespace(Namespace(NAMESPACE_ID, "main", 1.0), 10)
    for index in range(50):  # values of many pages, so the damage below misses the schema
        await store.commit([Put(NAMESPACE_ID, f"k{index:03}", b"x" * 3000, None, None)], 1.0)
    await store.close()
    size = path.stat().st_size
    with path.open("r+b") as damaged:
        damaged.seek(size // 2)  # the later half of the values' pages, then two pages intact
        damaged.write(random.Random(7).randbytes(size // 2 - 8192))

    store = await SqliteStorage.open(path)
    try:
        with pytest.raises(edgekv.KVError) as caught:
            await store.get(NAMESPACE_ID, "k040")
        assert caught.value.kind is ErrorKind.STORAGE_FAILED
        assert caught.value.message == (
            "The central store's storage failed: database disk image is malformed."
        )
    finally:
        await store.close()
