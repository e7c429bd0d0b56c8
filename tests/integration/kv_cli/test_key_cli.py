"""``edgekv kv key put|get|list|delete`` as a subprocess: messages, bytes, regions, resolution."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.kv_cli.conftest import (
    EDGE_NODE,
    Admin,
    ClusterAddresses,
    Workspace,
    concurrently,
)


@pytest.fixture
def namespace_id(admin: Admin) -> str:
    return admin.create()


def test_put_get_list_delete_print_what_wrangler_prints(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    ns = ["--namespace-id", namespace_id]

    put = workspace.run("kv", "key", "put", "greeting", "hello wörld", *ns).ok()
    assert put.stdout == (
        f'Writing the value "hello wörld" to key "greeting" on namespace {namespace_id}.\n'
    )
    assert put.stderr == ""

    raw, text, listed = workspace.run_many(
        ["kv", "key", "get", "greeting", *ns],
        ["kv", "key", "get", "greeting", *ns, "--text"],
        ["kv", "key", "list", *ns],
    )
    assert raw.ok().stdout_bytes == "hello wörld".encode(), "raw bytes, no newline"
    assert text.ok().stdout == "hello wörld\n"
    assert raw.stderr == text.stderr == ""
    assert listed.ok().stdout == '[\n  {\n    "name": "greeting"\n  }\n]\n'

    deleted = workspace.run("kv", "key", "delete", "greeting", *ns).ok()
    assert deleted.stdout == f'Deleting the key "greeting" on namespace {namespace_id}.\n'
    assert admin.get(namespace_id, "greeting") is None

    missing, empty_list, delete_missing = workspace.run_many(
        ["kv", "key", "get", "greeting", *ns],
        ["kv", "key", "list", *ns],
        ["kv", "key", "delete", "never-was", *ns],
    )
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "Value not found\n"
    assert empty_list.ok().json() == []
    delete_missing.ok()


def test_put_with_metadata_ttl_and_expiration(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    ns = ["--namespace-id", namespace_id]
    expiration = int(time.time()) + 7200
    before = int(time.time())

    with_metadata, with_ttl, with_expiration = workspace.run_many(
        ["kv", "key", "put", "a", "1", *ns, "--metadata", '{"lang":"en","n":1}'],
        ["kv", "key", "put", "b", "2", *ns, "--ttl", "3600"],
        ["kv", "key", "put", "c", "3", *ns, "--expiration", str(expiration)],
    )
    after = int(time.time())

    assert with_metadata.ok().stdout == (
        f'Writing the value "1" to key "a" on namespace {namespace_id} '
        'with metadata "{"lang":"en","n":1}".\n'
    )
    with_ttl.ok()
    with_expiration.ok()
    listed = workspace.run("kv", "key", "list", *ns).ok().json()
    assert listed[0] == {"name": "a", "metadata": {"lang": "en", "n": 1}}
    assert listed[1].keys() == {"name", "expiration"} and listed[1]["name"] == "b"
    assert before + 3600 <= listed[1]["expiration"] <= after + 3600 + 1
    assert listed[2] == {"name": "c", "expiration": expiration}


def test_expirations_take_the_rest_apis_range_not_the_bindings_int32(
    workspace: Workspace, namespace_id: str
) -> None:
    """wrangler's commands call the REST API, which has no int32 range: up to 9999's end."""
    ns = ["--namespace-id", namespace_id]
    last_second = 253_402_300_799  # 9999-12-31 23:59:59 UTC, past int32's 2_147_483_647

    at_the_end, past_it, past_the_wire = workspace.run_many(
        ["kv", "key", "put", "late", "v", *ns, "--expiration", str(last_second)],
        ["kv", "key", "put", "later", "v", *ns, "--expiration", str(last_second + 1)],
        ["kv", "key", "put", "huge", "v", *ns, "--expiration", str(2**64)],
    )

    at_the_end.ok()
    assert past_it.error_line() == (
        f"edgekv: error: Invalid expiration of {last_second + 1}. Expiration times must be "
        f"at most {last_second} (9999-12-31 23:59:59 UTC)."
    )
    assert past_the_wire.error_line() == (  # one line, not protobuf's traceback
        "edgekv: error: Value out of range. "
        "Must be between -9223372036854775808 and 9223372036854775807 (inclusive)."
    )
    listed = workspace.run("kv", "key", "list", *ns).ok().json()
    assert listed == [{"name": "late", "expiration": last_second}]


def test_put_from_a_file_and_get_returns_the_exact_bytes(
    workspace: Workspace, namespace_id: str
) -> None:
    ns = ["--namespace-id", namespace_id]
    payload = bytes(range(256)) * 300 + b"\xff\xfe\x00 not utf-8"
    workspace.write("blob.bin", payload)

    put = workspace.run("kv", "key", "put", "blob", *ns, "--path", "blob.bin").ok()
    got = workspace.run("kv", "key", "get", "blob", *ns).ok()

    assert put.stdout == (
        f'Writing the contents of blob.bin to the key "blob" on namespace {namespace_id}.\n'
    )
    assert got.stdout_bytes == payload


def test_put_needs_exactly_one_of_value_and_path(workspace: Workspace, namespace_id: str) -> None:
    workspace.write("v.txt", "x")
    ns = ["--namespace-id", namespace_id]

    neither, both, bad_metadata, not_object = workspace.run_many(
        ["kv", "key", "put", "k", *ns],
        ["kv", "key", "put", "k", "v", *ns, "--path", "v.txt"],
        ["kv", "key", "put", "k", "v", *ns, "--metadata", "{nope"],
        ["kv", "key", "put", "k", "v", *ns, "--metadata", "[1]"],
    )

    assert neither.error_line() == "edgekv: error: give exactly one of VALUE or --path FILE"
    assert both.error_line() == "edgekv: error: give exactly one of VALUE or --path FILE"
    assert bad_metadata.error_line().startswith("edgekv: error: --metadata is not valid JSON: ")
    assert not_object.error_line() == "edgekv: error: --metadata must be a JSON object"


def test_invalid_ttl_and_expiration_give_the_workers_kv_messages(
    workspace: Workspace, namespace_id: str
) -> None:
    ns = ["--namespace-id", namespace_id]
    soon = int(time.time()) + 10

    ttl, expiration = workspace.run_many(
        ["kv", "key", "put", "k", "v", *ns, "--ttl", "59"],
        ["kv", "key", "put", "k", "v", *ns, "--expiration", str(soon)],
    )

    assert ttl.error_line() == (
        "edgekv: error: Invalid expiration_ttl of 59. Expiration TTL must be at least 60."
    )
    assert expiration.error_line() == (
        f"edgekv: error: Invalid expiration of {soon}. "
        "Expiration times must be at least 60 seconds in the future."
    )


def test_list_follows_cursors_past_1000_keys_with_a_prefix(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    wanted = {f"user:{i:05d}": str(i) for i in range(2345)}
    admin.put_many(namespace_id, {**wanted, "other": "x", "user": "y", "users:1": "z"})

    with_prefix, everything = workspace.run_many(
        ["kv", "key", "list", "--namespace-id", namespace_id, "--prefix", "user:"],
        ["kv", "key", "list", "--namespace-id", namespace_id],
    )

    assert [entry["name"] for entry in with_prefix.ok().json()] == sorted(wanted)
    names = [entry["name"] for entry in everything.ok().json()]
    assert len(names) == len(wanted) + 3
    assert names == sorted(names)


def test_verbose_get_at_central_prints_revision_and_node_to_stderr(
    workspace: Workspace, namespace_id: str
) -> None:
    workspace.run("kv", "key", "put", "k", "v", "--namespace-id", namespace_id).ok()

    result = workspace.run("kv", "key", "get", "k", "--namespace-id", namespace_id, "--verbose")

    assert result.ok().stdout == "v"
    [line] = result.stderr.splitlines()
    fields = dict(part.split("=", 1) for part in line.split())
    assert fields.keys() == {"revision", "cache_status", "age_s", "region", "node"}
    assert int(fields["revision"]) > 0
    assert fields["cache_status"] == "-"
    assert fields["region"] == "central" and fields["node"] == "central"


def test_get_with_region_reads_through_that_regions_edge(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    ns = ["--namespace-id", namespace_id]
    workspace.run("kv", "key", "put", "k", "old", *ns).ok()

    first = workspace.run("kv", "key", "get", "k", *ns, "--region", "eu-west", "--verbose")
    admin.put_many(namespace_id, {"k": "new"})
    second, at_central = workspace.run_many(
        ["kv", "key", "get", "k", *ns, "--region", "eu-west", "--verbose", "--cache-ttl", "300"],
        ["kv", "key", "get", "k", *ns],
    )

    def info(line: str) -> dict[str, str]:
        return dict(part.split("=", 1) for part in line.split())

    assert first.ok().stdout == "old"
    assert info(first.stderr) | {"age_s": "", "revision": ""} == {
        "revision": "",
        "cache_status": "MISS",
        "age_s": "",
        "region": "eu-west",
        "node": EDGE_NODE,
    }
    assert second.ok().stdout == "old", "the edge serves its cached copy: eventual consistency"
    assert info(second.stderr)["cache_status"] == "HIT"
    assert info(second.stderr)["revision"] == info(first.stderr)["revision"]
    assert float(info(second.stderr)["age_s"]) >= 0.0
    assert at_central.ok().stdout == "new"


def test_get_with_region_and_a_low_cache_ttl_is_one_error_line(
    workspace: Workspace, namespace_id: str
) -> None:
    result = workspace.run(
        "kv", "key", "get", "k", "--namespace-id", namespace_id, "--region", "eu-west",
        "--cache-ttl", "29",
    )  # fmt: skip

    assert result.error_line() == (
        "edgekv: error: Invalid cache_ttl of 29. Cache TTL must be at least 30."
    )


def test_get_with_a_region_without_edge_is_one_error_line(
    workspace: Workspace, namespace_id: str
) -> None:
    result = workspace.run(
        "kv", "key", "get", "k", "--namespace-id", namespace_id, "--region", "ap-south"
    )

    assert result.error_line() == (
        "edgekv: error: no edge for region 'ap-south': pass --edge HOST:PORT, "
        "set EDGEKV_EDGE_AP_SOUTH, or start a cluster with `edgekv up`"
    )


def test_key_too_long_gives_the_workers_kv_message(workspace: Workspace, namespace_id: str) -> None:
    key = "é" * 256 + "x"  # 513 UTF-8 bytes
    ns = ["--namespace-id", namespace_id]

    put, get, delete = workspace.run_many(
        ["kv", "key", "put", key, "v", *ns],
        ["kv", "key", "get", key, *ns],
        ["kv", "key", "delete", key, *ns],
    )

    expected = "edgekv: error: UTF-8 encoded length of 513 exceeds key length limit of 512."
    assert put.error_line() == expected
    assert get.error_line() == expected
    assert delete.error_line() == expected


def test_empty_and_reserved_keys_give_the_workers_kv_messages(
    workspace: Workspace, namespace_id: str
) -> None:
    empty, dot = workspace.run_many(
        ["kv", "key", "put", "", "v", "--namespace-id", namespace_id],
        ["kv", "key", "get", "..", "--namespace-id", namespace_id],
    )

    assert empty.error_line() == "edgekv: error: Key name cannot be empty."
    assert dot.error_line() == 'edgekv: error: ".." is not allowed as a key name.'


# -- namespace resolution: bindings, environments, preview ids ------------------------------


def test_the_my_kv_example_resolves_per_environment_and_preview(
    workspace: Workspace, admin: Admin
) -> None:
    top, preview, staging, production = (admin.create() for _ in range(4))
    other = admin.create()
    path = workspace.write(
        "wrangler.toml",
        f"""\
name = "my-worker"

[[kv_namespaces]]
binding = "MY_KV"
id = "{top}"
preview_id = "{preview}"

[[kv_namespaces]]
binding = "OTHER"
id = "{other}"

[env.staging]
[[env.staging.kv_namespaces]]
binding = "MY_KV"
id = "{staging}"

[env.production]
[[env.production.kv_namespaces]]
binding = "MY_KV"
id = "{production}"
""",
    )
    b = ["--binding", "MY_KV"]

    writes = workspace.run_many(
        ["kv", "key", "put", "where", "staging", *b, "--env", "staging"],
        ["kv", "key", "put", "where", "production", *b, "-e", "production"],
        ["kv", "key", "put", "where", "preview", *b, "--preview"],
        ["kv", "key", "put", "where", "top", *b, "--preview", "false"],
        ["kv", "key", "put", "where", "other", "--binding", "OTHER"],
    )
    for result, namespace_id in zip(
        writes, [staging, production, preview, top, other], strict=True
    ):
        assert result.ok().stdout.endswith(f"on namespace {namespace_id}.\n"), result.describe()

    for namespace_id, value in [
        (staging, b"staging"),
        (production, b"production"),
        (preview, b"preview"),
        (top, b"top"),
        (other, b"other"),
    ]:
        assert admin.get(namespace_id, "where") == value

    reads = workspace.run_many(
        ["kv", "key", "get", "where", *b, "--env", "staging"],
        ["kv", "key", "get", "where", *b, "--env", "production", "--region", "eu-west"],
        ["kv", "key", "get", "where", *b, "--preview", "true"],
        ["kv", "key", "get", "where", *b],
        ["kv", "key", "get", "where", "--binding", "OTHER", "--env", "staging"],
        ["kv", "key", "get", "where", *b, "--env", "qa"],
        ["kv", "key", "get", "where", "--binding", "NOPE"],
    )
    assert [r.ok().stdout for r in reads[:3]] == ["staging", "production", "preview"]
    assert reads[3].error_line() == (
        f'edgekv: error: {path}: binding "MY_KV" has both id and preview_id; '
        "pass --preview for preview_id or --preview false for id"
    )
    assert reads[4].error_line() == (
        f'edgekv: error: {path}: a namespace with binding name "OTHER" was not found in '
        '[env.staging] "kv_namespaces"'
    ), "kv_namespaces are not inherited by environments"
    assert reads[5].error_line() == (
        f"edgekv: error: {path}: no environment 'qa' (environments: production, staging)"
    )
    assert reads[6].error_line() == (
        f'edgekv: error: {path}: a namespace with binding name "NOPE" was not found in '
        'the configured "kv_namespaces"'
    )


def test_preview_before_the_positionals_is_a_flag_as_in_wrangler(
    workspace: Workspace, admin: Admin
) -> None:
    main_id, preview_id = admin.create(), admin.create()
    workspace.write(
        "wrangler.toml",
        f'[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{main_id}"\npreview_id = "{preview_id}"\n',
    )

    result = workspace.run("kv", "key", "put", "--binding", "MY_KV", "--preview", "k", "v")

    assert result.returncode == 0, (
        "edgekv/cli/kv_cmd.py _add_namespace_flags: --preview is nargs='?', so it swallows "
        "the next word ('k') as its true/false value; wrangler's --preview is a boolean "
        f"flag that takes only true/false:\n{result.describe()}"
    )
    assert admin.get(preview_id, "k") == b"v"


@pytest.mark.parametrize("name", ["wrangler.json", "wrangler.jsonc"])
def test_bindings_resolve_from_json_configs_found_above_the_cwd(
    workspace: Workspace, admin: Admin, name: str
) -> None:
    top, staging = admin.create(), admin.create()
    text = f"""\
// a comment
{{
  "name": "w", /* another */
  "kv_namespaces": [{{"binding": "MY_KV", "preview_id": "{top}"}}],
  "env": {{"staging": {{"kv_namespaces": [{{"binding": "MY_KV", "id": "{staging}"}}]}}}}
}}
"""
    if name == "wrangler.jsonc":
        text = text.replace('"}]}}', '"},],},},')  # trailing commas
    else:
        text = "\n".join(line.split(" /*")[0].split("//")[0] for line in text.splitlines())
    workspace.write(name, text)
    nested = workspace.folder / "src" / "deep"
    nested.mkdir(parents=True)

    put_top = workspace.run("kv", "key", "put", "k", "top", "--binding", "MY_KV", cwd=nested)
    put_staging = workspace.run(
        "kv", "key", "put", "k", "stg", "--binding", "MY_KV", "--env", "staging", cwd=nested
    )

    assert put_top.ok().stdout.endswith(f"on namespace {top}.\n"), "the only id, a preview_id"
    assert put_staging.ok().stdout.endswith(f"on namespace {staging}.\n")
    assert admin.get(top, "k") == b"top" and admin.get(staging, "k") == b"stg"


def test_config_flag_names_a_config_elsewhere(
    workspace: Workspace, admin: Admin, tmp_path_factory: pytest.TempPathFactory
) -> None:
    namespace_id = admin.create()
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "custom.toml"
    elsewhere.write_text(f'[[kv_namespaces]]\nbinding = "X"\nid = "{namespace_id}"\n')

    result = workspace.run("kv", "key", "put", "k", "v", "--binding", "X", "-c", str(elsewhere))

    assert result.ok().stdout.endswith(f"on namespace {namespace_id}.\n")


def test_binding_without_a_config_is_one_error_line(workspace: Workspace) -> None:
    result = workspace.run("kv", "key", "get", "k", "--binding", "MY_KV")

    assert result.error_line() == (
        "edgekv: error: no wrangler.toml, wrangler.json or wrangler.jsonc here or above"
    )


def test_neither_binding_nor_namespace_id_is_one_error_line(workspace: Workspace) -> None:
    result = workspace.run("kv", "key", "get", "k")

    assert result.error_line() == "edgekv: error: either --binding or --namespace-id must be given"


def test_a_namespace_that_does_not_exist_is_one_error_line(workspace: Workspace) -> None:
    missing = "f" * 32

    put, bad_id = workspace.run_many(
        ["kv", "key", "put", "k", "v", "--namespace-id", missing],
        ["kv", "key", "list", "--namespace-id", "not-an-id"],
    )

    assert put.error_line() == f"edgekv: error: put: 'namespace not found' ({missing})"
    assert bad_id.error_line() == (
        "edgekv: error: Invalid namespace id 'not-an-id': expected 32 hexadecimal characters."
    )


def test_the_central_flag_beats_the_variable_which_beats_the_state_file(
    workspace: Workspace, cluster: ClusterAddresses, namespace_id: str
) -> None:
    unreachable = "127.0.0.1:1"
    good_state = workspace.write_json(
        "cluster.json", {"central": cluster.central, "edges": {"eu-west": [cluster.edge]}}
    )
    bad_state = workspace.write_json(
        "bad-cluster.json", {"central": unreachable, "edges": {"eu-west": [unreachable]}}
    )
    workspace.run("kv", "key", "put", "k", "v", "--namespace-id", namespace_id).ok()
    get = ["kv", "key", "get", "k", "--namespace-id", namespace_id]

    def state_only(path: Path) -> dict[str, str | None]:
        return {"EDGEKV_CENTRAL": None, "EDGEKV_EDGE_EU_WEST": None, "EDGEKV_STATE_FILE": str(path)}

    flag, variable, from_state, edge_from_state, edge_variable = concurrently(
        lambda: workspace.run(
            *get, "--central", cluster.central,
            env={"EDGEKV_CENTRAL": unreachable, "EDGEKV_STATE_FILE": str(bad_state)},
        ),
        lambda: workspace.run(*get, env={"EDGEKV_STATE_FILE": str(bad_state)}),
        lambda: workspace.run(*get, env=state_only(good_state)),
        lambda: workspace.run(*get, "--region", "eu-west", "--verbose", env=state_only(good_state)),
        lambda: workspace.run(
            *get, "--region", "eu-west", "--verbose", env={"EDGEKV_STATE_FILE": str(bad_state)}
        ),
    )  # fmt: skip

    for result in (flag, variable, from_state, edge_from_state, edge_variable):
        assert result.ok().stdout == "v", result.describe()
    assert "region=eu-west" in edge_from_state.stderr
    assert "region=eu-west" in edge_variable.stderr


def test_colon_spellings_are_accepted(workspace: Workspace, namespace_id: str) -> None:
    ns = ["--namespace-id", namespace_id]
    workspace.write_json("bulk.json", [{"key": "b", "value": "2"}])
    workspace.write_json("keys.json", ["a", "b", "c"])

    put = workspace.run("kv:key", "put", "a", "1", *ns).ok()
    bulk = workspace.run("kv:bulk", "put", "bulk.json", *ns).ok()
    get, listed, bulk_get, namespaces = workspace.run_many(
        ["kv:key", "get", "a", *ns],
        ["kv:key", "list", *ns],
        ["kv:bulk", "get", "keys.json", *ns],
        ["kv:namespace", "list"],
    )

    assert put.stdout == f'Writing the value "1" to key "a" on namespace {namespace_id}.\n'
    assert bulk.stdout == "Success!\n"
    assert get.ok().stdout == "1"
    assert listed.ok().json() == [{"name": "a"}, {"name": "b"}]
    assert bulk_get.ok().json() == {"a": "1", "b": "2", "c": None}
    assert namespace_id in {entry["id"] for entry in namespaces.ok().json()}


LEAF_COMMANDS = [
    ("namespace", "create"),
    ("namespace", "list"),
    ("namespace", "delete"),
    ("namespace", "rename"),
    ("key", "put"),
    ("key", "get"),
    ("key", "list"),
    ("key", "delete"),
    ("bulk", "put"),
    ("bulk", "delete"),
    ("bulk", "get"),
]


def test_every_command_has_help_with_an_example(workspace: Workspace) -> None:
    results = workspace.run_many(
        *[["kv", group, action, "--help"] for group, action in LEAF_COMMANDS],
        ["kv:key", "put", "--help"],
    )

    for (group, action), result in zip([*LEAF_COMMANDS, ("key", "put")], results, strict=True):
        result.ok()
        assert result.stdout.startswith(f"usage: edgekv kv {group} {action} "), result.describe()
        assert f"example: edgekv kv {group} {action}" in result.stdout, result.describe()
        assert result.stderr == ""
