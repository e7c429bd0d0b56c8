"""Fixtures shared by all tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests' own gRPC servers and channels stay as quiet as the edgekv command keeps
# its users' terminals (gRPC's C core reads this when it starts).
os.environ["GRPC_VERBOSITY"] = "NONE"

from tests.support.redis_server import RedisServer, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A flushed Redis database for one test."""
    import redis

    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.close()
    return redis_server.url()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def no_cluster_of_the_developers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test finds only the clusters it starts, never the one a developer left running."""
    monkeypatch.setenv("EDGEKV_STATE_FILE", str(tmp_path / "no-cluster.json"))
    monkeypatch.delenv("EDGEKV_CENTRAL", raising=False)
