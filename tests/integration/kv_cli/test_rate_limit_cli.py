"""``edgekv kv`` writes again after a 429, as wrangler does; ``--no-retry`` does not.

Central here keeps the one-write-per-second rule (the package's cluster lifts
it) and runs simulated time at half speed, so a second of the rule lasts two
real seconds: a ``bulk delete`` started as soon as ``bulk put`` returned
surely comes within it, whatever a process start-up costs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kv_cli.conftest import (
    Admin,
    ClusterAddresses,
    Workspace,
    cli_environ,
    unique,
)
from tests.support.central_process import CentralLauncher

pytestmark = pytest.mark.slow

RULE_REAL_S = 2.0  # one simulated second at --time-scale 0.5


@pytest.fixture(scope="module")
def limited_central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("kv-cli-rate-limited")
    with CentralLauncher(folder) as launcher:
        yield launcher.start("memory:", ["--time-scale", str(1 / RULE_REAL_S)]).address


@pytest.fixture
def workspace(tmp_path: Path, limited_central: str) -> Workspace:
    folder = tmp_path / "project"
    folder.mkdir()
    cluster = ClusterAddresses(limited_central, edge="", edge_node="")
    return Workspace(folder, cli_environ(cluster, tmp_path / "no-such-cluster.json"))


@pytest.fixture
def namespace_id(limited_central: str) -> str:
    return Admin(limited_central).create(unique("limited"))


def test_bulk_delete_right_after_bulk_put_writes_again_after_the_429(
    workspace: Workspace, limited_central: str, namespace_id: str
) -> None:
    keys = [f"key-{n}" for n in range(20)]
    workspace.write_json("entries.json", [{"key": key, "value": "v"} for key in keys])
    workspace.write_json("keys.json", keys)
    ns = ["--namespace-id", namespace_id]

    workspace.run("kv", "bulk", "put", "entries.json", *ns).ok()
    deleted = workspace.run("kv", "bulk", "delete", "keys.json", *ns, "--force").ok()

    assert deleted.stdout == "Success!\n"
    first_wait = deleted.stderr.splitlines()[0]
    assert first_wait.startswith(
        "edgekv: 429 Too Many Requests for 20 of 20 keys; writing again in "
    ), deleted.describe()
    assert first_wait.endswith(" s (attempt 2 of 5)")
    assert Admin(limited_central).names(namespace_id) == []


def test_no_retry_lets_the_429_fail_the_command(workspace: Workspace, namespace_id: str) -> None:
    # Two writes of one key in one request: the second comes within the same second.
    workspace.write_json("twice.json", [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}])
    ns = ["--namespace-id", namespace_id]

    refused = workspace.run("kv", "bulk", "put", "twice.json", *ns, "--no-retry")

    assert refused.error_line() == (
        "edgekv: error: 1 of 2 entries were not written: k: Too Many Requests"
    )


def test_by_default_the_refused_write_is_written_again(
    workspace: Workspace, limited_central: str, namespace_id: str
) -> None:
    workspace.write_json("twice.json", [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}])
    ns = ["--namespace-id", namespace_id]

    written = workspace.run("kv", "bulk", "put", "twice.json", *ns).ok()

    assert written.stdout == "Success!\n"
    assert "429 Too Many Requests for 1 of 2 keys; writing again in" in written.stderr
    assert Admin(limited_central).get(namespace_id, "k") == b"2", "the later entry wins"
