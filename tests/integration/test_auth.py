"""Accounts and API tokens on central's gRPC: who sees and does what, with and without --auth.

Central runs in-process on a real socket over SQLite; ``edgekv token`` runs as a
user would run it, against a central process it started.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import edgekv
from central.server import start_central
from central.service import CentralSettings
from edgekv.clock import ManualClock
from edgekv.core.accounts import DEFAULT_ACCOUNT_ID
from edgekv.core.errors import AuthError, ErrorKind, KVError, NotFoundError
from tests.support.central_process import start_central as start_central_process

ACCOUNT_A = "a" * 32
ACCOUNT_B = "b" * 32


async def _central(tmp_path: Path, **settings: object) -> tuple[object, Path]:
    token_file = tmp_path / "operator-token"
    server = await start_central(
        "127.0.0.1:0",
        f"sqlite:{tmp_path / 'central.db'}",
        ManualClock(),
        CentralSettings(**settings),  # type: ignore[arg-type]
        operator_token_file=token_file,
    )
    return server, token_file


async def test_without_auth_a_call_without_a_token_is_the_operator(tmp_path: Path) -> None:
    server, token_file = await _central(tmp_path)
    operator = edgekv.Client(central=server.address)  # type: ignore[attr-defined]
    try:
        namespace = await operator.create_namespace("mine")
        assert namespace.account_id == DEFAULT_ACCOUNT_ID
        token_b, _ = await operator.create_token(ACCOUNT_B)
        b = edgekv.Client(central=server.address, token=token_b)  # type: ignore[attr-defined]
        of_b = await b.create_namespace("mine")  # the same title, another account
        assert of_b.account_id == ACCOUNT_B
        # Listings are per account; the operator reaches any namespace by its id.
        assert [ns.id for ns in await operator.list_namespaces()] == [namespace.id]
        assert [ns.id for ns in await b.list_namespaces()] == [of_b.id]
        await operator.namespace(of_b.id).put("k", "v")
        with pytest.raises(NotFoundError):
            await b.namespace(namespace.id).get("k")
        assert await b.namespace(of_b.id).get("k") == "v"
        await b.close()
    finally:
        await operator.close()
        await server.stop(grace_s=0)  # type: ignore[attr-defined]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


async def test_with_auth_every_call_needs_a_token(tmp_path: Path) -> None:
    server, token_file = await _central(tmp_path, require_auth=True)
    address = server.address  # type: ignore[attr-defined]
    anonymous = edgekv.Client(central=address)
    operator = edgekv.Client(central=address, token=token_file.read_text().strip())
    try:
        with pytest.raises(AuthError) as refused:
            await anonymous.list_namespaces()
        assert refused.value.kind is ErrorKind.TOKEN_MISSING
        with pytest.raises(AuthError):
            await edgekv.Client(central=address, token="wrong").create_namespace("x")
        token_a, info = await operator.create_token(ACCOUNT_A)
        read_only, _ = await operator.create_token(ACCOUNT_A, read_only=True)
        a = edgekv.Client(central=address, token=token_a)
        namespace = await a.create_namespace("data")
        await a.namespace(namespace.id).put("k", "v")
        reader = edgekv.Client(central=address, token=read_only)
        assert await reader.namespace(namespace.id).get("k") == "v"
        with pytest.raises(AuthError) as denied:
            await reader.namespace(namespace.id).put("k", "w")
        assert denied.value.kind is ErrorKind.TOKEN_READ_ONLY
        with pytest.raises(AuthError) as not_operator:
            await a.create_token(ACCOUNT_A)
        assert not_operator.value.kind is ErrorKind.OPERATOR_ONLY
        # A token limited to namespaces sees only those.
        other = await a.create_namespace("other")
        limited_token, _ = await operator.create_token(ACCOUNT_A, namespace_ids=[namespace.id])
        limited = edgekv.Client(central=address, token=limited_token)
        assert [ns.id for ns in await limited.list_namespaces()] == [namespace.id]
        with pytest.raises(NotFoundError):
            await limited.namespace(other.id).get("k")
        await operator.revoke_token(info.token_id)
        with pytest.raises(AuthError):
            await a.namespace(namespace.id).get("k")
        with pytest.raises(KVError) as unknown:
            await operator.revoke_token(info.token_id)
        assert unknown.value.kind is ErrorKind.TOKEN_NOT_FOUND
        for client in (a, reader, limited):
            await client.close()
    finally:
        await anonymous.close()
        await operator.close()
        await server.stop(grace_s=0)  # type: ignore[attr-defined]


def _edgekv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekv", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_token_commands_and_tokens_kept_across_a_crash(tmp_path: Path) -> None:
    storage = f"sqlite:{tmp_path / 'central.db'}"
    token_file = tmp_path / "central.db.operator-token"
    logs = tmp_path / "logs"
    with start_central_process(storage, logs, ["--auth"]) as central:
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        flags = ["--central", central.address, "--operator-token-file", str(token_file)]
        made = _edgekv("token", "create", "--account", ACCOUNT_A, *flags)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert made.stdout == token + "\n" and len(token) == 40  # the token alone
        bad = _edgekv("token", "create", "--account", "nope", *flags)
        assert bad.returncode == 1
        assert bad.stderr.strip() == (
            "edgekv: error: Invalid account id 'nope': expected 32 hexadecimal characters."
        )
        refused = _edgekv("token", "list", "--central", central.address)
        assert refused.returncode == 1 and "needs an API token" in refused.stderr
        listed = _edgekv("token", "list", *flags)
        assert listed.returncode == 0 and ACCOUNT_A in listed.stdout
        assert token not in listed.stdout  # never the secret
        made_kv = _edgekv(
            "kv", "namespace", "create", "data", "--central", central.address,
            env={"EDGEKV_TOKEN": token},
        )  # fmt: skip
        assert made_kv.returncode == 0, made_kv.stderr
        central.kill()  # acknowledged: the token and the namespace survive kill -9
    with start_central_process(storage, logs, ["--auth"]) as central:
        env = {"EDGEKV_TOKEN": token}
        again = _edgekv("kv", "namespace", "list", "--central", central.address, "--token", token)
        assert again.returncode == 0 and "data" in again.stdout, again.stderr
        token_id = listed.stdout.split()[0]
        flags = ["--central", central.address, "--operator-token-file", str(token_file)]
        revoked = _edgekv("token", "revoke", token_id, *flags)
        assert revoked.returncode == 0, revoked.stderr
        after = _edgekv("kv", "namespace", "list", "--central", central.address, env=env)
        assert after.returncode == 1 and "not valid" in after.stderr
        assert "Traceback" not in central.stderr()
