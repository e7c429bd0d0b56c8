"""API tokens through an edge: its shared cache answers only callers central would.

A central with --auth (real socket, SQLite) and an edge with --auth whose own
calls carry the operator token; clients with the tokens of two accounts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import edgekv
from central.server import start_central
from central.service import CentralSettings
from edge.server import EdgeConfig, start_edge
from edgekv.clock import ManualClock
from edgekv.control import NodeControl
from edgekv.core.errors import AuthError, ErrorKind, NotFoundError

ACCOUNT_A = "a" * 32
ACCOUNT_B = "b" * 32


async def test_a_cached_value_is_served_only_to_callers_that_may_read_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    token_file = tmp_path / "operator-token"
    central = await start_central(
        "127.0.0.1:0",
        f"sqlite:{tmp_path / 'central.db'}",
        clock,
        CentralSettings(require_auth=True),
        operator_token_file=token_file,
    )
    operator_token = token_file.read_text().strip()
    edge = await start_edge(
        EdgeConfig(central=central.address, region="eu", require_token=True, token=operator_token),
        clock,
    )
    operator = edgekv.Client(central=central.address, token=operator_token)
    clients: list[edgekv.Client] = [operator]

    def through_edge(token: str | None) -> edgekv.Client:
        client = edgekv.Client(edge=edge.address, token=token, retry=edgekv.RetryPolicy.NONE)
        clients.append(client)
        return client

    try:
        token_a, _ = await operator.create_token(ACCOUNT_A)
        reader_a, _ = await operator.create_token(ACCOUNT_A, read_only=True)
        token_b, _ = await operator.create_token(ACCOUNT_B)
        namespace = await edgekv.Client(central=central.address, token=token_a).create_namespace(
            "data"
        )
        a = through_edge(token_a).namespace(namespace.id)
        await a.put("k", "v")  # a write through the edge carries A's token to central
        assert await a.get("k") == "v"  # a MISS, then cached
        assert await a.get("k") == "v"  # a HIT
        async with NodeControl(edge.address) as control:
            assert (await control.stats()).hits >= 1
        with pytest.raises(NotFoundError):  # B's token: A's namespace is not there, HIT or not
            await through_edge(token_b).namespace(namespace.id).get("k")
        with pytest.raises(AuthError) as missing:
            await through_edge(None).namespace(namespace.id).get("k")
        assert missing.value.kind is ErrorKind.TOKEN_MISSING
        with pytest.raises(AuthError):
            await through_edge("forged").namespace(namespace.id).get("k")
        read_only = through_edge(reader_a).namespace(namespace.id)
        assert await read_only.get("k") == "v"
        with pytest.raises(AuthError) as denied:
            await read_only.put("k", "w")
        assert denied.value.kind is ErrorKind.TOKEN_READ_ONLY
        assert await a.get("k") == "v"
        # Central said yes once per token and kind of access, not once per call: A's
        # write, A's reads (four of them), the read-only token's read.
        counts = central.node.boundary.counts.snapshot()
        assert counts["/edgekv.v1.CentralStore/Authorize"]["OK"] == 3
    finally:
        for client in clients:
            await client.close()
        await edge.stop(grace_s=0)
        await central.stop(grace_s=0)


async def test_a_revoked_token_is_refused_at_the_edge_once_its_check_expires(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    central = await start_central(
        "127.0.0.1:0", f"sqlite:{tmp_path / 'central.db'}", clock, CentralSettings()
    )
    # A check kept for no time at all: the next call asks central again.
    edge = await start_edge(
        EdgeConfig(central=central.address, region="eu", token_check_lifetime_s=0.0), clock
    )
    operator = edgekv.Client(central=central.address)
    token, info = await operator.create_token(ACCOUNT_A)
    namespace = await edgekv.Client(central=central.address, token=token).create_namespace("d")
    reader = edgekv.Client(edge=edge.address, token=token, retry=edgekv.RetryPolicy.NONE)
    try:
        await operator.namespace(namespace.id).put("k", "v")
        assert await reader.namespace(namespace.id).get("k") == "v"
        await operator.revoke_token(info.token_id)
        with pytest.raises(AuthError) as refused:
            await reader.namespace(namespace.id).get("k")  # a HIT it may no longer have
        assert refused.value.kind is ErrorKind.TOKEN_INVALID
        # Without a token, an edge without --auth serves the operator, as before tokens.
        anonymous = edgekv.Client(edge=edge.address)
        assert await anonymous.namespace(namespace.id).get("k") == "v"
        await anonymous.close()
    finally:
        await reader.close()
        await operator.close()
        await edge.stop(grace_s=0)
        await central.stop(grace_s=0)
