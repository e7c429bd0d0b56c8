"""``--durability replicated`` on Redis: a write is acknowledged once a replica has it too.

Theory of operation:

* **What it promises, in Redis's words.** ``local`` is AOF with ``appendfsync
  always``: "fsync every time new commands are appended to the AOF. Very very
  slow, very safe" — an acknowledged write survives ``kill -9`` of Redis and a
  crash of its machine, but not the loss of that machine's disk. But "Redis
  uses by default asynchronous replication": a primary acknowledges a write
  before any replica has it, so when Sentinel promotes a replica, writes the
  old primary acknowledged may be missing from the new one. ``replicated`` is
  ``local`` (every new connection is checked as for ``local``) and, before a
  write is acknowledged, ``WAIT 1 TIMEOUT_MS``: "all the previous write
  commands sent in the context of the current connection are guaranteed to be
  received by the number of replicas returned by WAIT". That is received, in
  the replica's memory, not on its disk (Redis 7.0 has no ``WAITAOF``). And
  "WAIT does not make Redis a strongly consistent store" (the WAIT docs):
  Sentinel makes "a best-effort attempt to promote the best replica", and
  "acknowledged writes can still be lost during a failover, depending on the
  exact configuration of the Redis persistence. However with WAIT the
  probability of losing a write after a failure event is greatly reduced to
  certain hard to trigger failure modes" (the replication docs).
* **Each write waits, on its own connection.** WAIT counts the writes of the
  connection it is sent on, so it goes at the end of the very pipeline that
  carries the writes: the group commit's (:func:`queue_wait`, then
  :func:`acknowledged` fails every answer of the batch unless a replica
  acknowledged within :data:`REPLICA_ACK_TIMEOUT_MS`), and a pipeline of its
  own around each other write script (:class:`ReplicatedScript`: namespaces,
  tokens). A write no replica acknowledged in time fails STORAGE_FAILED, not
  definite: the primary applied it, and a failover may or may not keep it.
  It is never sent again (the store's NO_RETRIES).
* **The high-water mark counts acknowledged writes only.** The store raises
  its revision floor (:mod:`central.storage.redis_guard`) from a commit's
  answer only once the commit succeeded, so a batch that failed WAIT raises
  nothing, and a promoted replica without it is not a store that went back.
  At open, the floor is the revision found on the primary, so
  :func:`wait_caught_up` makes sure a replica has all of it before central
  serves.
* **At start**, before anything is written (:func:`check_can_wait`): a Redis
  that refuses ``WAIT`` (renamed away, or a replica itself) or has no replica
  is refused, in one line. Once running, a primary left without a replica (its
  replica promoted, no other yet) fails every write until one is back, rather
  than acknowledge writes with a weaker promise.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.commands.core import AsyncScript

from central.storage import redis_guard
from edgekv.core.errors import ErrorKind, error
from edgekv.redis_urls import first_line

# How many replicas must have a write before it is acknowledged.
WANTED_REPLICAS = 1
# How long a write waits for them. A replica on the same network acknowledges within
# a round trip (the primary asks it at once: REPLCONF GETACK); this bounds how long a
# write waits when none will, e.g. while Sentinel promotes one.
REPLICA_ACK_TIMEOUT_MS = 1000
# At start, how long a replica may take to catch up with the primary (a new replica's
# first sync included: Redis delays a diskless one by repl-diskless-sync-delay, 5 s).
REPLICA_CATCH_UP_TIMEOUT_S = 10.0
# How often the start polls INFO replication (a replica reports its offset each second).
_POLL_S = 0.05


class NotReplicated(redis_guard.Refused):
    """A write the primary applied but no replica acknowledged in time."""


def not_replicated(shown_url: str, answer: Any) -> NotReplicated:
    said = first_line(answer) if isinstance(answer, BaseException) else f"answered {answer}"
    detail = (
        f"no replica of Redis at {shown_url} acknowledged the write within "
        f"{REPLICA_ACK_TIMEOUT_MS} ms (WAIT {WANTED_REPLICAS} {REPLICA_ACK_TIMEOUT_MS} {said}), "
        "so central does not acknowledge it (--durability replicated); the primary may keep it "
        "or lose it"
    )
    return NotReplicated(error(ErrorKind.STORAGE_FAILED, detail=detail))


def queue_wait(pipe: Any) -> None:
    """Queue ``WAIT`` at the end of ``pipe``: it counts the writes queued before it."""
    pipe.execute_command("WAIT", WANTED_REPLICAS, REPLICA_ACK_TIMEOUT_MS)


def acknowledged(results: list[Any], shown_url: str) -> list[Any]:
    """The answers of a pipeline that ended with :func:`queue_wait`, without WAIT's own:
    each one a :class:`NotReplicated` unless enough replicas acknowledged. An error, or a
    guard's refusal (which wrote nothing), stays as it is."""
    *answers, replicas = results
    if isinstance(replicas, int) and replicas >= WANTED_REPLICAS:
        return answers
    failure = not_replicated(shown_url, replicas)
    return [
        answer if isinstance(answer, BaseException) or _went_back(answer) else failure
        for answer in answers
    ]


def _went_back(answer: Any) -> bool:
    """A guard's refusal (redis_guard.GUARD_LUA): the script wrote nothing."""
    return isinstance(answer, list) and len(answer) == 3 and answer[0] == b"went-back"


class ReplicatedScript(AsyncScript):
    """A write script that, called on its own, is acknowledged only once a replica has it.

    Called with a pipeline (the group commit), it only queues, as any script
    does: that pipeline asks WAIT itself.
    """

    def __init__(self, client: aioredis.Redis, script: str, shown_url: str) -> None:
        super().__init__(client, script)
        self._shown_url = shown_url

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if client is not None:
            return await super().__call__(keys, args, client)
        registered = cast(aioredis.Redis, self.registered_client)
        async with registered.pipeline(transaction=False) as pipe:
            await super().__call__(keys, args, pipe)  # queues; the pipeline loads the script
            queue_wait(pipe)
            results = await pipe.execute(raise_on_error=False)
        [answer] = acknowledged(list(results), self._shown_url)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def check_can_wait(client: aioredis.Redis, shown_url: str) -> None:
    """ValueError, before central writes anything, for a Redis that refuses WAIT or has
    no replica."""
    try:
        # Answers at once (no replica asked for): is WAIT there at all?
        await client.execute_command("WAIT", 0, 0)  # type: ignore[no-untyped-call]
    except redis_errors.ResponseError as exc:
        raise ValueError(
            f"Redis at {shown_url} refuses WAIT ({first_line(exc)}), so central cannot know "
            "that a replica has a write before acknowledging it: --durability replicated needs "
            "a primary that takes WAIT; use --durability local otherwise"
        ) from None
    info = await client.info("replication")
    if int(info.get("connected_slaves", 0)) < WANTED_REPLICAS:
        raise ValueError(
            f"Redis at {shown_url} has no replica (INFO replication: connected_slaves:"
            f"{info.get('connected_slaves', 0)}), so --durability replicated could acknowledge "
            "no write: start a replica of it (replicaof), or use --durability local"
        )


async def wait_caught_up(
    client: aioredis.Redis, shown_url: str, timeout_s: float = REPLICA_CATCH_UP_TIMEOUT_S
) -> None:
    """Return once a replica has everything the primary held when this was called;
    ValueError if none has within ``timeout_s``."""
    info = await client.info("replication")
    target = int(info.get("master_repl_offset", 0))
    deadline = time.monotonic() + timeout_s
    while True:
        replicas = [value for name, value in info.items() if _is_replica_entry(name, value)]
        if any(r.get("state") == "online" and int(r.get("offset", -1)) >= target for r in replicas):
            return
        if time.monotonic() >= deadline:
            found = ", ".join(
                f"{r.get('ip')}:{r.get('port')} {r.get('state')} at {r.get('offset')}"
                for r in replicas
            )
            raise ValueError(
                f"no replica of Redis at {shown_url} caught up with it within {timeout_s:g} s "
                f"(the primary is at replication offset {target}; its replicas: "
                f"{found or 'none'}), so central cannot tell which writes a failover would "
                "keep: start central once a replica is in sync, or use --durability local"
            )
        await asyncio.sleep(_POLL_S)
        info = await client.info("replication")


def _is_replica_entry(name: str, value: Any) -> bool:
    """INFO replication's ``slaveN`` lines, which redis-py parses into dicts."""
    return name.startswith("slave") and name[5:].isdigit() and isinstance(value, dict)
