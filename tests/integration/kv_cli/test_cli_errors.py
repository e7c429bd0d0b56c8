"""Every ``edgekv kv`` failure is exit 1 and ONE ``edgekv: error:`` line, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kv_cli.conftest import Admin, Workspace, concurrently
from tests.support.central_process import CentralLauncher, CentralProcess

UNREACHABLE = "127.0.0.1:1"
SOME_ID = "0123456789abcdef0123456789abcdef"


def test_an_unreachable_central_is_one_line_for_every_command(workspace: Workspace) -> None:
    workspace.write(
        "wrangler.toml", f'name = "w"\n[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{SOME_ID}"\n'
    )
    workspace.write_json("entries.json", [{"key": "a", "value": "1"}])
    workspace.write_json("keys.json", ["a"])
    ns = ["--binding", "MY_KV"]
    commands = [
        ["kv", "namespace", "create", "NEW"],
        ["kv", "namespace", "list"],
        ["kv", "namespace", "delete", "--namespace-id", SOME_ID, "-y"],
        ["kv", "namespace", "rename", "--namespace-id", SOME_ID, "--new-name", "t"],
        ["kv", "key", "put", "k", "v", *ns],
        ["kv", "key", "get", "k", *ns],
        ["kv", "key", "list", *ns],
        ["kv", "key", "delete", "k", *ns],
        ["kv", "bulk", "put", "entries.json", *ns],
        ["kv", "bulk", "delete", "keys.json", *ns, "--force"],
        ["kv", "bulk", "get", "keys.json", *ns],
    ]

    results = concurrently(
        *[
            lambda argv=argv: workspace.run(*argv, env={"EDGEKV_CENTRAL": UNREACHABLE})
            for argv in commands
        ]
    )

    for result in results:
        line = result.error_line()
        assert result.returncode == 1, result.describe()
        assert f"cannot reach the central store at {UNREACHABLE}" in line, result.describe()


def test_an_unreachable_edge_is_one_line_naming_the_edge(
    workspace: Workspace, admin: Admin
) -> None:
    namespace_id = admin.create()

    result = workspace.run(
        "kv", "key", "get", "k", "--namespace-id", namespace_id, "--region", "eu-west",
        env={"EDGEKV_EDGE_EU_WEST": UNREACHABLE},
    )  # fmt: skip

    line = result.error_line()
    assert UNREACHABLE in line
    assert "central store" not in line and "edge" in line, (
        "edgekv/rpc.py error_from_rpc: every UNAVAILABLE without an edgekv-error trailer is "
        "worded 'central store unavailable', also when the server that could not be reached "
        f"is the edge given by --region/EDGEKV_EDGE_EU_WEST: {line!r}"
    )


def test_no_cluster_anywhere_is_one_line_naming_the_three_ways(workspace: Workspace) -> None:
    nowhere = {"EDGEKV_CENTRAL": None, "EDGEKV_EDGE_EU_WEST": None}

    central, edge = concurrently(
        lambda: workspace.run("kv", "namespace", "list", env=nowhere),
        lambda: workspace.run(
            "kv", "key", "get", "k", "--namespace-id", SOME_ID, "--region", "eu-west", env=nowhere
        ),
    )

    assert central.error_line() == (
        "edgekv: error: no central store given: pass --central HOST:PORT, set EDGEKV_CENTRAL, "
        "or start a cluster with `edgekv up`"
    )
    assert edge.error_line() == (
        "edgekv: error: no edge for region 'eu-west': pass --edge HOST:PORT, "
        "set EDGEKV_EDGE_EU_WEST, or start a cluster with `edgekv up`"
    )


def test_a_broken_state_file_is_one_line_naming_it(workspace: Workspace) -> None:
    state = workspace.write("cluster.json", "{not json")

    result = workspace.run(
        "kv", "namespace", "list", env={"EDGEKV_CENTRAL": None, "EDGEKV_STATE_FILE": str(state)}
    )

    assert result.error_line().startswith(f"edgekv: error: {state}: not a cluster state file")


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("wrangler.toml", 'name = "w\n', "invalid TOML: "),
        ("wrangler.json", '{"name": "w",}', "invalid JSON: "),
        ("wrangler.jsonc", '{"name": "w" /* open', "invalid JSON: "),
        ("wrangler.toml", '[[kv_namespaces]]\nid = "x"\n', '"kv_namespaces[0]" needs a'),
        ("wrangler.toml", '[[kv_namespaces]]\nbinding = "MY_KV"\n', 'binding "MY_KV" has no id or'),
    ],
)
def test_a_bad_config_is_one_line_naming_the_file(
    workspace: Workspace, name: str, text: str, problem: str
) -> None:
    path = workspace.write(name, text)

    result = workspace.run("kv", "key", "get", "k", "--binding", "MY_KV")

    line = result.error_line()
    assert line.startswith(f"edgekv: error: {path}: {problem}"), line


def test_a_missing_config_file_given_with_c_is_one_line(workspace: Workspace) -> None:
    result = workspace.run("kv", "key", "get", "k", "--binding", "MY_KV", "-c", "nope.toml")

    assert result.error_line() == (
        "edgekv: error: nope.toml: cannot read it (No such file or directory)"
    )


def test_a_missing_path_file_is_one_line(workspace: Workspace) -> None:
    result = workspace.run(
        "kv", "key", "put", "k", "--namespace-id", SOME_ID, "--path", "missing.bin"
    )

    line = result.error_line()
    assert "missing.bin" in line and "No such file or directory" in line


USAGE_ERRORS = [
    ["kv", "key", "put", "k", "v", "--binding", "MY_KV", "--namespace-id", SOME_ID],
    ["kv", "key", "get"],
    ["kv", "key", "put", "k", "v", "--namespace-id", SOME_ID, "--ttl", "soon"],
    ["kv", "namespace", "rename", "--namespace-id", SOME_ID],
    ["kv", "key", "get", "k", "--namespace-id", SOME_ID, "--preview", "maybe"],
    ["kv", "keys", "list"],
]


def test_a_usage_error_is_one_line(workspace: Workspace) -> None:
    results = workspace.run_many(*USAGE_ERRORS)

    not_one_line = []
    for result in results:
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.describe()
        lines = result.stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("edgekv: error: "):
            not_one_line.append(result.describe())
    assert not not_one_line, (
        "edgekv/cli/main.py: argparse's own errors print the usage block and "
        "'edgekv kv ...: error: ...' (exit 2), not one 'edgekv: error:' line; "
        f"{len(not_one_line)} of {len(results)} usage errors:\n" + "\n".join(not_one_line)
    )


@pytest.fixture
def rate_limited_central(tmp_path: Path) -> Iterator[CentralProcess]:
    with CentralLauncher(tmp_path / "rate-limited") as launcher:
        yield launcher.start("memory:")


def test_a_second_write_within_a_second_is_the_workers_kv_429_line(
    workspace: Workspace, rate_limited_central: CentralProcess
) -> None:
    central = ["--central", rate_limited_central.address]
    admin = Admin(rate_limited_central.address)
    namespace_id = admin.create()
    ns = ["--namespace-id", namespace_id, *central]

    # --no-retry: by default the command would write again after a second, and succeed.
    first, second = concurrently(
        lambda: workspace.run("kv", "key", "put", "k", "1", *ns, "--no-retry"),
        lambda: workspace.run("kv", "key", "put", "k", "2", *ns, "--no-retry"),
    )

    outcomes = sorted([first, second], key=lambda result: result.returncode)
    outcomes[0].ok()
    assert outcomes[1].error_line() == "edgekv: error: Too Many Requests"  # the REST API's words
