"""A central store and an API node on real sockets, with accounts and tokens to call them.

Central runs in-process on 127.0.0.1:0 over SQLite (a real file) with a
:class:`ManualClock`; the API node (aiohttp) in the same event loop on port 0.
Two accounts: ``A`` with a read-write and a read-only token, ``B`` with one
read-write token. Clients are the real ``cloudflare`` SDK (async) and a bare
aiohttp session for what an SDK would never send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cloudflare import AsyncCloudflare

import edgekv
from api.server import ApiServer
from central.server import CentralServer, start_central
from central.service import CentralSettings
from edgekv.clock import ManualClock

ACCOUNT_A = "a" * 32
ACCOUNT_B = "b" * 32


@dataclass
class Rest:
    central: CentralServer
    clock: ManualClock
    api: ApiServer
    admin: edgekv.Client
    base_url: str
    token_a: str
    token_a_read_only: str
    token_b: str
    http: aiohttp.ClientSession

    def sdk(self, token: str | None = None) -> AsyncCloudflare:
        """The real SDK, without its retries (so that a test sees the first answer)."""
        return AsyncCloudflare(
            api_token=token or self.token_a, base_url=self.base_url, max_retries=0
        )

    def url(self, path: str, account: str = ACCOUNT_A) -> str:
        return f"{self.base_url}/accounts/{account}/storage/kv/namespaces{path}"

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token_a}"}


async def start_rest(tmp_path: Path, **settings: object) -> Rest:
    clock = ManualClock()
    central = await start_central(
        "127.0.0.1:0",
        f"sqlite:{tmp_path / 'central.db'}",
        clock,
        CentralSettings(**settings),  # type: ignore[arg-type]
    )
    api = ApiServer(central.address)
    port = await api.start("127.0.0.1:0")
    admin = edgekv.Client(central=central.address)
    token_a, _ = await admin.create_token(ACCOUNT_A)
    token_a_read_only, _ = await admin.create_token(ACCOUNT_A, read_only=True)
    token_b, _ = await admin.create_token(ACCOUNT_B)
    return Rest(
        central,
        clock,
        api,
        admin,
        f"http://127.0.0.1:{port}/client/v4",
        token_a,
        token_a_read_only,
        token_b,
        aiohttp.ClientSession(),
    )


async def stop_rest(rest: Rest) -> None:
    await rest.http.close()
    await rest.admin.close()
    await rest.api.stop()
    await rest.central.stop(grace_s=0)


@pytest.fixture
async def rest(tmp_path: Path) -> AsyncIterator[Rest]:
    started = await start_rest(tmp_path, write_rate_limit=False)
    yield started
    await stop_rest(started)
