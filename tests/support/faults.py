"""A workload through edges that records everything, and the checks a fault must pass.

Theory of operation: :class:`Workload` runs writers and readers through one
or more edges, on keys of one namespace, until told to stop. Each writer
writes values no one else writes (``w3-17``), so a value read back says who
wrote it and when. The :class:`History` keeps every value attempted, every
write acknowledged with its revision, every read with its cache status and
age, and every error by kind. After a fault (a process killed, stopped, a
disk filled) and its repair, :func:`check` asks what a store must never do:

* lose an acknowledged write — central's revision of each key is at least the
  highest revision a writer saw acknowledged for it;
* invent a value — every value read anywhere was written by someone;
* serve STALE past its bound — a STALE copy's age is within cacheTtl plus the
  edge's maximum staleness.

:func:`recovery_s` says how long after the repair the first write was
acknowledged again.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import edgekv
from edgekv.client import RetryPolicy

CALL_TIMEOUT_S = 3.0


@dataclass
class Read:
    key: str
    value: str | None
    cache_status: str | None
    age_s: float
    at_s: float


@dataclass
class History:
    attempted: set[str] = field(default_factory=set)
    # key -> highest acknowledged revision, and the value written then
    acknowledged: dict[str, tuple[int, str]] = field(default_factory=dict)
    acked_at_s: list[float] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def acknowledge(self, key: str, revision: int, value: str, at_s: float) -> None:
        held = self.acknowledged.get(key)
        if held is None or revision > held[0]:
            self.acknowledged[key] = (revision, value)
        self.acked_at_s.append(at_s)


class Workload:
    def __init__(self, edges: list[str], namespace_id: str, keys: int = 40, seed: int = 1) -> None:
        self.edges = edges
        self.namespace_id = namespace_id
        self.keys = [f"k{index}" for index in range(keys)]
        self.history = History()
        self.rng = random.Random(seed)
        self.began = time.monotonic()

    def now_s(self) -> float:
        return time.monotonic() - self.began

    async def run(self, stop: asyncio.Event, writers: int = 4, readers: int = 4) -> None:
        clients = [
            edgekv.Client(edge=address, retry=RetryPolicy.NONE, timeout_s=CALL_TIMEOUT_S)
            for address in self.edges
        ]
        try:
            await asyncio.gather(
                *(self._writer(n, clients[n % len(clients)], stop) for n in range(writers)),
                *(self._reader(clients[n % len(clients)], stop) for n in range(readers)),
            )
        finally:
            for client in clients:
                await client.close()

    async def _writer(self, number: int, client: edgekv.Client, stop: asyncio.Event) -> None:
        kv = client.namespace(self.namespace_id)
        for sequence in itertools.count():
            if stop.is_set():
                return
            key = self.rng.choice(self.keys)
            value = f"w{number}-{sequence}"
            self.history.attempted.add(value)
            try:
                written = await kv.put(key, value)
            except edgekv.KVError as exc:
                self.history.errors[f"put {exc.kind.name}"] += 1
                await asyncio.sleep(0.02)
            else:
                self.history.acknowledge(key, written.revision, value, self.now_s())
            await asyncio.sleep(0.005)

    async def _reader(self, client: edgekv.Client, stop: asyncio.Event) -> None:
        kv = client.namespace(self.namespace_id)
        while not stop.is_set():
            key = self.rng.choice(self.keys)
            try:
                read = await kv.get_with_metadata(key, cache_ttl=30)
            except edgekv.KVError as exc:
                self.history.errors[f"get {exc.kind.name}"] += 1
                await asyncio.sleep(0.02)
            else:
                self.history.reads.append(
                    Read(key, read.value, read.cache_status, read.info.age_s, self.now_s())
                )
            await asyncio.sleep(0.005)


async def central_revisions(central: str, namespace_id: str, keys: list[str]) -> dict[str, int]:
    async with edgekv.Client(central=central) as client:
        found = await client.namespace(namespace_id).get_with_metadata(keys)
    return {key: 0 if read is None else read.info.revision for key, read in found.items()}


async def check(
    workload: Workload, central: str, cache_ttl_s: float = 30, max_stale_s: float = 0
) -> None:
    """Nothing acknowledged lost, nothing invented, no STALE copy past its bound."""
    history = workload.history
    assert history.acknowledged, f"no write was acknowledged at all: {history.errors}"
    held = await central_revisions(central, workload.namespace_id, workload.keys)
    lost = {
        key: (revision, held[key])
        for key, (revision, _) in history.acknowledged.items()
        if held[key] < revision
    }
    assert not lost, f"acknowledged writes lost (key: acknowledged, held): {lost}"
    known = history.attempted | {"seed"}
    invented = [
        read for read in history.reads if read.value is not None and read.value not in known
    ]
    assert not invented, f"values no one wrote: {invented[:5]}"
    too_stale = [
        read
        for read in history.reads
        if read.cache_status == "STALE" and read.age_s > cache_ttl_s + max_stale_s + 1
    ]
    assert not too_stale, f"STALE past its bound: {too_stale[:5]}"


def recovery_s(workload: Workload, repaired_at_s: float) -> float | None:
    """Seconds from the repair to the first acknowledged write after it (None: none came)."""
    after = [at for at in workload.history.acked_at_s if at >= repaired_at_s]
    return min(after) - repaired_at_s if after else None
