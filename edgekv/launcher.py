"""Starting a whole cluster as local child processes, and stopping it cleanly.

Theory of operation: :meth:`LocalCluster.start` takes a
:class:`~edgekv.topology.Topology`, picks one time anchor for every node (so
their scaled clocks agree), starts ``edgekv central`` and then every
``edgekv edge`` as child processes on free loopback ports (port 0), each
writing to its own log file, and waits until each has printed its ready line
and answers gRPC health checking. Beside them it starts the REST API node
(``edgekv api``, checked over HTTP) and makes an API token of the default
account for it, with central's operator token (kept in the data dir), which
it revokes when it stops the cluster. With ``tls`` it first makes a throwaway
CA and a certificate for 127.0.0.1 and localhost in ``DATA_DIR/tls``
(:func:`edgekv.tls.make_local_certificates`): every node serves over TLS, every
node that calls another trusts that CA, and the state file names it, so that
``edgekv kv``, ``edgekv status`` and ``edgekv.Client()`` find it there.
Children are started with
:func:`edgekv.process.spawn`: in their own session (a Ctrl-C reaches the
launcher, which stops them in order: edges, then central), and SIGTERMed by
the kernel should the launcher die without cleaning up. :meth:`LocalCluster.stop`
sends SIGTERM, waits, then SIGKILLs stragglers, so no process is left behind.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekv.client import Client
from edgekv.control import NodeControl
from edgekv.core.accounts import DEFAULT_ACCOUNT_ID
from edgekv.core.errors import KVError
from edgekv.locate import ClusterState
from edgekv.node_args import api_args, central_args, edge_args, edgekv_command
from edgekv.operator_token import operator_token
from edgekv.private_files import make_private_dirs
from edgekv.process import (
    Child,
    ProcessIdentity,
    RunsAsChild,
    StartError,
    spawn,
    wait_ready_async,
)
from edgekv.redis_urls import PASSWORD_VARIABLE, split_password
from edgekv.tls import LocalCertificates, client_context, make_local_certificates
from edgekv.topology import Topology


@dataclass
class RunningNode(RunsAsChild):
    name: str
    kind: str  # "central", "edge" or "api"
    region: str
    rtt_ms: float
    child: Child

    @property
    def log_path(self) -> Path:
        return self.child.stdout_path

    def log_tail(self, lines: int = 5) -> str:
        return self.child.tail(lines)


@dataclass
class LocalCluster:
    topology: Topology
    data_dir: Path
    time_anchor: float
    nodes: list[RunningNode] = field(default_factory=list)
    # The API token the launcher made for the API node, and its id (to revoke it).
    api_token: str | None = None
    api_token_id: str | None = None
    # The throwaway CA and the nodes' certificate, when the cluster runs over TLS.
    certificates: LocalCertificates | None = None

    @property
    def tls_ca(self) -> str | None:
        return None if self.certificates is None else str(self.certificates.ca)

    @property
    def tls_cert(self) -> str | None:
        return None if self.certificates is None else str(self.certificates.cert)

    @property
    def tls_key(self) -> str | None:
        return None if self.certificates is None else str(self.certificates.key)

    @property
    def central(self) -> RunningNode:
        """The first of central's replicas."""
        return self.centrals[0]

    @property
    def centrals(self) -> list[RunningNode]:
        """Central's replicas (one, unless the topology asks for more over Redis)."""
        return [node for node in self.nodes if node.kind == "central"]

    @property
    def central_address(self) -> str:
        """Every replica's address, as every ``--central`` takes them: ``A,B,…``."""
        return ",".join(node.address for node in self.centrals)

    @property
    def api(self) -> RunningNode | None:
        return next((node for node in self.nodes if node.kind == "api"), None)

    @property
    def operator_token_file(self) -> Path:
        return self.data_dir / "operator-token"

    @property
    def edges(self) -> list[RunningNode]:
        return [node for node in self.nodes if node.kind == "edge"]

    def edge_in(self, region: str) -> RunningNode:
        for node in self.edges:
            if node.region == region:
                return node
        raise LookupError(f"no edge in region {region!r}")

    @classmethod
    async def start(
        cls, topology: Topology, data_dir: Path, ready_timeout_s: float = 30.0, tls: bool = False
    ) -> LocalCluster:
        make_private_dirs(data_dir / "logs")
        cluster = cls(topology, data_dir, time_anchor=time.time())
        anchor = cluster.time_anchor
        if tls:
            cluster.certificates = make_local_certificates(data_dir / "tls")
        try:
            storage = cluster._storage()
            # Made here, not by the first central to start: replicas starting together
            # would each make one, and all but the last written would be lost.
            operator_token(cluster.operator_token_file)
            replicas = topology.central.replicas
            centrals = [
                cluster._spawn(
                    "central",
                    "central" if replicas == 1 else f"central-{index}",
                    topology.central.region,
                    0.0,
                    central_args(
                        topology,
                        storage=storage,
                        time_anchor=anchor,
                        operator_token_file=str(cluster.operator_token_file),
                        tls_cert=cluster.tls_cert,
                        tls_key=cluster.tls_key,
                    ),
                )
                for index in range(1, replicas + 1)
            ]
            await cluster._wait_ready(centrals, ready_timeout_s)
            central_address = cluster.central_address
            api = cluster._spawn(
                "api",
                "api",
                topology.central.region,
                0.0,
                api_args(
                    central=central_address,
                    tls_cert=cluster.tls_cert,
                    tls_key=cluster.tls_key,
                    tls_ca=cluster.tls_ca,
                ),
            )
            edges = [
                cluster._spawn(
                    "edge",
                    edge.name,
                    edge.region.name,
                    edge.region.rtt_ms,
                    edge_args(
                        topology,
                        edge.region,
                        central=central_address,
                        seed=edge.seed,
                        node=edge.name,
                        time_anchor=anchor,
                        token_file=str(cluster.operator_token_file),
                        tls_cert=cluster.tls_cert,
                        tls_key=cluster.tls_key,
                        tls_ca=cluster.tls_ca,
                    ),
                )
                for edge in topology.edge_nodes()
            ]
            await cluster._wait_ready([api, *edges], ready_timeout_s)
            await cluster._make_api_token()
        except BaseException:
            await cluster.stop()
            raise
        return cluster

    def _storage(self) -> str:
        """Central's storage URL, a relative SQLite path taken inside the data dir."""
        storage = self.topology.central.storage
        scheme, _, rest = storage.partition(":")
        if scheme == "sqlite" and not Path(rest).is_absolute():
            storage = f"sqlite:{self.data_dir / rest}"
        return storage

    def _spawn(
        self, kind: str, name: str, region: str, rtt_ms: float, args: list[str]
    ) -> RunningNode:
        # Every flag of a node can come from an EDGEKV_* variable; the launcher passes
        # what the topology says as flags, and nothing from its own shell may leak in —
        # but the Redis password, which is no flag, and which no command line may show.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
        args, password = _without_password(args)
        password = password or os.environ.get(PASSWORD_VARIABLE)
        if password:
            environment[PASSWORD_VARIABLE] = password
        child = spawn(
            edgekv_command(args),
            self.data_dir / "logs" / f"{name}.log",
            name=name,
            env=environment,
        )
        node = RunningNode(name, kind, region, rtt_ms, child)
        self.nodes.append(node)
        return node

    async def _wait_ready(self, nodes: list[RunningNode], timeout_s: float) -> None:
        await wait_ready_async([node.child for node in nodes], timeout_s)
        await asyncio.gather(
            *(
                (api_healthy if node.kind == "api" else healthy)(
                    node.address, timeout_s, self.tls_ca
                )
                for node in nodes
            )
        )

    def _operator_client(self) -> Client:
        from edgekv.operator_token import read_operator_token

        token = read_operator_token(self.operator_token_file)
        return Client(central=self.central_address, token=token, timeout_s=5.0, tls_ca=self.tls_ca)

    async def _make_api_token(self) -> None:
        client = self._operator_client()
        try:
            self.api_token, info = await client.create_token(DEFAULT_ACCOUNT_ID)
        finally:
            await client.close()
        self.api_token_id = info.token_id

    async def _revoke_api_token(self) -> None:
        """Best effort: a central that is gone cannot be told, and keeps the token."""
        alive = [node for node in self.centrals if node.returncode is None]
        if self.api_token_id is None or not alive:
            return
        client = self._operator_client()
        try:
            await client.revoke_token(self.api_token_id)
        except (KVError, OSError):
            pass
        finally:
            await client.close()
        self.api_token_id = None

    def state(self) -> ClusterState:
        edges: dict[str, list[str]] = {}
        for node in self.edges:
            edges.setdefault(node.region, []).append(node.address)
        return ClusterState(
            central=self.central_address,
            edges=edges,
            nodes={
                node.name: {
                    "kind": node.kind,
                    "region": node.region,
                    "address": node.address,
                    **_identity(node.pid),
                    "rtt_ms": node.rtt_ms,
                    "log": str(node.log_path),
                }
                for node in self.nodes
            },
            launcher_pid=os.getpid(),
            launcher=_identity(os.getpid()),
            time_scale=self.topology.time_scale,
            time_anchor=self.time_anchor,
            api=None if self.api is None else self.api.address,
            account_id=DEFAULT_ACCOUNT_ID if self.api_token else None,
            api_token=self.api_token,
            operator_token_file=str(self.operator_token_file),
            tls_ca=self.tls_ca,
        )

    def exited(self) -> list[RunningNode]:
        return [node for node in self.nodes if node.returncode is not None]

    async def stop(self, grace_s: float = 10.0) -> None:
        """The API node and edges first, then central: SIGTERM, wait, SIGKILL what is left."""
        if self.nodes:
            await self._revoke_api_token()
        for group in (
            [n for n in self.nodes if n.kind != "central"],
            [n for n in self.nodes if n.kind == "central"],
        ):
            await asyncio.gather(*(node.child.stop_async(grace_s) for node in group))


def _without_password(args: list[str]) -> tuple[list[str], str | None]:
    """``args`` with the password taken out of a Redis URL (a node has at most one), and
    that password, which the node then reads from its environment instead."""
    password = None
    bare = []
    for arg in args:
        url, found = split_password(arg)
        bare.append(url)
        password = found or password
    return bare, password


def _identity(pid: int) -> dict[str, object]:
    """The process ``pid`` is now, as the state file records it (``edgekv down`` checks it)."""
    identity = ProcessIdentity.of(pid)
    return {"pid": pid} if identity is None else identity.to_json()


async def api_healthy(address: str, timeout_s: float, tls_ca: str | None = None) -> None:
    """Wait until the API node at ``address`` answers its /healthz with SERVING (over
    HTTPS, trusting ``tls_ca``, when given)."""
    import ssl

    import aiohttp

    deadline = time.monotonic() + timeout_s
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    scheme = "http" if tls_ca is None else "https"
    context: ssl.SSLContext | bool = True if tls_ca is None else client_context(tls_ca)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            try:
                async with session.get(f"{scheme}://{address}/healthz", ssl=context) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise StartError(f"the API node at {address} did not answer its health check")
            await asyncio.sleep(0.05)


async def healthy(address: str, timeout_s: float, tls_ca: str | None = None) -> None:
    """Wait until ``address`` answers gRPC health checking with SERVING (over TLS,
    trusting ``tls_ca``, when given)."""
    async with NodeControl(address, timeout_s=timeout_s, tls_ca=tls_ca) as control:
        try:
            status = await control.serving_status(wait=True)
        except KVError as exc:
            raise StartError(f"{address} did not answer its health check: {exc.message}") from None
    if status != "SERVING":
        raise StartError(f"{address} is not serving ({status})")
