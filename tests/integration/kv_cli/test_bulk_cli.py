"""``edgekv kv bulk put|delete|get`` as a subprocess: files, base64, limits, confirmation."""

from __future__ import annotations

import base64
import time

import pytest

from tests.integration.kv_cli.conftest import Admin, Workspace


@pytest.fixture
def namespace_id(admin: Admin) -> str:
    return admin.create()


def test_bulk_put_writes_every_field_and_decodes_base64(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    binary = bytes(range(256)) + b"\x00\xff"
    expiration = int(time.time()) + 7200
    workspace.write_json(
        "entries.json",
        [
            {"key": "plain", "value": "hello"},
            {"key": "b64", "value": base64.b64encode(binary).decode(), "base64": True},
            {"key": "not-b64", "value": "aGk=", "base64": False},
            {"key": "meta", "value": "m", "metadata": {"a": [1, 2]}},
            {"key": "ttl", "value": "t", "expiration_ttl": 3600},
            {"key": "exp", "value": "e", "expiration": expiration},
        ],
    )
    workspace.write_json("keys.json", ["plain", "not-b64", {"name": "meta"}, "missing"])
    ns = ["--namespace-id", namespace_id]

    put = workspace.run("kv", "bulk", "put", "entries.json", *ns).ok()
    raw, listed, bulk_get = workspace.run_many(
        ["kv", "key", "get", "b64", *ns],
        ["kv", "key", "list", *ns],
        ["kv", "bulk", "get", "keys.json", *ns],
    )

    assert put.stdout == "Success!\n" and put.stderr == ""
    assert raw.ok().stdout_bytes == binary, "base64: true values are decoded"
    assert admin.get(namespace_id, "not-b64") == b"aGk="
    by_name = {entry["name"]: entry for entry in listed.ok().json()}
    assert list(by_name) == ["b64", "exp", "meta", "not-b64", "plain", "ttl"]
    assert by_name["meta"] == {"name": "meta", "metadata": {"a": [1, 2]}}
    assert by_name["exp"] == {"name": "exp", "expiration": expiration}
    assert abs(by_name["ttl"]["expiration"] - (time.time() + 3600)) < 60
    assert by_name["plain"] == {"name": "plain"}
    assert bulk_get.ok().stdout == (
        '{\n  "plain": "hello",\n  "not-b64": "aGk=",\n  "meta": "m",\n  "missing": null\n}\n'
    )


def test_bulk_put_warns_about_unexpected_properties(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    workspace.write_json("entries.json", [{"key": "a", "value": "1", "colour": "red", "size": 2}])

    result = workspace.run("kv", "bulk", "put", "entries.json", "--namespace-id", namespace_id)

    assert result.ok().stdout == "Success!\n"
    assert result.stderr == (
        "Warning: unexpected properties in entries.json are ignored: colour, size\n"
    )
    assert admin.get(namespace_id, "a") == b"1"


def test_bulk_put_of_10001_entries_is_refused_and_10000_are_written_with_progress(
    workspace: Workspace, namespace_id: str
) -> None:
    ns = ["--namespace-id", namespace_id]
    entries = [{"key": f"k{i:05d}", "value": f"v{i}"} for i in range(10_001)]
    workspace.write_json("too-many.json", entries)
    workspace.write_json("just-right.json", entries[:10_000])

    refused = workspace.run("kv", "bulk", "put", "too-many.json", *ns)

    assert refused.error_line() == (
        "edgekv: error: A bulk request can hold at most 10000 entries; this one has 10001."
    )
    assert refused.stdout == ""
    assert workspace.run("kv", "key", "list", *ns).ok().json() == [], "nothing was written"

    accepted = workspace.run("kv", "bulk", "put", "just-right.json", *ns).ok()

    assert accepted.stdout == "Success!\n"
    assert accepted.stderr.splitlines() == [
        f"Uploaded {p}% ({p * 100} out of 10000)" for p in range(10, 101, 10)
    ]
    listed = workspace.run("kv", "key", "list", *ns).ok().json()
    assert [entry["name"] for entry in listed] == [f"k{i:05d}" for i in range(10_000)]


def test_bulk_put_of_at_most_1000_entries_prints_no_progress(
    workspace: Workspace, namespace_id: str
) -> None:
    workspace.write_json("entries.json", [{"key": f"k{i}", "value": "v"} for i in range(1000)])

    result = workspace.run("kv", "bulk", "put", "entries.json", "--namespace-id", namespace_id)

    assert result.ok().stdout == "Success!\n"
    assert result.stderr == ""


def test_bulk_delete_asks_unless_forced(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    admin.put_many(namespace_id, {"a": "1", "b": "2", "c": "3", "keep": "4"})
    workspace.write_json("keys.json", ["a", {"name": "b"}, "c", "never-there"])
    ns = ["--namespace-id", namespace_id]
    question = (
        'Are you sure you want to delete all the keys read from "keys.json" '
        f"from kv-namespace {namespace_id}? [y/N] "
    )

    declined, no_answer = workspace.run_many(
        ["kv", "bulk", "delete", "keys.json", *ns],  # stdin at EOF
        ["kv", "bulk", "delete", "keys.json", *ns],
    )
    said_no = workspace.run("kv", "bulk", "delete", "keys.json", *ns, input="n\n")

    for result in (declined, no_answer, said_no):
        assert result.ok().stdout == 'Not deleting keys read from "keys.json".\n'
        assert result.stderr == question
    assert admin.names(namespace_id) == ["a", "b", "c", "keep"], "nothing deleted"

    said_yes = workspace.run("kv", "bulk", "delete", "keys.json", *ns, input="y\n").ok()

    assert said_yes.stdout == "Success!\n"
    assert said_yes.stderr == question
    assert admin.names(namespace_id) == ["keep"]

    admin.put_many(namespace_id, {"a": "again"})
    forced = workspace.run("kv", "bulk", "delete", "keys.json", *ns, "--force").ok()
    assert forced.stdout == "Success!\n" and forced.stderr == "", "--force asks nothing"
    assert admin.names(namespace_id) == ["keep"]


def test_bulk_delete_by_binding_of_many_keys(workspace: Workspace, admin: Admin) -> None:
    namespace_id = admin.create()
    workspace.write(
        "wrangler.toml", f'[[kv_namespaces]]\nbinding = "MY_KV"\npreview_id = "{namespace_id}"\n'
    )
    keys = [f"k{i:04d}" for i in range(2500)]
    admin.put_many(namespace_id, dict.fromkeys(keys, "v"))
    workspace.write_json("keys.json", keys[:2400])

    result = workspace.run("kv", "bulk", "delete", "keys.json", "--binding", "MY_KV", "-f")

    assert result.ok().stdout == "Success!\n"
    assert len(result.stderr.splitlines()) == 3, "a progress line per chunk above 1,000"
    assert admin.names(namespace_id) == keys[2400:]


def test_bulk_get_of_more_than_100_keys(workspace: Workspace, admin: Admin) -> None:
    namespace_id = admin.create()
    admin.put_many(namespace_id, {f"k{i}": f"v{i}" for i in range(0, 250, 2)})
    workspace.write_json("keys.json", [f"k{i}" for i in range(250)])

    result = workspace.run("kv", "bulk", "get", "keys.json", "--namespace-id", namespace_id)

    assert result.ok().json() == {f"k{i}": f"v{i}" if i % 2 == 0 else None for i in range(250)}


@pytest.mark.parametrize(
    ("command", "content", "expected"),
    [
        ("put", "[{]", "entries.json: invalid JSON: "),
        ("put", '{"key": "a", "value": "b"}', "entries.json: expected a JSON array, got dict"),
        ("put", "[]", "A bulk request needs at least one entry."),
        ("put", '[{"key": "a"}]', 'entries.json: entry 0 needs a string "key" and a string'),
        ("put", '[{"key": "a", "value": 1}]', "entries.json: entry 0 needs a string"),
        (
            "put",
            '[{"key": "a", "value": "b"}, {"key": "c", "value": "!!", "base64": true}]',
            'entries.json: entry 1: "value" is not valid base64',
        ),
        (
            "put",
            '[{"key": "a", "value": "b", "metadata": "m"}]',
            'entries.json: entry 0: "metadata" must be an object',
        ),
        (
            "put",
            '[{"key": "a", "value": "b", "expiration_ttl": "60"}]',
            'entries.json: entry 0: "expiration_ttl" must be a number',
        ),
        ("delete", "not json", "entries.json: invalid JSON: "),
        ("delete", "[1]", 'entries.json: entry 0 must be a string or an object with a "name"'),
        ("get", '[{"key": "a"}]', "entries.json: entry 0 must be a string or an object with"),
    ],
)
def test_a_bad_bulk_file_is_one_error_line_and_writes_nothing(
    workspace: Workspace, admin: Admin, command: str, content: str, expected: str
) -> None:
    namespace_id = admin.create()
    admin.put_many(namespace_id, {"a": "kept"})
    workspace.write("entries.json", content)

    force = ["--force"] if command == "delete" else []

    result = workspace.run(
        "kv", "bulk", command, "entries.json", "--namespace-id", namespace_id, *force
    )

    line = result.error_line()
    assert line.startswith(f"edgekv: error: {expected}"), line
    assert admin.names(namespace_id) == ["a"] and admin.get(namespace_id, "a") == b"kept"


def test_a_missing_bulk_file_is_one_error_line(workspace: Workspace, namespace_id: str) -> None:
    result = workspace.run("kv", "bulk", "put", "nope.json", "--namespace-id", namespace_id)

    assert result.error_line() == (
        "edgekv: error: nope.json: cannot read it (No such file or directory)"
    )


def test_bulk_put_reports_entries_the_store_refused(
    workspace: Workspace, admin: Admin, namespace_id: str
) -> None:
    workspace.write_json(
        "entries.json",
        [
            {"key": "good", "value": "1"},
            {"key": "x" * 513, "value": "2"},
            {"key": "short", "value": "3", "expiration_ttl": 10},
        ],
    )

    result = workspace.run("kv", "bulk", "put", "entries.json", "--namespace-id", namespace_id)

    line = result.error_line()
    assert line.startswith("edgekv: error: 2 of 3 entries were not written: "), line
    assert "UTF-8 encoded length of 513 exceeds key length limit of 512." in line
    assert "(and 1 more)" in line
    assert admin.names(namespace_id) == ["good"], "the valid entries are written"
