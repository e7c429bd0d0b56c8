"""Fixtures of the unit tests: central and edges in one process, no sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.inprocess_cluster import InProcessCluster


@pytest.fixture
async def cluster() -> AsyncIterator[InProcessCluster]:
    cluster = await InProcessCluster.start()
    try:
        yield cluster
    finally:
        await cluster.close()
