"""A Redis primary, its replica and three Sentinels for tests: all real ``redis-server``
processes, on free loopback ports, in one temp dir.

Theory of operation: :func:`start_sentinel_group` starts the primary and the
replica (``replicaof``) with :func:`~tests.support.redis_server.start_redis`,
both keeping every acknowledged write on disk (``appendonly yes``,
``appendfsync always``) and with ``repl-diskless-sync-delay 0``, so that a
(re)sync starts at once instead of 5 s later. Then three Sentinels
(``redis-server sentinel.conf --sentinel``, each with a config file of its
own, since Sentinel rewrites it) monitor the primary as :data:`MASTER_NAME`
with quorum 2, ``down-after-milliseconds`` 1000 and a short
``failover-timeout``. The start returns once every Sentinel knows the replica
and both other Sentinels: before that a failover could not be agreed on.

:meth:`SentinelGroup.url` is central's ``--storage``;
:meth:`~SentinelGroup.primary_port` asks a Sentinel where the primary is, and
:meth:`~SentinelGroup.wait_for_promotion` waits for it to move. Use the group
as a context manager: it stops every process, killed or not, at the end.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

from edgekv.process import Child, spawn
from tests.support.redis_server import RedisServer, free_port, require_redis_binary, start_redis

MASTER_NAME = "mymaster"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
# A (re)sync starts at once: Redis otherwise waits 5 s for more replicas to share it.
REPLICATION = ("--repl-diskless-sync-delay", "0")
START_TIMEOUT_S = 20.0
POLL_S = 0.05


@dataclass
class SentinelGroup:
    primary: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]
    sentinels: list[Child] = field(default_factory=list)
    # The Redis servers' password (requirepass, and masterauth for the replica's link).
    password: str | None = None

    def url(self, master_name: str = MASTER_NAME, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{master_name}/{db}"

    def servers(self) -> list[RedisServer]:
        return [self.primary, self.replica]

    def server_on(self, port: int) -> RedisServer:
        [server] = [server for server in self.servers() if server.port == port]
        return server

    def primary_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers has it, or None."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as sentinel:
                    found = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if found:
                return int(found[1])
        return None

    def wait_for_promotion(self, old_port: int, timeout_s: float = 30.0) -> int:
        """Wait until the Sentinels name another primary than ``old_port``; its port."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port is not None and port != old_port:
                return port
            time.sleep(POLL_S)
        raise AssertionError(f"the Sentinels did not promote a replica in {timeout_s:g} s")

    def rejoin(self, server: RedisServer, primary_port: int) -> None:
        """Start a killed server again, from its files, as a replica of ``primary_port``.

        As a supervisor whose start script asks Sentinel where the primary is would
        (container charts for Redis do): started as it was, a primary, it would serve
        its old data until Sentinel turned it into a replica, 8 s later at the earliest.
        """
        replicaof = ("--replicaof", "127.0.0.1", str(primary_port))
        server.extra_args = (*REPLICATION, *_auth(self.password), *replicaof)
        server.restart()

    @staticmethod
    def freeze(server: RedisServer) -> None:
        """SIGSTOP: the server answers nobody, its primary and Sentinel included."""
        server.process.popen.send_signal(signal.SIGSTOP)

    @staticmethod
    def thaw(server: RedisServer) -> None:
        server.process.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for child in self.sentinels:
            child.stop()
        for server in self.servers():
            self.thaw(server)  # a stopped process would not see the SIGTERM until then
            server.stop()

    def __enter__(self) -> SentinelGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_sentinel_group(data_dir: Path, password: str | None = None) -> SentinelGroup:
    """A primary, a replica of it and three Sentinels watching them, ready to fail over;
    with ``password``, the Redis servers require it (the Sentinels do not)."""
    primary = start_redis(data_dir / "primary", (*REPLICATION, *_auth(password)))
    group = SentinelGroup(primary, primary, [], password=password)
    try:
        replicaof = ("--replicaof", "127.0.0.1", str(primary.port))
        extra = (*REPLICATION, *_auth(password), *replicaof)
        group.replica = start_redis(data_dir / "replica", extra)
        for index in range(3):
            port, child = _start_sentinel(data_dir / f"sentinel-{index}", primary.port, password)
            group.sentinel_ports.append(port)
            group.sentinels.append(child)
        _wait_until_ready(group)
    except BaseException:
        group.stop()
        raise
    return group


def _auth(password: str | None) -> tuple[str, ...]:
    return () if password is None else ("--requirepass", password, "--masterauth", password)


def _start_sentinel(data_dir: Path, primary_port: int, password: str | None) -> tuple[int, Child]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = data_dir / "sentinel.conf"
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        "protected-mode no\n"
        f"dir {data_dir}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} {QUORUM}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        + ("" if password is None else f"sentinel auth-pass {MASTER_NAME} {password}\n")
    )
    argv = [require_redis_binary(), str(config), "--sentinel"]
    return port, spawn(argv, data_dir / "sentinel.log")


def _sentinel_views(group: SentinelGroup) -> Iterator[tuple[int, int]]:
    """(replicas, other Sentinels) as each Sentinel knows them."""
    for port in group.sentinel_ports:
        try:
            with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as sentinel:
                state = sentinel.sentinel_master(MASTER_NAME)
        except redis.RedisError:
            yield 0, 0
            continue
        yield int(state["num-slaves"]), int(state["num-other-sentinels"])


def _replica_online(primary: RedisServer, password: str | None) -> bool:
    with redis.Redis(port=primary.port, password=password, socket_timeout=1) as client:
        info = client.info("replication")
    return any(
        isinstance(value, dict) and value.get("state") == "online"
        for name, value in info.items()
        if name.startswith("slave")
    )


def _wait_until_ready(group: SentinelGroup) -> None:
    """Until the replica is in sync and every Sentinel knows it and both other Sentinels."""
    deadline = time.monotonic() + START_TIMEOUT_S
    views: list[tuple[int, int]] = []
    while time.monotonic() < deadline:
        views = list(_sentinel_views(group))
        sentinels_ready = all(replicas >= 1 and others == 2 for replicas, others in views)
        if sentinels_ready and _replica_online(group.primary, group.password):
            return
        time.sleep(POLL_S)
    raise RuntimeError(
        f"the replica did not sync, or the Sentinels did not find it and each other, in "
        f"{START_TIMEOUT_S:g} s ((replicas, other Sentinels) as each sees them: {views})"
    )
