"""The Python API's types against a real central and a real edge (child processes).

``edgekv.Client(central=...)`` manages namespaces; ``client.namespace(id)`` is
a :class:`edgekv.KVNamespace` used as a Worker uses its binding;
``edgekv.bindings(...)`` builds a Worker's ``env`` from a wrangler config.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import edgekv
from edgekv.locate import ClusterNotFoundError, ClusterState
from tests.integration.kv_cli.conftest import EDGE_NODE, REGION, ClusterAddresses, unique


@pytest.fixture
async def client(cluster: ClusterAddresses) -> AsyncIterator[edgekv.Client]:
    async with edgekv.Client(central=cluster.central) as client:
        yield client


@pytest.fixture
async def kv(client: edgekv.Client) -> edgekv.KVNamespace:
    namespace = await client.create_namespace(unique("api"))
    return client.namespace(namespace.id)


# -- namespaces ------------------------------------------------------------------------------


async def test_namespace_lifecycle(client: edgekv.Client) -> None:
    title = unique("lifecycle")

    created = await client.create_namespace(title)
    assert isinstance(created, edgekv.Namespace)
    assert created.title == title and len(created.id) == 32
    assert created in await client.list_namespaces()

    renamed = await client.rename_namespace(created.id, f"{title}-renamed")
    assert isinstance(renamed, edgekv.Namespace)
    assert (renamed.id, renamed.title) == (created.id, f"{title}-renamed")
    listed = {ns.id: ns.title for ns in await client.list_namespaces()}
    assert listed[created.id] == f"{title}-renamed"

    kv = client.namespace(created.id)
    assert isinstance(kv, edgekv.KVNamespace) and kv.id == created.id

    await client.delete_namespace(created.id)
    assert created.id not in {ns.id for ns in await client.list_namespaces()}
    with pytest.raises(edgekv.NotFoundError) as caught:
        await kv.get("k")
    assert "namespace not found" in caught.value.message


async def test_a_duplicate_title_is_already_exists(client: edgekv.Client) -> None:
    title = unique("dup")
    await client.create_namespace(title)

    with pytest.raises(edgekv.AlreadyExistsError) as caught:
        await client.create_namespace(title)

    assert caught.value.message == f"A KV namespace with the title {title!r} already exists."
    assert isinstance(caught.value, edgekv.KVError)


async def test_a_client_without_an_address_finds_the_running_cluster(
    cluster: ClusterAddresses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_file = tmp_path / "cluster.json"
    monkeypatch.setenv("EDGEKV_STATE_FILE", str(state_file))
    monkeypatch.delenv("EDGEKV_CENTRAL", raising=False)
    with pytest.raises(ClusterNotFoundError, match="pass central='HOST:PORT'"):
        edgekv.Client()

    ClusterState(central=cluster.central, edges={REGION: [cluster.edge]}).write(state_file)
    async with edgekv.Client() as client:
        title = unique("found")
        namespace = await client.create_namespace(title)
        assert (await client.get_namespace(namespace.id)).title == title
        await client.namespace(namespace.id).put("k", "v")
    async with edgekv.Client(region=REGION) as client:
        read = await client.namespace(namespace.id).get_with_metadata("k")
        assert (read.value, read.cache_status, read.info.region) == ("v", "MISS", REGION)
        assert (await client.get_namespace(namespace.id)).title == title, "central, too"
    with pytest.raises(ClusterNotFoundError, match="no edge in region 'mars'"):
        edgekv.Client(region="mars")


# -- get / get_with_metadata ----------------------------------------------------------------------


async def test_get_types(kv: edgekv.KVNamespace) -> None:
    await kv.put("text", "héllo")
    await kv.put("json", json.dumps({"a": [1, 2, None]}))

    assert await kv.get("text") == "héllo"
    assert await kv.get("text", type="text") == "héllo"
    assert await kv.get("json", type="json") == {"a": [1, 2, None]}
    raw = await kv.get("text", type="bytes")
    assert isinstance(raw, bytes) and raw == "héllo".encode()
    assert await kv.get("text", type="arrayBuffer") == raw, "arrayBuffer is bytes"
    for value_type in ("text", "json", "bytes", "arrayBuffer", "stream"):
        assert await kv.get("missing", type=value_type) is None


async def test_a_value_read_as_json_that_is_not_is_a_kv_error(kv: edgekv.KVNamespace) -> None:
    await kv.put("plain", "not json")
    await kv.put("nan", "NaN")
    await kv.put("binary", b"\xff\xfe")
    with pytest.raises(edgekv.InvalidRequestError) as not_json:
        await kv.get("plain", type="json")
    assert (not_json.value.kind, not_json.value.message) == (
        edgekv.ErrorKind.VALUE_NOT_JSON,
        "The value of key 'plain' is not JSON (Expecting value: line 1 column 1 (char 0)); "
        "read it as text or bytes.",
    )
    with pytest.raises(edgekv.InvalidRequestError, match="The value of key 'nan' is not JSON"):
        await kv.get("nan", type="json")
    with pytest.raises(edgekv.InvalidRequestError, match="corresponds to a non-json value"):
        await kv.get(["nan"], type="json")
    # Text is read leniently, as a Worker reads it: each bad sequence one U+FFFD.
    assert await kv.get("binary") == "\ufffd\ufffd"


async def test_get_stream_yields_the_bytes_in_chunks(kv: edgekv.KVNamespace) -> None:
    payload = bytes(range(256)) * 1000  # 256,000 bytes: several chunks
    await kv.put("big", payload)

    stream = await kv.get("big", type="stream")

    assert isinstance(stream, AsyncIterator)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1 and all(isinstance(chunk, bytes) for chunk in chunks)
    assert b"".join(chunks) == payload


async def test_an_unknown_type_is_a_type_error(kv: edgekv.KVNamespace) -> None:
    await kv.put("k", "v")
    with pytest.raises(TypeError, match=re.escape('Unknown response type. Possible types are "')):
        await kv.get("k", type="blob")  # type: ignore[call-overload]


async def test_get_of_a_list_maps_every_key_to_its_value_or_none(kv: edgekv.KVNamespace) -> None:
    await kv.put("a", "1")
    await kv.put("j", '{"x": 1}')

    assert await kv.get(["a", "missing", "j"]) == {"a": "1", "missing": None, "j": '{"x": 1}'}
    assert await kv.get(["j", "missing"], type="json") == {"j": {"x": 1}, "missing": None}
    keys = [f"k{i}" for i in range(100)]
    assert await kv.get(keys) == dict.fromkeys(keys), "100 keys is the most"

    with pytest.raises(
        edgekv.InvalidRequestError,
        match=re.escape(
            'KV GET_BULK failed: 400 "bytes" is not a valid type. Use "json" or "text"'
        ),
    ):
        await kv.get(["a"], type="bytes")
    with pytest.raises(edgekv.InvalidRequestError) as too_many:
        await kv.get([f"k{i}" for i in range(101)])
    assert too_many.value.message == (
        "KV GET_BULK failed: 400 You can request a maximum of 100 keys"
    )
    with pytest.raises(edgekv.InvalidRequestError) as empty:
        await kv.get([])
    assert empty.value.message == "KV GET_BULK failed: 400 You must request a minimum of 1 key"


async def test_get_with_metadata_at_central(kv: edgekv.KVNamespace) -> None:
    written = await kv.put("k", "v", metadata={"lang": "en"})

    result = await kv.get_with_metadata("k")

    assert isinstance(result, edgekv.ValueWithMetadata)
    assert (result.value, result.metadata, result.cache_status) == ("v", {"lang": "en"}, None)
    assert isinstance(result.info, edgekv.ReadInfo)
    assert result.info.revision == written.revision
    assert (result.info.region, result.info.node, result.info.age_s) == ("central", "central", 0)

    await kv.put("plain", "p")
    assert (await kv.get_with_metadata("plain")).metadata is None
    missing = await kv.get_with_metadata("missing")
    assert (missing.value, missing.metadata) == (None, None)


async def test_get_with_metadata_of_a_list(kv: edgekv.KVNamespace) -> None:
    await kv.put("a", '{"n": 1}', metadata={"m": 1})

    results = await kv.get_with_metadata(["a", "missing"], type="json")

    assert results.keys() == {"a", "missing"}
    assert results["missing"] is None
    found = results["a"]
    assert found is not None and (found.value, found.metadata) == ({"n": 1}, {"m": 1})


# -- put ------------------------------------------------------------------------------------------


async def test_put_accepts_every_binary_value_type(kv: edgekv.KVNamespace) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"as"
        yield b"ync"

    values: dict[str, object] = {
        "str": "text ✓",
        "bytes": b"\x00\x01",
        "bytearray": bytearray(b"array"),
        "memoryview": memoryview(b"--view--")[2:6],
        "file": io.BytesIO(b"from a file"),
        "async-iterator": parts(),
    }
    for key, value in values.items():
        await kv.put(key, value)  # type: ignore[arg-type]

    assert await kv.get(list(values)) == {
        "str": "text ✓",
        "bytes": "\x00\x01",
        "bytearray": "array",
        "memoryview": "view",
        "file": "from a file",
        "async-iterator": "async",
    }


async def test_put_of_a_binary_file_on_disk(kv: edgekv.KVNamespace, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\xff\xfe on disk")

    with path.open("rb") as file:
        await kv.put("disk", file)

    assert await kv.get("disk", type="bytes") == b"\xff\xfe on disk"


@pytest.mark.parametrize(
    "value", [5, 1.5, None, ["a"], {"a": 1}, io.StringIO("text file")], ids=repr
)
async def test_put_of_anything_else_is_a_type_error(kv: edgekv.KVNamespace, value: object) -> None:
    with pytest.raises(TypeError, match=r"KVNamespace.put\(\): value must be str, bytes, "):
        await kv.put("k", value)  # type: ignore[arg-type]

    assert await kv.get("k") is None


async def test_put_expiration_fields_and_errors(kv: edgekv.KVNamespace) -> None:
    expiration = int(time.time()) + 3600
    await kv.put("abs", "1", expiration=expiration)
    await kv.put("ttl", "2", expiration_ttl=120, metadata=[1, "two"])
    await kv.put("both", "3", expiration=expiration, expiration_ttl=600)

    page = await kv.list()
    by_name = {key.name: key for key in page.keys}
    assert by_name["abs"].expiration == expiration
    assert by_name["ttl"].metadata == [1, "two"]
    ttl_expiration = by_name["ttl"].expiration
    assert ttl_expiration is not None and abs(ttl_expiration - (time.time() + 120)) < 30
    both_expiration = by_name["both"].expiration
    assert both_expiration is not None and abs(both_expiration - (time.time() + 600)) < 30, (
        "expiration_ttl wins"
    )

    with pytest.raises(edgekv.InvalidRequestError) as ttl_error:
        await kv.put("k", "v", expiration_ttl=59)
    assert ttl_error.value.message == (
        "KV PUT failed: 400 Invalid expiration_ttl of 59. Expiration TTL must be at least 60."
    )
    with pytest.raises(edgekv.InvalidRequestError) as long_key:
        await kv.put("x" * 513, "v")
    assert long_key.value.message == (
        "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."
    )
    with pytest.raises(edgekv.InvalidRequestError) as big_metadata:
        await kv.put("k", "v", metadata={"m": "x" * 1100})
    assert big_metadata.value.message == (
        "KV PUT failed: 413 Metadata length of 1108 exceeds limit of 1024."
    )


async def test_delete_of_a_missing_key_is_fine(kv: edgekv.KVNamespace) -> None:
    await kv.put("k", "v")

    first = await kv.delete("k")
    second = await kv.delete("k")

    assert isinstance(first, edgekv.WriteResult) and isinstance(second, edgekv.WriteResult)
    assert await kv.get("k") is None


# -- list -----------------------------------------------------------------------------------------


async def test_list_pages_with_prefix_limit_and_cursor(kv: edgekv.KVNamespace) -> None:
    await kv.bulk_put([{"key": f"p:{i:02d}", "value": "v"} for i in range(25)])
    await kv.put("q", "v", metadata={"m": True})

    first = await kv.list(prefix="p:", limit=10)
    assert isinstance(first, edgekv.ListResult)
    assert [key.name for key in first.keys] == [f"p:{i:02d}" for i in range(10)]
    assert first.list_complete is False and isinstance(first.cursor, str)
    assert first.cache_status is None
    assert all(isinstance(key, edgekv.ListedKey) for key in first.keys)
    assert (first.keys[0].expiration, first.keys[0].metadata) == (None, None)

    names = [key.name for key in first.keys]
    cursor: str | None = first.cursor
    while cursor is not None:
        page = await kv.list(prefix="p:", limit=10, cursor=cursor)
        names += [key.name for key in page.keys]
        cursor = page.cursor
        assert page.list_complete is (cursor is None)
    assert names == [f"p:{i:02d}" for i in range(25)]

    everything = await kv.list()
    assert everything.list_complete is True and everything.cursor is None
    assert len(everything.keys) == 26
    assert everything.keys[-1] == edgekv.ListedKey("q", None, {"m": True})


# -- through an edge --------------------------------------------------------------------------


async def test_an_edge_client_reads_through_the_cache(
    cluster: ClusterAddresses, kv: edgekv.KVNamespace
) -> None:
    await kv.put("k", "v1", metadata={"at": "central"})

    async with edgekv.Client(edge=cluster.edge) as edge_client:
        at_edge = edge_client.namespace(kv.id)
        first = await at_edge.get_with_metadata("k")
        await kv.put("k", "v2")
        second = await at_edge.get_with_metadata("k", cache_ttl=300)
        many = await at_edge.get_with_metadata(["k", "missing"])
        listed = await at_edge.list()
        listed_again = await at_edge.list()
        await at_edge.put("written-at-edge", "w")
        assert await at_edge.get("written-at-edge") == "w", "a PoP sees its own writes"

    assert (first.value, first.metadata, first.cache_status) == ("v1", {"at": "central"}, "MISS")
    assert (first.info.region, first.info.node) == (REGION, EDGE_NODE)
    assert first.info.cache_status == "MISS"
    assert second.value == "v1" and second.cache_status == "HIT", "stale until cacheTtl ends"
    assert second.info.revision == first.info.revision and second.info.age_s >= 0
    assert many["missing"] is None and many["k"] is not None
    assert many["k"].info.region == REGION
    assert listed.cache_status in {"MISS", "HIT"} and listed_again.cache_status == "HIT"
    assert [key.name for key in listed.keys] == ["k"]
    assert await kv.get("k") == "v2"
    assert await kv.get("written-at-edge") == "w", "edge writes go through to central"


# -- bindings -----------------------------------------------------------------------------------


def test_edgekv_bindings_is_the_function_on_every_access() -> None:
    # What a user's script does: call edgekv.bindings(...) twice, or use edgekv.Bindings.
    probe = (
        "import edgekv, types\n"
        "first = edgekv.bindings\n"
        "again = edgekv.bindings\n"
        "print(type(first).__name__, type(again).__name__)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert completed.stdout.split() == ["function", "function"], (
        "edgekv/__init__.py __getattr__: importlib.import_module('edgekv.bindings') binds the "
        "SUBMODULE as the package attribute 'bindings', so only the first access of "
        "edgekv.bindings gives the function; later ones (and any after edgekv.Bindings or "
        "'import edgekv.bindings') give the module, and `await edgekv.bindings(...)` raises "
        "TypeError: 'module' object is not callable. Got (first, again) = "
        f"{completed.stdout.split()}"
    )


@pytest.fixture
async def seeded_config(client: edgekv.Client, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    ids = {
        name: (await client.create_namespace(unique(name))).id
        for name in ("top", "preview", "staging", "production", "cache")
    }
    path = tmp_path / "wrangler.toml"
    path.write_text(
        f"""\
name = "my-worker"

[[kv_namespaces]]
binding = "MY_KV"
id = "{ids["top"]}"
preview_id = "{ids["preview"]}"

[env.staging]
[[env.staging.kv_namespaces]]
binding = "MY_KV"
id = "{ids["staging"]}"

[[env.staging.kv_namespaces]]
binding = "CACHE"
id = "{ids["cache"]}"

[env.production]
[[env.production.kv_namespaces]]
binding = "MY_KV"
id = "{ids["production"]}"
""",
        encoding="utf-8",
    )
    for name, namespace_id in ids.items():
        await client.namespace(namespace_id).put("where", name)
    return path, ids


async def test_bindings_without_region_use_central(
    seeded_config: tuple[Path, dict[str, str]],
    cluster: ClusterAddresses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, ids = seeded_config
    monkeypatch.setenv("EDGEKV_CENTRAL", cluster.central)

    async with await edgekv.bindings(path, env="staging") as env:
        assert isinstance(env, edgekv.Bindings)
        assert sorted(dir(env)) == ["CACHE", "MY_KV"]
        assert isinstance(env.MY_KV, edgekv.KVNamespace)
        assert env.MY_KV.id == ids["staging"] and env["CACHE"].id == ids["cache"]
        result = await env.MY_KV.get_with_metadata("where")
        assert result.value == "staging"
        assert result.cache_status is None and result.info.region == "central"
        with pytest.raises(AttributeError, match="no KV binding named 'OTHER'"):
            _ = env.OTHER

    async with await edgekv.bindings(path, env="production") as env:
        assert await env.MY_KV.get("where") == "production"
        with pytest.raises(AttributeError, match=r"\(bindings: MY_KV\)"):
            _ = env.CACHE

    async with await edgekv.bindings(path, preview=True) as env:
        assert await env.MY_KV.get("where") == "preview"
    async with await edgekv.bindings(path, preview=False) as env:
        assert await env.MY_KV.get("where") == "top"
    with pytest.raises(edgekv.ConfigError, match="has both id and preview_id"):
        await edgekv.bindings(path)
    with pytest.raises(edgekv.ConfigError, match="no environment 'qa'"):
        await edgekv.bindings(path, env="qa")


async def test_bindings_with_region_read_through_the_edge(
    seeded_config: tuple[Path, dict[str, str]],
    cluster: ClusterAddresses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, ids = seeded_config
    monkeypatch.delenv("EDGEKV_CENTRAL", raising=False)
    monkeypatch.setenv("EDGEKV_EDGE_EU_WEST", cluster.edge)
    monkeypatch.setenv("EDGEKV_STATE_FILE", str(path.parent / "no-cluster.json"))

    env = await edgekv.bindings(str(path), env="staging", region=REGION)
    try:
        first = await env.MY_KV.get_with_metadata("where")
        second = await env.MY_KV.get_with_metadata("where")
        await env.CACHE.put("from-the-edge", "yes")
        listed = await env.CACHE.list()
    finally:
        await env.close()

    assert first.value == second.value == "staging"
    assert (first.cache_status, second.cache_status) == ("MISS", "HIT")
    assert (second.info.region, second.info.node) == (REGION, EDGE_NODE)
    assert listed.cache_status is not None
    async with edgekv.Client(central=cluster.central) as client:
        assert await client.namespace(ids["cache"]).get("from-the-edge") == "yes"


async def test_bindings_report_errors_as_a_workers_binding_does(
    seeded_config: tuple[Path, dict[str, str]],
    cluster: ClusterAddresses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """int32 numbers (2**31 - 1 passes, 2**31 is a TypeError) and prefixed messages, through
    the edge and through central alike."""
    path, _ = seeded_config
    out_of_range = "Value out of range. Must be between -2147483648 and 2147483647 (inclusive)."
    for region in (REGION, None):
        where = {"edge": cluster.edge} if region else {"central": cluster.central}
        async with await edgekv.bindings(path, env="staging", region=region, **where) as env:
            await env.CACHE.put(f"ttl-{region}", "v", expiration_ttl=2**31 - 1)
            await env.CACHE.put(f"at-{region}", "v", expiration=2**31 - 1)
            for argument in ("expiration", "expiration_ttl"):
                with pytest.raises(TypeError) as caught:
                    await env.CACHE.put("k", "v", **{argument: 2**31})
                assert isinstance(caught.value, edgekv.KVError)
                assert str(caught.value) == out_of_range
            with pytest.raises(edgekv.InvalidRequestError) as ttl:
                await env.CACHE.put("k", "v", expiration_ttl=0)
            assert ttl.value.message == (
                "KV PUT failed: 400 Invalid expiration_ttl of 0. "
                "Please specify integer greater than 0."
            )


async def test_bindings_flags_beat_the_variables(
    seeded_config: tuple[Path, dict[str, str]],
    cluster: ClusterAddresses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = seeded_config
    monkeypatch.setenv("EDGEKV_CENTRAL", "127.0.0.1:1")
    monkeypatch.setenv("EDGEKV_EDGE_EU_WEST", "127.0.0.1:1")

    async with await edgekv.bindings(path, env="production", central=cluster.central) as env:
        assert await env.MY_KV.get("where") == "production"
    async with await edgekv.bindings(
        path, env="production", region=REGION, edge=cluster.edge
    ) as env:
        assert (await env.MY_KV.get_with_metadata("where")).info.region == REGION


async def test_bindings_without_a_cluster_or_config_raise_clear_errors(
    seeded_config: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path, _ = seeded_config
    monkeypatch.delenv("EDGEKV_CENTRAL", raising=False)
    monkeypatch.delenv("EDGEKV_EDGE_EU_WEST", raising=False)
    monkeypatch.setenv("EDGEKV_STATE_FILE", str(tmp_path / "no-cluster.json"))

    with pytest.raises(edgekv.ClusterNotFoundError, match="EDGEKV_CENTRAL"):
        await edgekv.bindings(path, env="staging")
    with pytest.raises(edgekv.ClusterNotFoundError, match="EDGEKV_EDGE_EU_WEST"):
        await edgekv.bindings(path, env="staging", region=REGION)
    monkeypatch.chdir(tmp_path_factory.mktemp("no-config-here"))
    with pytest.raises(edgekv.ConfigError, match=r"no wrangler\.toml"):
        await edgekv.bindings()


async def test_bindings_find_the_nearest_config(
    seeded_config: tuple[Path, dict[str, str]],
    cluster: ClusterAddresses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = seeded_config
    nested = path.parent / "src"
    nested.mkdir()
    monkeypatch.chdir(nested)

    async with await edgekv.bindings(env="production", central=cluster.central) as env:
        assert await env.MY_KV.get("where") == "production"
