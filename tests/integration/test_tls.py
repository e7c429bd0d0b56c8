"""A cluster over TLS, as real processes: who is served, and who is refused in one line.

Certificates are made with openssl for each module (tests.support.tls): a CA
and a certificate for 127.0.0.1, and an unrelated CA to be the wrong one.
``edgekv central``, ``edgekv edge`` (TLS to its clients and to central) and
``edgekv api`` (HTTPS, TLS to central) run as child processes. A client that
trusts the CA is served — the Python client, ``edgekv kv``, ``edgekv health``,
an HTTPS client of the REST API; a client without the CA, with the wrong CA,
or speaking TLS to a plain server gets one readable line at once, not a hang.
``edgekv up --tls`` does it all by itself.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

import edgekv
from edgekv.client import RetryPolicy
from edgekv.core.accounts import DEFAULT_ACCOUNT_ID
from edgekv.core.errors import ErrorKind, KVError, UsageError
from edgekv.tls import LocalCertificates
from tests.support.central_process import CentralLauncher, CentralProcess, run_central_to_exit
from tests.support.edge_process import EdgeLauncher, EdgeProcess, run_edge_to_exit
from tests.support.node_process import NodeLauncher, NodeProcess, node_command
from tests.support.tls import certificates, client_flags, server_flags

pytestmark = pytest.mark.slow

EDGEKV = [sys.executable, "-m", "edgekv"]
# A refusal must come at once: a client that hangs until its deadline fails this.
REFUSED_WITHIN_S = 3.0


class ApiProcess(NodeProcess):
    kind = "api"


class ApiLauncher(NodeLauncher[ApiProcess]):
    process_type = ApiProcess


@dataclass
class TlsCluster:
    certs: LocalCertificates
    wrong: LocalCertificates
    central: CentralProcess
    plain_central: CentralProcess
    edge: EdgeProcess
    api: ApiProcess


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    root = tmp_path_factory.mktemp("tls")
    certs = certificates(root / "tls")
    wrong = certificates(root / "wrong")
    logs = root / "logs"
    with (
        CentralLauncher(logs) as centrals,
        EdgeLauncher(logs) as edges,
        ApiLauncher(logs) as apis,
    ):
        central = centrals.start("memory:", server_flags(certs), name="central-tls")
        plain = centrals.start("memory:", name="central-plain")
        tls_both_ways = [*server_flags(certs), *client_flags(certs)]
        edge = edges.start(central.address, "eu-west", tls_both_ways)
        api = apis.launch(node_command("api", "--central", central.address, *tls_both_ways))
        yield TlsCluster(certs, wrong, central, plain, edge, api)


def edgekv_cli(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environ["EDGEKV_STATE_FILE"] = "/nonexistent/edgekv-state.json"
    return subprocess.run(
        [*EDGEKV, *args],
        env={**environ, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command that failed as a user's mistake should."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekv: error: "), done.stderr
    return lines[0]


async def test_clients_that_trust_the_ca_are_served(cluster: TlsCluster) -> None:
    ca = str(cluster.certs.ca)
    async with edgekv.Client(
        central=cluster.central.address, edge=cluster.edge.address, tls_ca=ca
    ) as client:
        namespace = (await client.create_namespace("tls")).id
        kv = client.namespace(namespace)
        await kv.put("greeting", "hello over TLS")  # through the edge, to central
        read = await kv.get_with_metadata("greeting")
        assert (read.value, read.cache_status) == ("hello over TLS", "HIT")
        token, _ = await client.create_token(DEFAULT_ACCOUNT_ID)

    # edgekv kv, with the flag and with the environment variable.
    by_flag = edgekv_cli(
        "kv", "key", "get", "greeting", "--namespace-id", namespace, "--text",
        "--region", "eu-west", "--edge", cluster.edge.address, "--tls-ca", ca,
    )  # fmt: skip
    by_variable = edgekv_cli(
        "kv", "key", "get", "greeting", "--namespace-id", namespace, "--text",
        "--central", cluster.central.address, EDGEKV_TLS_CA=ca,
    )  # fmt: skip
    for done in (by_flag, by_variable):
        assert (done.returncode, done.stdout) == (0, "hello over TLS\n"), done.stderr

    # The REST API over HTTPS.
    base = f"https://{cluster.api.address}/client/v4"
    url = f"{base}/accounts/{DEFAULT_ACCOUNT_ID}/storage/kv/namespaces/{namespace}/values/greeting"
    trusting = ssl.create_default_context(cafile=ca)
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {token}"}, ssl=trusting) as answer,
    ):
        assert (answer.status, await answer.text()) == (200, "hello over TLS")

    # Health checks over TLS: a gRPC node and the API node.
    for target in (cluster.edge.address, f"https://{cluster.api.address}/healthz"):
        done = edgekv_cli("health", target, "--tls-ca", ca)
        assert done.returncode == 0 and "SERVING" in done.stdout, done.stderr


async def test_clients_without_the_right_ca_are_refused_at_once_in_one_line(
    cluster: TlsCluster,
) -> None:
    ca, wrong_ca = str(cluster.certs.ca), str(cluster.wrong.ca)
    cases = [
        # (server, CA the client trusts, words the refusal has)
        (cluster.central.address, None, "closed the connection at once"),
        (cluster.edge.address, wrong_ca, "not signed by the CA this client trusts"),
        (cluster.plain_central.address, ca, "the server does not use TLS"),
    ]
    for server, trusted, words in cases:
        started = time.monotonic()
        async with edgekv.Client(central=server, tls_ca=trusted, retry=RetryPolicy.NONE) as client:
            with pytest.raises(KVError) as refused:
                await client.list_namespaces()
        took_s = time.monotonic() - started
        assert refused.value.kind is ErrorKind.UNAVAILABLE
        assert words in refused.value.message, refused.value.message
        assert "\n" not in refused.value.message
        assert took_s < REFUSED_WITHIN_S, (server, trusted, took_s)

    # The same through the command line: one line, exit 1, no traceback.
    line = one_line(edgekv_cli("kv", "namespace", "list", "--central", cluster.central.address))
    assert "--tls-ca" in line, line
    line = one_line(edgekv_cli("health", cluster.plain_central.address, "--tls-ca", ca))
    assert "does not use TLS" in line, line

    # An HTTPS client that does not trust the CA is refused by its own TLS.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"https://{cluster.api.address}/healthz")


def test_an_edge_refuses_to_start_without_the_ca_of_a_tls_central(
    cluster: TlsCluster, tmp_path: Path
) -> None:
    for extra, words in (
        ([], "--tls-ca"),
        (["--tls-ca", str(cluster.wrong.ca)], "not signed by the CA"),
    ):
        exit_ = run_edge_to_exit(cluster.central.address, "eu-west", tmp_path, extra)
        assert exit_.returncode == 1, exit_.stderr
        [line] = exit_.stderr.splitlines()
        assert line.startswith("edgekv: error: cannot reach the central store at"), line
        assert words in line, line


def test_tls_files_are_checked_at_start_in_one_line(cluster: TlsCluster, tmp_path: Path) -> None:
    certs, wrong = cluster.certs, cluster.wrong
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cases = [
        (["--tls-cert", str(certs.cert)], "--tls-cert needs --tls-key too"),
        (["--tls-key", str(certs.key)], "--tls-key needs --tls-cert too"),
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(certs.key)], "cannot read"),
        # A certificate and someone else's key.
        (["--tls-cert", str(certs.cert), "--tls-key", str(wrong.key)], "key values mismatch"),
        (["--tls-cert", str(not_pem), "--tls-key", str(certs.key)], "not a PEM certificate"),
    ]
    # Each is a Python process that exits at once: all of them at the same time.
    with ThreadPoolExecutor(len(cases) + 1) as pool:
        edge_exit = pool.submit(
            run_edge_to_exit,
            cluster.central.address,
            "eu-west",
            tmp_path,
            ["--tls-ca", str(not_pem)],
        )
        exits = list(
            pool.map(lambda case: run_central_to_exit("memory:", tmp_path, case[0]), cases)
        )
    for (flags, words), exit_ in zip(cases, exits, strict=True):
        assert exit_.returncode == 1, (flags, exit_.stderr)
        [line] = exit_.stderr.splitlines()
        assert line.startswith("edgekv: error: ") and words in line, (flags, line)
    assert edge_exit.result().stderr.splitlines() == [
        f"edgekv: error: --tls-ca {not_pem}: not a PEM CA certificate (no certificate or crl found)"
    ]
    with pytest.raises(UsageError, match="cannot read it"):
        edgekv.Client(central=cluster.central.address, tls_ca=tmp_path / "missing.crt")


TOPOLOGY = """
time_scale = 10.0
[[regions]]
name = "eu-west"
rtt_ms = 20
"""


def test_up_tls_runs_the_cluster_over_tls_and_its_clients_find_the_ca(tmp_path: Path) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text(TOPOLOGY)
    state_file = tmp_path / "state" / "cluster.json"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    environ["EDGEKV_STATE_FILE"] = str(state_file)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*EDGEKV, *args], env=environ, capture_output=True, text=True, timeout=60, check=False
        )

    up = run("up", "--tls", "--detach", "--topology", str(topology), "--data-dir", str(tmp_path))
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads(state_file.read_text())
        assert state["tls_ca"] == str(tmp_path / "tls" / "ca.crt")
        status = run("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SERVING") == 3, status.stdout  # central, api, edge
        assert f"https://{state['api']}/client/v4" in status.stdout
        # edgekv kv finds central and its CA in the state file; through the edge too.
        created = run("kv", "namespace", "create", "tls-up")
        assert created.returncode == 0, created.stderr
        namespace = next(
            line.split('"')[1] for line in created.stdout.splitlines() if "id =" in line
        )
        put = run("kv", "key", "put", "k", "v", "--namespace-id", namespace)
        assert put.returncode == 0, put.stderr
        get = run(
            "kv", "key", "get", "k", "--namespace-id", namespace, "--region", "eu-west", "--text"
        )
        assert (get.returncode, get.stdout) == (0, "v\n"), get.stderr
        exports = run("env").stdout
        assert f"https://{state['api']}/client/v4" in exports
        assert f"NODE_EXTRA_CA_CERTS={tmp_path / 'tls' / 'ca.crt'}" in exports
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
