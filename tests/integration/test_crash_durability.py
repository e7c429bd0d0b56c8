"""A real ``edgekv central`` process: kill -9 durability, graceful stop, start errors, probes.

The crash test streams concurrent writes at a SQLite-backed (or Redis-backed)
central, SIGKILLs it while writes are in flight, restarts it on the same store
and checks that every write the client saw acknowledged is there, with its
value and its revision, and that revisions go on from above them. Another
SIGKILLs the redis-server under central instead (appendfsync always), restarts
it from its files, and checks the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import edgekv
from edgekv.core import limits
from tests.support.central_process import (
    CentralLauncher,
    CentralProcess,
    CentralStartError,
    run_central_to_exit,
)
from tests.support.redis_server import start_redis

SERVICE = "edgekv.v1.CentralStore"
WRITERS = 16
ACKS_BEFORE_KILL = 300
POLL_S = 0.005


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[CentralLauncher]:
    """Starts central processes logging into tmp_path; kills them all after the test."""
    with CentralLauncher(tmp_path / "logs") as launcher:
        yield launcher


def value_for(key: str) -> str:
    """The value written to ``key``: derived from it, so any read can be checked."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key}:{digest * 4}"


@dataclass
class WriteLog:
    """What concurrent writers did: acknowledged (key → revision), attempted, failed."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    failures: list[edgekv.KVError] = field(default_factory=list)
    in_flight: int = 0


async def stream_puts(kv: edgekv.KVNamespace, writer: int, log: WriteLog) -> None:
    """Put distinct keys one after another until a put fails (then it was not acknowledged)."""
    for i in itertools.count():
        key = f"w{writer:02d}/{i:06d}"
        log.attempted.add(key)
        log.in_flight += 1
        try:
            result = await kv.put(key, value_for(key))
        except edgekv.KVError as exc:
            log.failures.append(exc)
            return
        finally:
            log.in_flight -= 1
        log.acknowledged[key] = result.revision


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        await asyncio.sleep(POLL_S)


async def read_back(kv: edgekv.KVNamespace, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
    """key → (value, revision) for every key of ``keys`` that exists."""
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, len(keys), limits.MAX_GET_MANY_KEYS):
        batch = list(keys[start : start + limits.MAX_GET_MANY_KEYS])
        results = await kv.get_with_metadata(batch)
        for key, result in results.items():
            if result is not None:
                found[key] = (result.value, result.info.revision)
    return found


async def stored_keys(kv: edgekv.KVNamespace) -> list[str]:
    return [listed.name async for listed in kv.list_all()]


def check_acknowledged_writes_survived(
    acknowledged: dict[str, int], stored: dict[str, tuple[str, int]], restarted: CentralProcess
) -> None:
    missing = sorted(set(acknowledged) - set(stored))
    assert not missing, (
        f"{len(missing)} of {len(acknowledged)} acknowledged writes are lost after the "
        f"restart, e.g. {missing[:5]}"
    )
    wrong_values = [key for key in acknowledged if stored[key][0] != value_for(key)]
    assert not wrong_values, f"acknowledged keys read back with wrong values: {wrong_values[:5]}"
    wrong_revisions = {
        key: (revision, stored[key][1])
        for key, revision in acknowledged.items()
        if stored[key][1] != revision
    }
    assert not wrong_revisions, (
        f"acknowledged keys read back at another revision (acked, stored): "
        f"{list(wrong_revisions.items())[:5]}"
    )
    max_acked = max(acknowledged.values())
    assert restarted.revision >= max_acked, (
        f"the restarted store is at revision {restarted.revision}, below the highest "
        f"acknowledged revision {max_acked} ({restarted.ready_line!r})"
    )


@pytest.fixture(params=["sqlite", "redis"])
def durable_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Central's storage: a SQLite file, or a Redis that outlives the killed central."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'central.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


async def test_acknowledged_writes_survive_kill_9(
    launcher: CentralLauncher, durable_storage: str
) -> None:
    # On Redis, concurrent commits share pipelines (group commit): every acknowledged
    # write must still be there, and no unacknowledged one may be half there.
    storage = durable_storage
    central = launcher.start(storage, ["--no-write-rate-limit"], name="before-kill")
    log = WriteLog()
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("crash-durability")
        kv = client.namespace(namespace.id)
        writers = [asyncio.create_task(stream_puts(kv, w, log)) for w in range(WRITERS)]
        try:
            await wait_until(
                lambda: len(log.acknowledged) >= ACKS_BEFORE_KILL or all(t.done() for t in writers),
                timeout_s=30,
                what=f"{ACKS_BEFORE_KILL} acknowledged writes",
            )
            assert not log.failures, f"writes failed before the kill: {log.failures[:3]}"
            in_flight_at_kill = log.in_flight
            acked_at_kill = len(log.acknowledged)
            central.kill()
            _, pending = await asyncio.wait(writers, timeout=10)
            assert not pending, "writers still running 10 s after the server was killed"
        finally:
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
        for task in writers:
            task.result()  # a writer that died of anything but a KVError fails the test here
    assert in_flight_at_kill > 0, "the server was killed with no write in flight"
    assert len(log.failures) == WRITERS, "every writer stops at its first failed put"
    not_unavailable = [f for f in log.failures if not isinstance(f, edgekv.UnavailableError)]
    assert not not_unavailable, (
        f"puts to a killed server should fail UNAVAILABLE: {not_unavailable}"
    )

    acknowledged = log.acknowledged
    revisions = list(acknowledged.values())
    assert len(set(revisions)) == len(revisions), "two acknowledged writes share a revision"

    restarted = launcher.start(storage, ["--no-write-rate-limit"], name="after-kill")
    async with edgekv.Client(restarted.address, timeout_s=10) as client:
        assert (await client.get_namespace(namespace.id)).title == "crash-durability"
        kv = client.namespace(namespace.id)
        listed = await stored_keys(kv)
        assert len(listed) == len(set(listed)), "list returned a key twice"
        unexpected = set(listed) - log.attempted
        assert not unexpected, f"keys nobody wrote: {sorted(unexpected)[:5]}"
        stored = await read_back(kv, listed)
        assert set(stored) == set(listed), "listed keys that cannot be read"

        check_acknowledged_writes_survived(acknowledged, stored, restarted)
        # Writes in flight at the kill may or may not have committed; those that did
        # must be whole and must not share a revision with any other write.
        assert all(value == value_for(key) for key, (value, _) in stored.items())
        stored_revisions = [revision for _, revision in stored.values()]
        assert len(set(stored_revisions)) == len(stored_revisions), "stored revisions repeat"
        assert max(stored_revisions) <= restarted.revision

        after = await kv.put("after-restart", value_for("after-restart"))
        assert after.revision > max(revisions)
        assert after.revision > restarted.revision, (
            f"first write after restart got revision {after.revision}, not above the "
            f"restarted store's revision {restarted.revision}"
        )
        assert await kv.get("after-restart") == value_for("after-restart")
    print(
        f"acked before kill: {acked_at_kill}, acked in all: {len(acknowledged)}, "
        f"in flight at kill: {in_flight_at_kill}, committed but unacknowledged: "
        f"{len(stored) - len(acknowledged)}"
    )


async def test_acknowledged_writes_survive_kill_9_of_redis_server(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    # What --durability local asks of Redis and central checks: appendonly yes,
    # appendfsync always. Redis is killed under 16 streaming writers, then restarted
    # from its files; central reconnects to it and must find every acknowledged write.
    redis = start_redis(tmp_path / "redis")
    try:
        central = launcher.start(redis.url(), ["--no-write-rate-limit"], name="central")
        assert central.fields["durability"] == "local"
        log = WriteLog()
        async with edgekv.Client(central.address, timeout_s=10) as client:
            namespace = await client.create_namespace("redis-crash")
            kv = client.namespace(namespace.id)
            writers = [asyncio.create_task(stream_puts(kv, w, log)) for w in range(WRITERS)]
            try:
                await wait_until(
                    lambda: (
                        len(log.acknowledged) >= ACKS_BEFORE_KILL or all(t.done() for t in writers)
                    ),
                    timeout_s=30,
                    what=f"{ACKS_BEFORE_KILL} acknowledged writes",
                )
                assert not log.failures, f"writes failed before the kill: {log.failures[:3]}"
                in_flight_at_kill = log.in_flight
                redis.kill()
                _, pending = await asyncio.wait(writers, timeout=20)
                assert not pending, "writers still running 20 s after Redis was killed"
            finally:
                for task in writers:
                    task.cancel()
                await asyncio.gather(*writers, return_exceptions=True)
            assert in_flight_at_kill > 0, "Redis was killed with no write in flight"
            assert all(isinstance(f, edgekv.UnavailableError) for f in log.failures)

            redis.restart()
            listed: list[str] = []
            for _ in range(3):  # the first call finds its pooled connection dead
                try:
                    listed = await stored_keys(kv)
                    break
                except edgekv.UnavailableError:
                    continue
            stored = await read_back(kv, listed)
            after = await kv.put("after-restart", value_for("after-restart"))
        assert set(listed) <= log.attempted
        assert after.revision > max(log.acknowledged.values())
        assert central.terminate() == 0
        # A central started afresh on the restarted Redis finds the same.
        restarted = launcher.start(redis.url(), name="restarted")
        check_acknowledged_writes_survived(log.acknowledged, stored, restarted)
        assert restarted.revision == after.revision
    finally:
        redis.stop()


async def test_sigterm_stops_gracefully_and_keeps_writes(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    storage = f"sqlite:{tmp_path / 'central.db'}"
    central = launcher.start(storage, name="before-stop")
    keys = [f"graceful/{i:03d}" for i in range(100)]
    async with edgekv.Client(central.address) as client:
        namespace = await client.create_namespace("graceful")
        kv = client.namespace(namespace.id)
        results = await asyncio.gather(*(kv.put(key, value_for(key)) for key in keys))
    acknowledged = {key: result.revision for key, result in zip(keys, results, strict=True)}

    started = time.monotonic()
    code = central.terminate(timeout_s=5)
    elapsed = time.monotonic() - started
    assert code == 0, f"SIGTERM should exit 0, got {code}; stderr:\n{central.stderr()}"
    assert elapsed < 5
    assert "Traceback" not in central.stderr(), central.stderr()

    restarted = launcher.start(storage, name="after-stop")
    async with edgekv.Client(restarted.address) as client:
        stored = await read_back(client.namespace(namespace.id), keys)
    check_acknowledged_writes_survived(acknowledged, stored, restarted)


async def test_sigterm_with_writes_in_flight_keeps_every_acknowledged_write(
    launcher: CentralLauncher, tmp_path: Path
) -> None:
    storage = f"sqlite:{tmp_path / 'central.db'}"
    central = launcher.start(storage, ["--no-write-rate-limit"], name="before-stop")
    log = WriteLog()
    async with edgekv.Client(central.address, timeout_s=10) as client:
        namespace = await client.create_namespace("graceful-in-flight")
        kv = client.namespace(namespace.id)
        writers = [asyncio.create_task(stream_puts(kv, w, log)) for w in range(WRITERS)]
        try:
            await wait_until(
                lambda: len(log.acknowledged) >= 100 or all(t.done() for t in writers),
                timeout_s=30,
                what="100 acknowledged writes",
            )
            assert not log.failures, f"writes failed before the stop: {log.failures[:3]}"
            # Stop from a thread so the client keeps reading answers meanwhile.
            code = await asyncio.to_thread(central.terminate, 15)
            _, pending = await asyncio.wait(writers, timeout=10)
            assert not pending, "writers still running 10 s after the server stopped"
        finally:
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
        for task in writers:
            task.result()
    assert code == 0, f"SIGTERM should exit 0, got {code}; stderr:\n{central.stderr()}"
    assert "Traceback" not in central.stderr(), central.stderr()

    restarted = launcher.start(storage, name="after-stop")
    async with edgekv.Client(restarted.address) as client:
        stored = await read_back(client.namespace(namespace.id), sorted(log.attempted))
    check_acknowledged_writes_survived(log.acknowledged, stored, restarted)


@pytest.mark.parametrize(
    "storage",
    [
        pytest.param("bogus:x", id="unknown-scheme"),
        pytest.param("redis://127.0.0.1:1/0", id="unreachable-redis"),
        pytest.param("sqlite:{tmp}/missing/central.db", id="sqlite-missing-folder"),
    ],
)
def test_bad_storage_exits_with_one_line_error(storage: str, tmp_path: Path) -> None:
    storage = storage.format(tmp=tmp_path)
    ended = run_central_to_exit(storage, tmp_path / "logs", timeout_s=30)
    assert ended.returncode != 0, f"exit code 0 for --storage {storage}"
    assert "ready" not in ended.stdout, ended.stdout
    assert "Traceback" not in ended.stderr, (
        f"--storage {storage} should end with one 'edgekv: error:' line, not a traceback; "
        f"stderr:\n{ended.stderr}"
    )
    lines = ended.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{ended.stderr}"
    assert lines[0].startswith("edgekv: error: "), lines[0]


def test_listen_on_a_port_in_use_is_refused(launcher: CentralLauncher) -> None:
    first = launcher.start("memory:", name="first")
    try:
        second = launcher.start("memory:", ["--listen", first.address], name="second")
    except CentralStartError:
        second = launcher.started[-1]
    else:
        pytest.fail(
            f"a second central started on {second.address}, the port the first one serves "
            "(gRPC sets SO_REUSEPORT by default, so the kernel would split clients between "
            "two stores); it should exit with 'edgekv: error: cannot listen on ...'. "
            "Fix: pass ('grpc.so_reuseport', 0) to grpc.aio.server in edgekv/serving.py"
        )
    stderr = second.stderr()
    assert second.process.returncode != 0
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("edgekv: error: ")]
    assert len(errors) == 1, stderr
    assert first.running


async def check_probes(address: str) -> list[str]:
    """Assert health says SERVING (overall and for CentralStore); return reflected services."""
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, (address, service)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = [
            service.name
            async for response in call
            for service in response.list_services_response.service
        ]
    return names


async def test_two_servers_on_port_0_are_healthy_and_reflect(launcher: CentralLauncher) -> None:
    first = launcher.start("memory:", name="first")
    second = launcher.start("memory:", name="second")
    assert first.address != second.address
    for central in (first, second):
        services = await check_probes(central.address)
        assert SERVICE in services, services
        assert "grpc.health.v1.Health" in services, services
    assert first.terminate() == 0
    assert second.terminate() == 0
