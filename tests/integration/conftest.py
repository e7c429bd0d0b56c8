"""Fixtures for integration tests: a real central store on a real socket.

``central`` runs in-process (same event loop as the test) on 127.0.0.1:0 over
each storage back-end, with a :class:`ManualClock`, so tests move time instead
of waiting for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import edgekv
from central.server import CentralServer, start_central
from central.service import CentralSettings
from edgekv.clock import ManualClock


@dataclass
class Central:
    server: CentralServer
    clock: ManualClock
    client: edgekv.Client

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def revision(self) -> int:
        return self.server.storage.revision


StartCentral = Callable[..., Awaitable[Central]]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory:"
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'central.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def start_central_at(storage_url: str) -> AsyncIterator[StartCentral]:
    started: list[Central] = []

    async def start(**options: object) -> Central:
        clock = ManualClock()
        settings = CentralSettings(**options)  # type: ignore[arg-type]
        server = await start_central("127.0.0.1:0", storage_url, clock, settings)
        central = Central(server, clock, edgekv.Client(central=server.address))
        started.append(central)
        return central

    yield start
    for central in started:
        await central.client.close()
        await central.server.stop(grace_s=0)


@pytest.fixture
async def central(start_central_at: StartCentral) -> Central:
    return await start_central_at()


@pytest.fixture
async def kv(central: Central) -> edgekv.KVNamespace:
    namespace = await central.client.create_namespace("test-MY_KV")
    return central.client.namespace(namespace.id)
