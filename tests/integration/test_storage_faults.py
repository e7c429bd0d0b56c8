"""Storage faults under a real ``edgekv central``: nothing acknowledged is lost or hidden.

Each test provokes, for real, a fault a tester found: a write no store can hold
sent among good writes, a storage that fails (a full disk) while a namespace is
deleted, the SQLite file removed or renamed under a running central, and a
Redis that loses what it acknowledged. Central runs as a child process on real
SQLite files or a real ``redis-server``; nothing of edgekv's is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

import edgekv
from tests.support import disks
from tests.support.central_process import CentralLauncher, run_central_to_exit
from tests.support.redis_server import (
    DURABLE_PERSISTENCE,
    REDIS_DEFAULT_PERSISTENCE,
    RedisServer,
    start_redis,
)

WRITERS = 8
# Simulated time runs 1000 times slower than real time: a test's writes to one key
# all fall in one simulated second, where Workers KV allows one write.
SLOW_TIME = ["--time-scale", "0.001"]
SMALL_DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[CentralLauncher]:
    with CentralLauncher(tmp_path / "logs") as launcher:
        yield launcher


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on an 8 MiB tmpfs of its own, to be filled up."""
    with disks.small_disk(tmp_path / "small-disk", SMALL_DISK_BYTES) as folder:
        yield folder


# -- finding 1: one request stalled every write ------------------------------------------


async def test_a_put_that_no_store_can_hold_stalls_no_other_write(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    central = launcher.start(f"sqlite:{tmp_path / 'central.db'}", ["--no-write-rate-limit"])
    async with edgekv.Client(central.address, timeout_s=10) as client:
        busy = client.namespace((await client.create_namespace("busy")).id)
        other = client.namespace((await client.create_namespace("other")).id)
        acks_after_poison: list[int] = [0] * WRITERS
        poisoned = asyncio.Event()
        stop = asyncio.Event()

        async def write(writer: int) -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                await busy.put(f"w{writer}/{i}", "v")
                if poisoned.is_set():
                    acks_after_poison[writer] += 1

        writers = [asyncio.create_task(write(w)) for w in range(WRITERS)]
        try:
            await asyncio.sleep(0.2)
            refusals = []
            for i in range(5):
                with pytest.raises(edgekv.KVError) as caught:
                    await other.put(f"forever{i}", "v", expiration_ttl=2**63 - 1)
                refusals.append(caught.value)
                poisoned.set()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), timeout=15)
    assert all(isinstance(exc, edgekv.InvalidRequestError) for exc in refusals), refusals
    assert all(acks > 0 for acks in acks_after_poison), (
        f"writers stalled after the first refused put: acks after it {acks_after_poison}"
    )
    assert "Traceback" not in central.stderr(), central.stderr()


# -- finding 2: a failed namespace delete hid the namespace --------------------------------


async def test_a_namespace_whose_delete_failed_on_a_full_disk_still_answers(
    small_disk: Path, launcher: CentralLauncher
) -> None:
    central = launcher.start(f"sqlite:{small_disk / 'central.db'}", SLOW_TIME)
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("kept")
        kv = client.namespace(namespace.id)
        value = "x" * 4096
        await kv.bulk_put([{"key": f"k{i:03}", "value": value} for i in range(100)])
        filler = disks.fill(small_disk)

        with pytest.raises(edgekv.UnavailableError, match="full") as caught:
            await client.delete_namespace(namespace.id)
        assert caught.value.kind is edgekv.ErrorKind.STORAGE_FAILED
        assert (await client.get_namespace(namespace.id)).title == "kept"
        assert await kv.get("k000") == value
        assert len([key async for key in kv.list_all()]) == 100
        # A put the full disk refused was never written: it does not count against the
        # key's one write per second (the same simulated second, below).
        with pytest.raises(edgekv.UnavailableError, match="full"):
            await kv.put("fresh", "v")

        filler.unlink()
        await kv.put("fresh", "v")
        assert await kv.get("fresh") == "v"
        await client.delete_namespace(namespace.id)
        with pytest.raises(edgekv.NotFoundError):
            await client.get_namespace(namespace.id)
    assert "Traceback" not in central.stderr(), central.stderr()


async def test_a_namespace_whose_delete_failed_on_a_killed_redis_still_answers(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    redis: RedisServer = start_redis(tmp_path / "redis")
    try:
        central = launcher.start(redis.url(), SLOW_TIME)
        async with edgekv.Client(central.address, timeout_s=30) as client:
            namespace = await client.create_namespace("kept")
            kv = client.namespace(namespace.id)
            await kv.put("k", "v")
            redis.kill()
            with pytest.raises(edgekv.UnavailableError):
                await client.delete_namespace(namespace.id)
            redis.restart()
            assert (await client.get_namespace(namespace.id)).title == "kept"
            assert await kv.get("k") == "v"
            await client.delete_namespace(namespace.id)
            with pytest.raises(edgekv.NotFoundError):
                await client.get_namespace(namespace.id)
    finally:
        redis.stop()


# -- finding 3: the SQLite file removed or renamed under a running central ----------------


async def put_keys(kv: edgekv.KVNamespace, count: int) -> dict[str, int]:
    """Put k00.. with values v00..; key -> acknowledged revision."""
    return {f"k{i:02}": (await kv.put(f"k{i:02}", f"v{i:02}")).revision for i in range(count)}


async def check_keys(address: str, namespace_id: str, acknowledged: dict[str, int]) -> None:
    async with edgekv.Client(address, timeout_s=10) as client:
        kv = client.namespace(namespace_id)
        found = await kv.get_with_metadata(list(acknowledged))
    lost = [key for key in acknowledged if found[key] is None]
    assert not lost, f"acknowledged writes lost: {lost}"
    assert {key: (read.value, read.info.revision) for key, read in found.items() if read} == {
        key: (f"v{key[1:]}", revision) for key, revision in acknowledged.items()
    }


def refused_start(storage: str, log_dir: Path, extra_args: Sequence[str] = ()) -> str:
    """Run central on ``storage`` expecting it to refuse; its one error line."""
    ended = run_central_to_exit(storage, log_dir, extra_args, timeout_s=30)
    assert ended.returncode == 1, (ended.returncode, ended.stdout, ended.stderr)
    assert "ready" not in ended.stdout, ended.stdout
    lines = ended.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekv: error: "), ended.stderr
    return lines[0]


async def test_writes_stop_once_the_database_file_is_removed_and_a_restart_refuses_empty(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    database = tmp_path / "central.db"
    central = launcher.start(f"sqlite:{database}")
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("kept")
        kv = client.namespace(namespace.id)
        acknowledged = await put_keys(kv, 20)
        database.unlink()

        with pytest.raises(edgekv.UnavailableError) as caught:
            await kv.put("after", "v")
        gone = caught.value
        assert gone.kind is edgekv.ErrorKind.STORE_FILE_GONE
        rescued = tmp_path / "central.db.rescued"
        assert gone.reason == (
            f"The database file {database} was removed while central ran: central refuses "
            "writes, which would be lost when it restarts; reads still answer from the file "
            f"it holds open. Everything central acknowledged is saved in {rescued}: stop "
            f"central, move that file to {database}, remove {database}-wal and "
            f"{database}-shm if they are there, and start central again."
        )
        for refused_write in (kv.put("later", "v"), client.create_namespace("more")):
            with pytest.raises(edgekv.UnavailableError) as again:
                await refused_write
            assert again.value.reason == gone.reason
        # Reads still answer, from the file central holds open.
        assert await kv.get("k00") == "v00"
        assert len([key async for key in kv.list_all()]) >= 20
    assert central.terminate() == 0
    assert "Traceback" not in central.stderr(), central.stderr()

    refusal = refused_start(f"sqlite:{database}", tmp_path / "logs")
    assert f"sqlite:{database} is missing, but" in refusal, refusal
    assert f"central's record {database}.record.json names store" in refusal, refusal
    assert f"To keep it, move {rescued} (a copy central saved) to {database};" in refusal
    # Following the message: the rescued copy has every acknowledged write.
    rescued.rename(database)
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    restarted = launcher.start(f"sqlite:{database}")
    assert restarted.revision >= max(acknowledged.values())
    await check_keys(restarted.address, namespace.id, acknowledged)


async def test_writes_stop_once_the_database_file_is_renamed_and_a_crash_restart_refuses(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    database, moved = tmp_path / "central.db", tmp_path / "moved.db"
    central = launcher.start(f"sqlite:{database}")
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("kept")
        kv = client.namespace(namespace.id)
        acknowledged = await put_keys(kv, 20)
        database.rename(moved)
        with pytest.raises(edgekv.UnavailableError) as caught:
            await kv.put("after", "v")
        assert caught.value.kind is edgekv.ErrorKind.STORE_FILE_GONE
        assert caught.value.reason == (
            f"The database file {database} was renamed to {moved} while central ran: central "
            "refuses writes, which would be lost when it restarts; reads still answer from the "
            f"file it holds open. Rename it back to {database}, and restart central."
        )
        assert await kv.get("k19") == "v19"
    # A crash: the write-ahead log stays beside the old name, where only that name finds it.
    central.kill()
    assert Path(f"{database}-wal").exists()

    refusal = refused_start(f"sqlite:{database}", tmp_path / "logs")
    assert f"its write-ahead log {database}-wal is there" in refusal, refusal
    moved.rename(database)  # as the message said
    restarted = launcher.start(f"sqlite:{database}")
    await check_keys(restarted.address, namespace.id, acknowledged)


async def test_a_database_that_went_back_or_was_replaced_is_refused_at_start(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    database = tmp_path / "central.db"
    storage = f"sqlite:{database}"
    central = launcher.start(storage)
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("kept")
        await put_keys(client.namespace(namespace.id), 5)
    assert central.terminate() == 0
    older = tmp_path / "older.db"
    shutil.copy(database, older)  # a stopped store is whole in its one file

    central = launcher.start(storage)
    async with edgekv.Client(central.address, timeout_s=10) as client:
        await put_keys(client.namespace(namespace.id), 10)
    assert central.terminate() == 0
    shutil.copy(older, database)
    refusal = refused_start(storage, tmp_path / "logs")
    assert f"{storage} is at revision 5, below revision 15" in refusal, refusal
    assert "went back" in refusal

    other = tmp_path / "other.db"
    other_central = launcher.start(f"sqlite:{other}")
    assert other_central.terminate() == 0
    shutil.copy(other, database)
    refusal = refused_start(storage, tmp_path / "logs")
    assert "another store was put in its place" in refusal, refusal


# -- finding 4: Redis durability was neither set nor checked --------------------------------


def redis_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port)


async def once_reconnected(call: Callable[[], Awaitable[object]]) -> edgekv.KVError:
    """The error ``call`` fails with once central connected to Redis again.

    After Redis dropped central's connections, the first call finds its pooled
    connection dead and fails UNAVAILABLE (central never retries a write that may
    have been sent); the next one connects, and the new connection is checked.
    """
    for _ in range(3):
        with pytest.raises(edgekv.KVError) as caught:
            await call()
        if "Connection closed by server" not in caught.value.message:
            return caught.value
    raise AssertionError("central did not connect to Redis again")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, keeping every acknowledged write on disk."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def test_a_redis_with_default_persistence_is_refused_with_the_fix(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis", persistence=REDIS_DEFAULT_PERSISTENCE)
    try:
        refusal = refused_start(server.url(), tmp_path / "logs")
    finally:
        server.stop()
    assert refusal == (
        f"edgekv: error: Redis at {server.url()} may lose acknowledged writes (appendonly no, "
        "appendfsync everysec): run it with --appendonly yes --appendfsync always (or CONFIG "
        "SET both and CONFIG REWRITE), or start central with --durability none to accept "
        "losing them"
    )


async def test_durability_none_takes_such_a_redis_and_says_so(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    server = start_redis(tmp_path / "redis", persistence=REDIS_DEFAULT_PERSISTENCE)
    try:
        central = launcher.start(server.url(), ["--durability", "none"])
        assert central.fields["durability"] == "none", central.ready_line
        async with edgekv.Client(central.address) as client:
            kv = client.namespace((await client.create_namespace("fast")).id)
            await kv.put("k", "v")
            assert await kv.get("k") == "v"
    finally:
        server.stop()


def test_a_redis_that_hides_its_config_is_refused_unless_durability_none(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    # As managed Redis services do: CONFIG renamed away.
    persistence = (*DURABLE_PERSISTENCE, "--rename-command", "CONFIG", "")
    server = start_redis(tmp_path / "redis", persistence=persistence)
    try:
        refusal = refused_start(server.url(), tmp_path / "logs")
        assert "does not let central read its persistence settings" in refusal, refusal
        assert refusal.endswith("then start central with --durability none"), refusal
        central = launcher.start(server.url(), ["--durability", "none"])
        assert central.fields["durability"] == "none"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("storage", "durability"),
    [("sqlite:{tmp}/central.db", "local"), ("memory:", "none"), ("redis", "local")],
)
def test_the_ready_line_says_what_an_acknowledged_write_survives(
    launcher: CentralLauncher, tmp_path: Path, storage: str, durability: str, own_redis: RedisServer
) -> None:
    storage = own_redis.url() if storage == "redis" else storage.format(tmp=tmp_path)
    central = launcher.start(storage)
    assert central.fields["durability"] == durability, central.ready_line
    assert {"storage", "revision", "time-scale"} <= set(central.fields)


def test_memory_cannot_be_durable(tmp_path: Path) -> None:
    ended = run_central_to_exit("memory:", tmp_path / "logs", ["--durability", "local"])
    assert ended.returncode == 1
    assert ended.stderr.strip() == (
        "edgekv: error: memory: keeps nothing on disk, so it cannot give --durability local; "
        "use --durability none, or leave --durability out"
    )


async def test_a_redis_weakened_while_central_runs_is_refused_when_central_reconnects(
    launcher: CentralLauncher, own_redis: RedisServer
) -> None:
    central = launcher.start(own_redis.url())
    async with edgekv.Client(central.address, timeout_s=30) as client:
        kv = client.namespace((await client.create_namespace("kept")).id)
        await kv.put("k", "v")
        with redis_client(own_redis) as admin:
            admin.config_set("appendfsync", "everysec")
            admin.client_kill_filter(_type="normal", skipme=True)  # central reconnects
        refused = await once_reconnected(lambda: kv.put("k2", "v"))
        assert isinstance(refused, edgekv.UnavailableError)
        assert refused.kind is edgekv.ErrorKind.STORAGE_FAILED
        assert refused.reason.startswith(
            "The central store's storage failed: "
            f"Redis at {own_redis.url()} may lose acknowledged writes (appendonly yes, "
            "appendfsync everysec): run it with --appendonly yes --appendfsync always"
        ), refused.message
        with redis_client(own_redis) as admin:
            admin.config_set("appendfsync", "always")
        await kv.put("k2", "v")  # a new connection passes the check again


async def test_a_flushed_redis_makes_central_refuse_writes(
    launcher: CentralLauncher, own_redis: RedisServer, tmp_path: Path
) -> None:
    record = tmp_path / "central.record.json"
    central = launcher.start(own_redis.url(), ["--store-record", str(record)])
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("kept")
        kv = client.namespace(namespace.id)
        acknowledged = await put_keys(kv, 5)
        with redis_client(own_redis) as admin:
            admin.flushall()
        with pytest.raises(edgekv.KVError) as caught:
            await kv.put("after", "v")
        went_back = caught.value
        assert went_back.kind is edgekv.ErrorKind.STORE_WENT_BACK
        assert went_back.status == "DATA_LOSS" and not went_back.transient
        assert went_back.reason == (
            f"Redis at {own_redis.url()} went back: it holds no edgekv store any more (it was "
            "flushed, or is another Redis). Central already acknowledged revision 5 from it "
            "and refuses writes rather than acknowledge lower revisions again. Restore the "
            "store's newest data (appendonly yes and appendfsync always keep it), then "
            "restart central; or start central on a new, empty store."
        )
        # Nothing was written, and from now on every call says so.
        with redis_client(own_redis) as admin:
            assert admin.dbsize() == 0
        for call in (client.create_namespace("new"), kv.get("k00")):
            with pytest.raises(edgekv.KVError, match="went back") as again:
                await call
            assert again.value.kind is edgekv.ErrorKind.STORE_WENT_BACK
    assert central.terminate() == 0
    # Its record remembers, across a restart, that a store was there.
    refusal = refused_start(own_redis.url(), tmp_path, ["--store-record", str(record)])
    assert f"Redis at {own_redis.url()} holds no edgekv store" in refusal, refusal
    assert f"up to revision {max(acknowledged.values())}" in refusal, refusal


async def test_a_redis_restarted_from_an_older_aof_makes_central_refuse(
    launcher: CentralLauncher, own_redis: RedisServer, tmp_path: Path
) -> None:
    central = launcher.start(own_redis.url())
    aof = own_redis.data_dir / "appendonlydir"
    async with edgekv.Client(central.address, timeout_s=30) as client:
        namespace = await client.create_namespace("kept")
        kv = client.namespace(namespace.id)
        await put_keys(kv, 5)
        shutil.copytree(aof, tmp_path / "older-aof")  # every acknowledged write is in it
        newer = {f"n{i}": (await kv.put(f"n{i}", "v")).revision for i in range(5)}
        own_redis.kill()
        shutil.rmtree(aof)
        shutil.copytree(tmp_path / "older-aof", aof)
        own_redis.restart()
        refused = await once_reconnected(lambda: kv.put("after", "v"))
        assert refused.kind is edgekv.ErrorKind.STORE_WENT_BACK, refused
        assert "its revision is 5 (it restarted from an older AOF" in refused.message
        assert f"acknowledged revision {max(newer.values())} from it" in refused.message
        with pytest.raises(edgekv.KVError, match="went back"):
            await kv.get("k00")
    with redis_client(own_redis) as admin:
        assert admin.get("edgekv:rev") == b"5", "central wrote nothing to the older store"
