"""Redis Sentinel and ``--durability replicated``, for real: a primary, its replica and
three Sentinels (all ``redis-server`` processes), and a real central process.

The failover test runs 16 writers against central on
``redis+sentinel://…/mymaster``, kills the primary with SIGKILL mid-run, and lets
Sentinel promote the replica; the killed server comes back as a replica of the new
primary, and central — never restarted — carries on. Every write it acknowledged
is then read back through it, and the unavailable window is printed. Another test
stalls the replica so that writes go unacknowledged, then fails over to it: a
promoted replica without writes central never acknowledged is not a store that
went back. The rest are the starts central must refuse in one line.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

import edgekv
from central.storage.base import Durability
from central.storage.redis_connect import CentralRedis
from central.storage.redis_store import RedisStorage
from edgekv.core import limits
from tests.support.central_process import CentralLauncher, run_central_to_exit
from tests.support.redis_sentinel import MASTER_NAME, SentinelGroup, start_sentinel_group
from tests.support.redis_server import DURABLE_PERSISTENCE, RedisServer, free_port, start_redis

pytestmark = pytest.mark.redis

WRITERS = 16
ACKS_BEFORE_KILL = 300
ACKS_AFTER_FAILOVER = 300
REPLICATED = ["--durability", "replicated", "--no-write-rate-limit"]
# A writer whose put failed tries its next key this much later, as a client backs off.
BACKOFF_S = 0.05
POLL_S = 0.01


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[CentralLauncher]:
    with CentralLauncher(tmp_path / "logs") as launcher:
        yield launcher


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A group of the test's own, to fail over."""
    with start_sentinel_group(tmp_path / "redis") as group:
        yield group


@pytest.fixture(scope="module")
def calm_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A group the tests share and leave as it was: they only ask it, and are refused."""
    with start_sentinel_group(tmp_path_factory.mktemp("calm-redis")) as group:
        yield group


def value_for(key: str) -> str:
    return f"{key}:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass
class WriteLog:
    """What the writers saw: acknowledged key → revision, when each put ended, failures."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    acknowledged_at: list[float] = field(default_factory=list)
    failures: list[tuple[float, edgekv.KVError]] = field(default_factory=list)

    def acknowledged_since(self, moment: float) -> int:
        return sum(1 for at in self.acknowledged_at if at > moment)

    def window(self) -> tuple[float, float]:
        """When the first put failed, and when the first one after it succeeded."""
        first_failed = min(at for at, _ in self.failures)
        return first_failed, min(at for at in self.acknowledged_at if at > first_failed)


async def keep_writing(
    kv: edgekv.KVNamespace, writer: int, log: WriteLog, stop: asyncio.Event
) -> None:
    """Put distinct keys until ``stop``, going on after a failed put."""
    for i in itertools.count():
        if stop.is_set():
            return
        key = f"w{writer:02d}/{i:06d}"
        try:
            result = await kv.put(key, value_for(key))
        except edgekv.KVError as exc:
            log.failures.append((time.monotonic(), exc))
            await asyncio.sleep(BACKOFF_S)
            continue
        log.acknowledged[key] = result.revision
        log.acknowledged_at.append(time.monotonic())


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        await asyncio.sleep(POLL_S)


async def stop_writers(writers: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    stop.set()
    _, pending = await asyncio.wait(writers, timeout=30)
    for task in pending:
        task.cancel()
    await asyncio.gather(*writers, return_exceptions=True)
    assert not pending, "writers still running 30 s after they were told to stop"
    for task in writers:
        task.result()  # a writer that died of anything but a KVError fails the test here


async def read_back(kv: edgekv.KVNamespace, keys: list[str]) -> dict[str, tuple[str, int]]:
    """key → (value, revision) of every key of ``keys`` that exists, read through central."""
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, len(keys), limits.MAX_GET_MANY_KEYS):
        batch = keys[start : start + limits.MAX_GET_MANY_KEYS]
        for key, result in (await kv.get_with_metadata(batch)).items():
            if result is not None:
                found[key] = (result.value, result.info.revision)
    return found


def check_all_acknowledged_writes_kept(
    acknowledged: dict[str, int], stored: dict[str, tuple[str, int]]
) -> None:
    missing = sorted(set(acknowledged) - set(stored))
    assert not missing, (
        f"{len(missing)} of {len(acknowledged)} acknowledged writes are lost after the "
        f"failover, e.g. {missing[:5]}"
    )
    wrong = [key for key in acknowledged if stored[key] != (value_for(key), acknowledged[key])]
    assert not wrong, (
        "acknowledged keys read back with another value or revision: "
        f"{[(key, acknowledged[key], stored[key]) for key in wrong[:5]]}"
    )
    revisions = list(acknowledged.values())
    assert len(set(revisions)) == len(revisions), "two acknowledged writes share a revision"


def check_storage_failures(log: WriteLog) -> None:
    """Every failed put failed as central's storage away does: retryable, not definite."""
    others = [
        exc
        for _, exc in log.failures
        if exc.kind is not edgekv.ErrorKind.STORAGE_FAILED or exc.definite
    ]
    assert not others, f"puts failed otherwise than STORAGE_FAILED: {others[:3]}"


@pytest.mark.slow
async def test_central_follows_a_failover_and_keeps_every_acknowledged_write(
    launcher: CentralLauncher, group: SentinelGroup
) -> None:
    central = launcher.start(group.url(), REPLICATED, name="central")
    assert central.fields["durability"] == "replicated", central.ready_line
    log = WriteLog()
    stop = asyncio.Event()
    async with edgekv.Client(central.address, timeout_s=10) as client:
        kv = client.namespace((await client.create_namespace("failover")).id)
        writers = [asyncio.create_task(keep_writing(kv, w, log, stop)) for w in range(WRITERS)]
        try:
            await wait_until(
                lambda: len(log.acknowledged) >= ACKS_BEFORE_KILL,
                timeout_s=30,
                what=f"{ACKS_BEFORE_KILL} acknowledged writes",
            )
            assert not log.failures, f"writes failed before the kill: {log.failures[:3]}"
            old_port = group.primary.port
            assert group.primary_port() == old_port
            killed_at = time.monotonic()
            group.primary.kill()
            new_port = await asyncio.to_thread(group.wait_for_promotion, old_port)
            promoted_at = time.monotonic()
            assert new_port == group.replica.port
            # With its one replica promoted, the new primary has none: every write fails
            # until the killed server is back, as a replica of the new primary.
            await asyncio.to_thread(group.rejoin, group.primary, new_port)
            rejoined_at = time.monotonic()
            await wait_until(
                lambda: log.acknowledged_since(rejoined_at) >= ACKS_AFTER_FAILOVER,
                timeout_s=60,
                what=f"{ACKS_AFTER_FAILOVER} acknowledged writes after the failover",
            )
        finally:
            await stop_writers(writers, stop)
        assert central.running, "central stopped; it must carry on through the failover"
        stored = await read_back(kv, sorted(log.acknowledged))
    check_all_acknowledged_writes_kept(log.acknowledged, stored)
    check_storage_failures(log)
    assert log.failures, "no put failed: the primary was killed with no write in flight"
    first_failed, back_at = log.window()
    assert first_failed >= killed_at
    window_s = back_at - first_failed
    print(
        f"unavailable window: {window_s:.2f} s (first failed put {first_failed - killed_at:.2f} s "
        f"after the kill, first acknowledged put after it {back_at - killed_at:.2f} s after; "
        f"Sentinel promoted the replica {promoted_at - killed_at:.2f} s after the kill, the "
        f"killed server was back as a replica {rejoined_at - killed_at:.2f} s after); "
        f"{len(log.acknowledged)} writes acknowledged, {len(log.failures)} puts failed"
    )
    assert central.terminate() == 0
    assert "Traceback" not in central.stderr(), central.stderr()


async def test_a_promoted_replica_without_unacknowledged_writes_did_not_go_back(
    launcher: CentralLauncher, group: SentinelGroup
) -> None:
    # The revision high-water mark counts acknowledged writes only. The replica is cut
    # off (SIGSTOP, and its link killed), so the primary applies writes no replica
    # acknowledges: they fail, and the primary's revision runs ahead of what central
    # acknowledged. Then the primary is killed and the replica, which never got them,
    # promoted: its revision is below the primary's, not below central's floor, so
    # central goes on, and gives those revisions to new writes.
    central = launcher.start(group.url(), REPLICATED, name="central")
    async with edgekv.Client(central.address, timeout_s=10) as client:
        kv = client.namespace((await client.create_namespace("high-water")).id)
        acknowledged = {
            f"before/{i}": (await kv.put(f"before/{i}", "v")).revision for i in range(5)
        }
        group.freeze(group.replica)
        with redis.Redis(port=group.primary.port) as primary:
            # Its link broken too: what the primary writes now cannot wait, unread, in the
            # frozen replica's socket, to be applied once it runs again.
            primary.client_kill_filter(_type="replica")
        failed = await asyncio.gather(
            *(kv.put(f"unacknowledged/{i}", "v") for i in range(8)),
            client.create_namespace("unacknowledged"),  # a write of its own, not a commit
            return_exceptions=True,
        )
        assert all(isinstance(f, edgekv.KVError) for f in failed), failed
        for refused in failed:
            assert isinstance(refused, edgekv.KVError)
            assert refused.kind is edgekv.ErrorKind.STORAGE_FAILED and not refused.definite
            assert "acknowledged the write within 1000 ms" in refused.message, refused.message
        with redis.Redis(port=group.primary.port) as primary:
            applied = int(primary.get("edgekv:rev") or 0)
        assert applied > max(acknowledged.values()), "the primary applied the refused writes"
        old_port = group.primary.port
        group.primary.kill()
        group.thaw(group.replica)
        new_port = await asyncio.to_thread(group.wait_for_promotion, old_port)
        await asyncio.to_thread(group.rejoin, group.primary, new_port)
        after = await put_once_back(kv, "after")
        unacknowledged = [f"unacknowledged/{i}" for i in range(8)]
        stored = await read_back(kv, [*acknowledged, *unacknowledged])
    assert after > max(acknowledged.values())
    assert after <= applied, (
        f"the write after the failover got revision {after}: the promoted replica should "
        f"hold revisions up to {max(acknowledged.values())} only, not the primary's {applied}"
    )
    assert {key: revision for key, (_, revision) in stored.items()} == acknowledged
    assert central.terminate() == 0
    assert "went back" not in central.stderr(), central.stderr()


async def put_once_back(kv: edgekv.KVNamespace, key: str, timeout_s: float = 30) -> int:
    """Put ``key`` as soon as central's storage takes writes again; its revision."""
    deadline = time.monotonic() + timeout_s
    failures: list[edgekv.KVError] = []
    while time.monotonic() < deadline:
        try:
            return (await kv.put(key, "v")).revision
        except edgekv.KVError as exc:
            failures.append(exc)
        await asyncio.sleep(BACKOFF_S)
    raise AssertionError(f"central took no write in {timeout_s:g} s: {failures[-3:]}")


# -- starts central refuses, in one line --------------------------------------------


def refused_start(storage: str, log_dir: Path, extra_args: list[str]) -> str:
    """The one line central exits with (non-zero), having printed no ready line."""
    ended = run_central_to_exit(storage, log_dir, extra_args, timeout_s=30)
    assert ended.returncode != 0, f"central started on {storage}: {ended.stdout}"
    assert "ready" not in ended.stdout, ended.stdout
    assert "Traceback" not in ended.stderr, ended.stderr
    lines = ended.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{ended.stderr}"
    assert lines[0].startswith("edgekv: error: "), lines[0]
    return lines[0].removeprefix("edgekv: error: ")


def keys_in(server: RedisServer) -> int:
    with redis.Redis(port=server.port) as client:
        return int(client.dbsize())


def test_a_master_name_no_sentinel_knows_is_refused(
    calm_group: SentinelGroup, tmp_path: Path
) -> None:
    url = calm_group.url(master_name="mymastr")
    refusal = refused_start(url, tmp_path / "logs", ["--durability", "replicated"])
    assert refusal == (
        f"no Sentinel of {url} monitors a master named 'mymastr' (they monitor: "
        f"'{MASTER_NAME}'): after the Sentinels' addresses, put the name their 'sentinel "
        "monitor' line gives"
    )
    assert keys_in(calm_group.primary) == 0, "central wrote to Redis before refusing"


async def test_a_broken_call_is_never_resent_through_sentinel_either(
    calm_group: SentinelGroup,
) -> None:
    # redis-py resends a call whose connection broke, by default; a commit must not be
    # (Redis may have applied it). Through Sentinel, the connections to the primary
    # and those to the Sentinels are made with the store's NO_RETRIES too.
    store = await RedisStorage.open(calm_group.url(), durability=Durability.REPLICATED)
    try:
        assert store.durability is Durability.REPLICATED
        client = store._client
        assert isinstance(client, CentralRedis) and client.sentinels is not None
        pools = [client.connection_pool, *(s.connection_pool for s in client.sentinels.sentinels)]
        assert [pool.connection_kwargs["retry"].get_retries() for pool in pools] == [0] * 4
    finally:
        await store.close()


def test_sentinels_out_of_reach_are_refused(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    url = f"redis+sentinel://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/{MASTER_NAME}"
    refusal = refused_start(url, tmp_path / "logs", [])
    assert refusal.startswith(f"cannot reach any Sentinel of {url} (127.0.0.1:{ports[0]}: ")
    assert f"; 127.0.0.1:{ports[1]}: " in refusal, refusal


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://127.0.0.1:26379", id="no-master-name"),
        pytest.param("redis+sentinel://127.0.0.1/mymaster", id="no-port"),
        pytest.param("redis+sentinel://127.0.0.1:26379/mymaster/x", id="database-not-a-number"),
    ],
)
def test_a_malformed_sentinel_url_is_refused(url: str, tmp_path: Path) -> None:
    refusal = refused_start(url, tmp_path / "logs", [])
    assert refusal.startswith(f"cannot use Redis URL {url}: "), refusal


@pytest.mark.parametrize(
    ("config", "reason", "advice"),
    [
        pytest.param(
            (),
            "has no replica (INFO replication: connected_slaves:0)",
            ", so --durability replicated could acknowledge no write: start a replica of it "
            "(replicaof), or use --durability local",
            id="no-replica",
        ),
        pytest.param(
            ("--rename-command", "WAIT", ""),
            "refuses WAIT (unknown command 'WAIT'",  # then Redis's own words, to the ")"
            "), so central cannot know that a replica has a write before acknowledging it: "
            "--durability replicated needs a primary that takes WAIT; use --durability local "
            "otherwise",
            id="wait-renamed",
        ),
    ],
)
def test_replicated_needs_a_redis_with_a_replica_that_takes_wait(
    tmp_path: Path, config: tuple[str, ...], reason: str, advice: str
) -> None:
    server = start_redis(tmp_path / "redis", persistence=(*DURABLE_PERSISTENCE, *config))
    try:
        refusal = refused_start(server.url(), tmp_path / "logs", ["--durability", "replicated"])
        assert refusal.startswith(f"Redis at {server.url()} {reason}"), refusal
        assert refusal.endswith(advice), refusal
        assert keys_in(server) == 0, "central wrote to Redis before refusing"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("storage", "advice"),
    [("sqlite:{tmp}/central.db", "--durability local"), ("memory:", "--durability none")],
)
def test_replicated_is_refused_for_a_store_without_replicas(
    tmp_path: Path, storage: str, advice: str
) -> None:
    storage = storage.format(tmp=tmp_path)
    refusal = refused_start(storage, tmp_path / "logs", ["--durability", "replicated"])
    scheme = storage.partition(":")[0]
    assert refusal == (
        f"{scheme}: has no replica, so it cannot give --durability replicated; use a Redis "
        f"with a replica (redis:// or redis+sentinel://), or {advice}"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["logs"], "nothing is made"


def test_the_password_reaches_the_primary_and_no_printed_line(
    launcher: CentralLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for redis://: from EDGEKV_REDIS_PASSWORD into a URL without one, to the primary
    # the Sentinels name (they themselves are asked without one); one written in the
    # URL is shown as ***.
    password = "s3cret-sentinel-pw"
    with start_sentinel_group(tmp_path / "redis", password=password) as group:
        monkeypatch.setenv("EDGEKV_REDIS_PASSWORD", password)
        central = launcher.start(group.url(), ["--durability", "replicated"], name="central")
        assert password not in central.ready_line
        assert central.terminate() == 0
        monkeypatch.delenv("EDGEKV_REDIS_PASSWORD")
        hosts = group.url().removeprefix("redis+sentinel://")
        wrong = f"redis+sentinel://:{password}-wrong@{hosts}"
        refusal = refused_start(wrong, tmp_path / "logs", ["--durability", "replicated"])
        assert refusal.startswith(f"cannot use Redis at redis+sentinel://:***@{hosts}: "), refusal
        assert password not in refusal
        assert password not in central.stderr()
