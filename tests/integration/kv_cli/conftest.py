"""Fixtures for ``edgekv kv`` and the Python API against real processes.

One ``edgekv central`` (SQLite file, ``--no-write-rate-limit`` so a test may
write and then delete the same keys at once) and one ``edgekv edge`` in region
``eu-west`` run as child processes for the whole package; every test works in
namespaces of its own, so tests do not see each other's keys.

A :class:`Workspace` is a project folder for one test: it writes
``wrangler.toml`` & co. there and runs the installed ``edgekv`` executable as a
subprocess with that folder as cwd and ``EDGEKV_CENTRAL`` /
``EDGEKV_EDGE_EU_WEST`` pointing at the cluster (and ``EDGEKV_STATE_FILE`` at a
file that does not exist, so a developer's own cluster is never used). Each
call costs a Python start-up, so independent calls can run together with
:meth:`Workspace.run_many`.

:class:`Admin` sets up and inspects namespaces from Python (fast, no
subprocess) for the sync CLI tests; it runs each call in its own event loop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

import edgekv
from tests.support.central_process import CentralLauncher, CentralProcess
from tests.support.edge_process import EdgeLauncher, EdgeProcess

T = TypeVar("T")

EDGEKV = Path(sys.executable).with_name("edgekv")
REPO_ROOT = Path(__file__).resolve().parents[3]
REGION = "eu-west"
EDGE_NODE = "eu-west-1"
CLI_TIMEOUT_S = 60.0
ERROR_PREFIX = "edgekv: error: "

_unique = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test (or run over the same cluster) uses."""
    return f"{prefix}-{next(_unique)}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Result:
    """How one ``edgekv`` subprocess ended."""

    argv: list[str]
    returncode: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8")

    def describe(self) -> str:
        return (
            f"edgekv {' '.join(self.argv)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout_bytes.decode('utf-8', 'replace')}"
            f"--- stderr ---\n{self.stderr_bytes.decode('utf-8', 'replace')}"
        )

    def ok(self) -> Result:
        """Assert a success (exit 0, no traceback) and return self."""
        assert self.returncode == 0, f"expected success:\n{self.describe()}"
        assert "Traceback" not in self.stderr, self.describe()
        return self

    def error_line(self) -> str:
        """Assert a failure told in ONE ``edgekv: error:`` line on stderr; return it."""
        assert self.returncode != 0, f"expected a failure:\n{self.describe()}"
        assert "Traceback" not in self.stderr, self.describe()
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr:\n{self.describe()}"
        assert lines[0].startswith(ERROR_PREFIX), (
            f"expected stderr to start with {ERROR_PREFIX!r}:\n{self.describe()}"
        )
        return lines[0]

    def json(self) -> Any:
        return json.loads(self.stdout)


class Workspace:
    """A project folder and a way to run ``edgekv`` in it."""

    def __init__(self, folder: Path, environ: Mapping[str, str]) -> None:
        self.folder = folder
        self.environ = dict(environ)

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def write_json(self, name: str, value: Any) -> Path:
        return self.write(name, json.dumps(value))

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
    ) -> Result:
        environ = dict(self.environ)
        for name, value in (env or {}).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        completed = subprocess.run(
            [str(EDGEKV), *args],
            input=input.encode("utf-8") if isinstance(input, str) else input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            cwd=cwd or self.folder,
            env=environ,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        return Result(list(args), completed.returncode, completed.stdout, completed.stderr)

    def run_many(self, *commands: Sequence[str]) -> list[Result]:
        """Independent commands at once (each is a process start-up); results in order."""
        return concurrently(*[functools.partial(self.run, *argv) for argv in commands])


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run independent blocking calls (subprocesses) in threads; results in order."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


class Admin:
    """Namespaces set up and inspected from Python, for the sync CLI tests."""

    def __init__(self, central: str) -> None:
        self.central = central

    def call(self, use: Callable[[edgekv.Client], Awaitable[T]]) -> T:
        async def main() -> T:
            async with edgekv.Client(central=self.central) as client:
                return await use(client)

        return asyncio.run(main())

    def create(self, title: str | None = None) -> str:
        """A new namespace's id."""
        name = title or unique("ns")
        return self.call(lambda client: client.create_namespace(name)).id

    def titles(self) -> dict[str, str]:
        """Every namespace: id -> title."""
        namespaces = self.call(lambda client: client.list_namespaces())
        return {ns.id: ns.title for ns in namespaces}

    def put_many(self, namespace_id: str, entries: Mapping[str, str | bytes]) -> None:
        async def use(client: edgekv.Client) -> None:
            kv = client.namespace(namespace_id)
            items = list(entries.items())
            for start in range(0, len(items), 10_000):
                chunk = items[start : start + 10_000]
                result = await kv.bulk_put([{"key": k, "value": v} for k, v in chunk])
                assert not result.unsuccessful_keys, result

        self.call(use)

    def get(self, namespace_id: str, key: str) -> bytes | None:
        async def use(client: edgekv.Client) -> bytes | None:
            value: bytes | None = await client.namespace(namespace_id).get(key, type="bytes")
            return value

        return self.call(use)

    def names(self, namespace_id: str, prefix: str | None = None) -> list[str]:
        async def use(client: edgekv.Client) -> list[str]:
            return [key.name async for key in client.namespace(namespace_id).list_all(prefix)]

        return self.call(use)


@dataclass(frozen=True)
class ClusterAddresses:
    central: str
    edge: str
    edge_node: str


@pytest.fixture(scope="package")
def central_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralProcess]:
    folder = tmp_path_factory.mktemp("kv-cli-central")
    with CentralLauncher(folder) as launcher:
        yield launcher.start(f"sqlite:{folder / 'central.db'}", ["--no-write-rate-limit"])


@pytest.fixture(scope="package")
def edge_process(
    central_process: CentralProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    with EdgeLauncher(tmp_path_factory.mktemp("kv-cli-edge")) as launcher:
        yield launcher.start(central_process.address, REGION, ["--node", EDGE_NODE])


@pytest.fixture(scope="package")
def cluster(central_process: CentralProcess, edge_process: EdgeProcess) -> ClusterAddresses:
    return ClusterAddresses(central_process.address, edge_process.address, edge_process.node)


@pytest.fixture(scope="package")
def admin(cluster: ClusterAddresses) -> Admin:
    return Admin(cluster.central)


def cli_environ(cluster: ClusterAddresses, state_file: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environ["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), environ.get("PYTHONPATH", "")) if part
    )
    environ["EDGEKV_CENTRAL"] = cluster.central
    environ["EDGEKV_EDGE_EU_WEST"] = cluster.edge
    environ["EDGEKV_STATE_FILE"] = str(state_file)
    return environ


@pytest.fixture
def workspace(tmp_path: Path, cluster: ClusterAddresses) -> Workspace:
    folder = tmp_path / "project"
    folder.mkdir()
    return Workspace(folder, cli_environ(cluster, tmp_path / "no-such-cluster.json"))
