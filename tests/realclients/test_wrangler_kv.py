"""Real wrangler (4.86.0, pinned) against the API node: every KV command a developer runs.

Central (SQLite, real socket), the API node and an edge run in the test's event
loop; wrangler is a child process (``--remote`` on every key and bulk command,
as wrangler 4 needs). Values written by wrangler are read through the edge by
``edgekv.Client``, and the other way round.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import edgekv
from edge.server import EdgeConfig, EdgeServer, start_edge
from edgekv.core import limits
from tests.integration.rest_api.conftest import ACCOUNT_A, ACCOUNT_B, Rest, start_rest, stop_rest
from tests.realclients.wrangler import MakeWrangler, Wrangler

pytestmark = pytest.mark.slow  # each test runs wrangler, ~1 s a command

ENCODED_KEYS = ["a/b c?d#e%f", "a:b+c d", "ключ/🔑 ü"]


@pytest.fixture
async def rest(tmp_path: Path) -> AsyncIterator[Rest]:
    started = await start_rest(tmp_path, write_rate_limit=False)
    yield started
    await stop_rest(started)


@pytest.fixture
async def edge(rest: Rest) -> AsyncIterator[EdgeServer]:
    server = await start_edge(EdgeConfig(central=rest.central.address, region="eu"), rest.clock)
    yield server
    await server.stop(grace_s=0)


@pytest.fixture
def wrangler(rest: Rest, make_wrangler: MakeWrangler) -> Wrangler:
    return make_wrangler(rest.base_url, token=rest.token_a, account_id=ACCOUNT_A)


async def _namespaces(wrangler: Wrangler) -> list[dict[str, object]]:
    listed = await wrangler.run("kv", "namespace", "list")
    namespaces: list[dict[str, object]] = json.loads(listed.stdout)
    return namespaces


async def _namespace_id(wrangler: Wrangler, title: str) -> str:
    await wrangler.run("kv", "namespace", "create", title)
    [found] = [ns for ns in await _namespaces(wrangler) if ns["title"] == title]
    return str(found["id"])


async def _keys(wrangler: Wrangler, namespace_id: str, *args: str) -> list[dict[str, object]]:
    listed = await wrangler.run(
        "kv", "key", "list", f"--namespace-id={namespace_id}", "--remote", *args
    )
    keys: list[dict[str, object]] = json.loads(listed.stdout)
    return keys


async def test_namespace_commands(wrangler: Wrangler) -> None:
    created = await wrangler.run("kv", "namespace", "create", "first")
    assert b"Success" in created.stdout
    duplicate = await wrangler.run("kv", "namespace", "create", "first", check=False)
    assert duplicate.returncode == 1
    assert b"already exists" in duplicate.stdout + duplicate.stderr
    [first] = await _namespaces(wrangler)
    assert first["title"] == "first"
    renamed = await wrangler.run("kv", "namespace", "rename", "first", "--new-name", "second")
    assert b"second" in renamed.stdout
    assert [ns["title"] for ns in await _namespaces(wrangler)] == ["second"]
    await wrangler.run("kv", "namespace", "delete", "second", "-y")
    assert await _namespaces(wrangler) == []
    other = await _namespace_id(wrangler, "third")
    await wrangler.run("kv", "namespace", "delete", f"--namespace-id={other}", "-y")
    assert await _namespaces(wrangler) == []


async def test_key_put_get_list_delete_with_every_body_form(
    wrangler: Wrangler, rest: Rest, tmp_path: Path
) -> None:
    ns = await _namespace_id(wrangler, "keys")
    flag = f"--namespace-id={ns}"
    await wrangler.run("kv", "key", "put", flag, "plain", "hello", "--remote")
    binary = bytes(range(256)) * 4
    (tmp_path / "value.bin").write_bytes(binary)
    await wrangler.run(
        "kv", "key", "put", flag, "file", "--path", str(tmp_path / "value.bin"), "--remote"
    )
    await wrangler.run("kv", "key", "put", flag, "ttl", "t", "--ttl", "120", "--remote")
    at = int(rest.clock.now()) + 3600
    await wrangler.run("kv", "key", "put", flag, "at", "a", "--expiration", str(at), "--remote")
    await wrangler.run(
        "kv", "key", "put", flag, "meta", "m", "--metadata", '{"a":1}', "--ttl", "120", "--remote"
    )  # fmt: skip
    got = await wrangler.run("kv", "key", "get", flag, "plain", "--remote")
    assert got.stdout == b"hello"
    got = await wrangler.run("kv", "key", "get", flag, "file", "--remote")
    assert got.stdout == binary
    keys = {str(key["name"]): key for key in await _keys(wrangler, ns)}
    assert sorted(keys) == ["at", "file", "meta", "plain", "ttl"]
    assert keys["at"]["expiration"] == at
    assert keys["ttl"]["expiration"] == int(rest.clock.now()) + 120
    assert keys["meta"]["metadata"] == {"a": 1}
    assert [k["name"] for k in await _keys(wrangler, ns, "--prefix", "p")] == ["plain"]
    await wrangler.run("kv", "key", "delete", flag, "plain", "--remote")
    missing = await wrangler.run("kv", "key", "get", flag, "plain", "--remote", check=False)
    assert missing.returncode == 1 and b"404: Not Found" in missing.stdout + missing.stderr


@pytest.mark.parametrize("key", [*ENCODED_KEYS, "k" * limits.MAX_KEY_BYTES])
async def test_keys_that_need_encoding(wrangler: Wrangler, rest: Rest, key: str) -> None:
    ns = await _namespace_id(wrangler, "encoded")
    flag = f"--namespace-id={ns}"
    await wrangler.run("kv", "key", "put", flag, key, "v", "--remote")
    assert (await wrangler.run("kv", "key", "get", flag, key, "--remote")).stdout == b"v"
    assert [k["name"] for k in await _keys(wrangler, ns)] == [key]
    assert await rest.admin.namespace(ns).get(key) == "v"


async def test_a_key_over_512_bytes_and_the_key_dot_dot_are_refused(
    wrangler: Wrangler, rest: Rest
) -> None:
    ns = await _namespace_id(wrangler, "refusals")
    flag = f"--namespace-id={ns}"
    long = await wrangler.run("kv", "key", "put", flag, "k" * 513, "v", "--remote", check=False)
    assert long.returncode == 1
    assert b"exceeds key length limit of 512" in long.stdout + long.stderr
    dots = await wrangler.run(
        "kv", "key", "put", flag, "..", '{"title":"x"}', "--remote", check=False
    )
    assert dots.returncode == 1
    assert await _keys(wrangler, ns) == []
    assert [ns_["title"] for ns_ in await _namespaces(wrangler)] == ["refusals"]  # not renamed


async def test_bulk_put_get_delete_and_2500_keys_paged(
    wrangler: Wrangler, rest: Rest, tmp_path: Path
) -> None:
    ns = await _namespace_id(wrangler, "bulk")
    flag = f"--namespace-id={ns}"
    items = [{"key": f"key-{i:05d}", "value": f"v{i}"} for i in range(2500)]
    items[0] |= {"metadata": {"first": True}, "expiration_ttl": 600}
    items[1] |= {"value": "aGVsbG8=", "base64": True}
    (tmp_path / "put.json").write_text(json.dumps(items))
    await wrangler.run("kv", "bulk", "put", flag, str(tmp_path / "put.json"), "--remote")
    keys = await _keys(wrangler, ns)  # three pages of at most 1,000, followed by the cursor
    assert [k["name"] for k in keys] == [item["key"] for item in items]
    assert keys[0]["metadata"] == {"first": True}
    assert await rest.admin.namespace(ns).get("key-00001") == "hello"
    (tmp_path / "get.json").write_text(json.dumps(["key-00002", "nope"]))
    got = await wrangler.run("kv", "bulk", "get", flag, str(tmp_path / "get.json"), "--remote")
    assert b'"key-00002"' in got.stdout and b"v2" in got.stdout
    (tmp_path / "delete.json").write_text(json.dumps([item["key"] for item in items[:2000]]))
    await wrangler.run(
        "kv", "bulk", "delete", flag, str(tmp_path / "delete.json"), "--remote", "--force"
    )  # fmt: skip
    assert len(await _keys(wrangler, ns)) == 500


async def test_a_value_crosses_between_wrangler_and_the_edge(
    wrangler: Wrangler, rest: Rest, edge: EdgeServer
) -> None:
    ns = await _namespace_id(wrangler, "crossing")
    flag = f"--namespace-id={ns}"
    await wrangler.run("kv", "key", "put", flag, "from-wrangler", "w-value", "--remote")
    client = edgekv.Client(edge=edge.address, central=rest.central.address, token=rest.token_a)
    try:
        assert await client.namespace(ns).get("from-wrangler") == "w-value"
        await client.namespace(ns).put("from-edge", "e-value")
    finally:
        await client.close()
    got = await wrangler.run("kv", "key", "get", flag, "from-edge", "--remote")
    assert got.stdout == b"e-value"


async def test_tokens_bad_read_only_and_of_another_account(
    rest: Rest, make_wrangler: MakeWrangler, wrangler: Wrangler
) -> None:
    ns = await _namespace_id(wrangler, "guarded")
    flag = f"--namespace-id={ns}"
    await wrangler.run("kv", "key", "put", flag, "k", "v", "--remote")
    bad = make_wrangler(rest.base_url, token="forged", account_id=ACCOUNT_A)
    refused = await bad.run("kv", "namespace", "list", check=False)
    assert refused.returncode == 1 and b"Authentication error" in refused.stdout + refused.stderr
    reader = make_wrangler(rest.base_url, token=rest.token_a_read_only, account_id=ACCOUNT_A)
    assert (await reader.run("kv", "key", "get", flag, "k", "--remote")).stdout == b"v"
    denied = await reader.run("kv", "key", "put", flag, "k", "w", "--remote", check=False)
    assert denied.returncode == 1 and b"read-only" in denied.stdout + denied.stderr
    other = make_wrangler(rest.base_url, token=rest.token_b, account_id=ACCOUNT_B)
    assert await _namespaces(other) == []  # none of A's listed
    unseen = await other.run("kv", "key", "get", flag, "k", "--remote", check=False)
    assert unseen.returncode == 1 and b"404" in unseen.stdout + unseen.stderr
    gone = await other.run("kv", "namespace", "delete", flag, "-y", check=False)
    assert gone.returncode == 1
    assert (await wrangler.run("kv", "key", "get", flag, "k", "--remote")).stdout == b"v"


async def test_without_an_account_id_wrangler_finds_the_tokens_account(
    rest: Rest, make_wrangler: MakeWrangler
) -> None:
    await rest.sdk(rest.token_b).kv.namespaces.create(account_id=ACCOUNT_B, title="of-b")
    anywhere = make_wrangler(rest.base_url, token=rest.token_b, account_id="")
    assert [ns["title"] for ns in await _namespaces(anywhere)] == ["of-b"]
