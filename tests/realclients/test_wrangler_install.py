"""wrangler itself, before edgekv's REST API: it installs, runs, and asks what we expect.

The API here is a stand-in, an aiohttp server in the test's own event loop that
records each request and answers every one with an empty list, so these tests
prove the runner (the install, the environment, the async run beside a server
in the same loop) and pin what wrangler 4.86.0 sends for ``kv namespace list``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.realclients.wrangler import (
    TEST_ACCOUNT_ID,
    TEST_TOKEN,
    WRANGLER_VERSION,
    MakeWrangler,
    Wrangler,
    WranglerBin,
    WranglerFailed,
    WranglerTimedOut,
)

Answer = tuple[int, object]  # status, JSON body


def page(*result: object) -> Answer:
    return 200, {"success": True, "errors": [], "messages": [], "result": list(result)}


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    authorization: str | None


@dataclass
class StandIn:
    base_url: str
    requests: list[Recorded] = field(default_factory=list)
    answer: Callable[[web.Request], Answer] = lambda _request: page()
    slow_answer: Callable[[web.Request], Awaitable[Answer]] | None = None  # wins over answer


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    """An API on 127.0.0.1 that records each request; ``answer`` answers it (empty list)."""
    server = StandIn(base_url="")

    async def handle(request: web.Request) -> web.Response:
        server.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                authorization=request.headers.get("Authorization"),
            )
        )
        if server.slow_answer is not None:
            status, body = await server.slow_answer(request)
        else:
            status, body = server.answer(request)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}/client/v4"
    try:
        yield server
    finally:
        await runner.cleanup()


def test_wrangler_is_the_pinned_version(make_wrangler: MakeWrangler) -> None:
    wrangler = make_wrangler("http://127.0.0.1:9/client/v4")  # never asked
    done = wrangler.run_blocking("--version", timeout_s=60)
    assert done.stdout.decode().strip() == WRANGLER_VERSION


async def test_kv_namespace_list_asks_the_api_we_give_it(
    make_wrangler: MakeWrangler, stand_in: StandIn
) -> None:
    wrangler = make_wrangler(stand_in.base_url)
    done = await wrangler.run("kv", "namespace", "list")
    assert json.loads(done.stdout) == []
    # The SDK asks for the next page until one is empty: here the first.
    assert stand_in.requests == [
        Recorded(
            method="GET",
            path=f"/client/v4/accounts/{TEST_ACCOUNT_ID}/storage/kv/namespaces",
            query=[("per_page", "1000"), ("order", "title"), ("direction", "asc")],
            authorization=f"Bearer {TEST_TOKEN}",
        )
    ]


async def test_kv_namespace_list_pages_until_an_empty_page(
    make_wrangler: MakeWrangler, stand_in: StandIn
) -> None:
    namespace = {
        "id": "0f2ac74b498b48028cb68387c421e279",
        "title": "one",
        "supports_url_encoding": True,
    }
    stand_in.answer = lambda request: page(namespace) if "page" not in request.query else page()
    done = await make_wrangler(stand_in.base_url).run("kv", "namespace", "list")
    assert json.loads(done.stdout) == [namespace]
    queries = [r.query for r in stand_in.requests]
    first = [("per_page", "1000"), ("order", "title"), ("direction", "asc")]
    assert queries == [first, [*first, ("page", "2")]]


async def test_an_api_error_fails_the_run_with_what_wrangler_printed(
    make_wrangler: MakeWrangler, stand_in: StandIn
) -> None:
    error = {"code": 10000, "message": "Authentication error"}
    refused = {"success": False, "errors": [error], "messages": [], "result": None}
    stand_in.answer = lambda _request: (403, refused)
    wrangler = make_wrangler(stand_in.base_url, token="wrong")
    with pytest.raises(WranglerFailed) as failed:
        await wrangler.run("kv", "namespace", "list")
    assert failed.value.returncode != 0
    assert "Authentication error [code: 10000]" in str(failed.value)
    assert [r.authorization for r in stand_in.requests] == ["Bearer wrong"]
    done = await wrangler.run("kv", "namespace", "list", check=False)
    assert done.returncode == failed.value.returncode


def test_the_environment_is_the_runners_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "http_proxy", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL"):
        monkeypatch.setenv(name, "from-the-developer")
    cli = WranglerBin(node=Path("/opt/node/bin/node"), script=Path("/opt/wrangler.js"))
    wrangler = Wrangler(cli, "http://127.0.0.1:1/client/v4", "t", "a", tmp_path / "w")
    env = wrangler.env()
    assert not {name for name in env if "proxy" in name.lower()}
    assert "CLOUDFLARE_API_KEY" not in env and "CLOUDFLARE_EMAIL" not in env
    assert env["PATH"].split(":")[0] == "/opt/node/bin"
    assert env["HOME"] == str(tmp_path / "w" / "home")
    assert env["XDG_CONFIG_HOME"].startswith(env["HOME"])
    assert (tmp_path / "w" / "home" / ".config").is_dir()
    assert env["CI"] == "true"
    assert env["CLOUDFLARE_API_BASE_URL"] == "http://127.0.0.1:1/client/v4"
    assert env["CLOUDFLARE_API_TOKEN"] == "t" and env["CLOUDFLARE_ACCOUNT_ID"] == "a"
    assert env["WRANGLER_SEND_METRICS"] == env["WRANGLER_SEND_ERROR_REPORTS"] == "false"


async def test_a_command_past_its_timeout_is_killed(
    make_wrangler: MakeWrangler, stand_in: StandIn
) -> None:
    never = asyncio.Event()

    async def hang(_request: web.Request) -> Answer:
        await never.wait()
        return page()

    stand_in.slow_answer = hang
    wrangler = make_wrangler(stand_in.base_url)
    started = time.monotonic()
    try:
        with pytest.raises(WranglerTimedOut):
            await wrangler.run("kv", "namespace", "list", timeout_s=3)
    finally:
        never.set()  # else the server's cleanup waits a minute for the handler
    assert time.monotonic() - started < 10
    assert len(stand_in.requests) == 1
