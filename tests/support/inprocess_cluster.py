"""Central and edges in one process, without sockets, on a manual clock.

Theory of operation: the real :class:`~central.service.CentralStoreService`
over memory storage and real edges (:func:`edge.server.assemble_edge`), wired
through :mod:`edgekv.inprocess`: every call between them — and from the test's
``edgekv.Client`` to them — is serialised and parsed as on the wire and passes
the same error boundary, but nothing listens on a port and nothing waits on
the host's clock. Time moves when the test advances the :class:`ManualClock`;
with the default link (no RTT) a call never sleeps at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import edgekv
from central.server import central_service
from central.service import CentralSettings
from central.storage.memory import MemoryStorage
from edge.node import EdgeNode, EdgePolicy
from edge.server import Edge, EdgeConfig, add_edge_services, assemble_edge
from edge.upstream import RetrySettings
from edgekv.clock import ManualClock
from edgekv.control import EdgeCounters, LinkSettings
from edgekv.core import limits
from edgekv.inprocess import InProcessChannel, InProcessServer
from edgekv.v1 import central_pb2_grpc

# A manual clock only moves when the test moves it, so retries do not back off.
NO_BACKOFF = RetrySettings(initial_backoff_s=0.0)
NO_CLIENT_RETRY = edgekv.RetryPolicy.NONE
_ids = count(1)


def sequential_namespace_id() -> str:
    return f"{next(_ids):032x}"


@dataclass
class InProcessEdge:
    edge: Edge
    client: edgekv.Client
    kv: edgekv.KVNamespace
    # The edge's services, for clients of the test's own making.
    channel: InProcessChannel

    @property
    def node(self) -> EdgeNode:
        return self.edge.node

    @property
    def counters(self) -> EdgeCounters:
        return self.edge.node.counters


@dataclass
class InProcessCluster:
    clock: ManualClock
    central: InProcessServer
    admin: edgekv.Client
    kv: edgekv.KVNamespace
    edges: list[InProcessEdge] = field(default_factory=list)

    @classmethod
    async def start(cls, *, write_rate_limit: bool = False) -> InProcessCluster:
        clock = ManualClock()
        settings = CentralSettings(
            write_rate_limit=write_rate_limit, new_namespace_id=sequential_namespace_id
        )
        service = await central_service(MemoryStorage(), clock, settings)
        server = InProcessServer()
        central_pb2_grpc.add_CentralStoreServicer_to_server(service, server)
        admin = edgekv.Client(central=server.channel())
        namespace = await admin.create_namespace("in-process")
        return cls(clock, server, admin, admin.namespace(namespace.id))

    async def add_edge(
        self,
        region: str = "eu-west",
        *,
        policy: EdgePolicy | None = None,
        link: LinkSettings | None = None,
        retry: RetrySettings = NO_BACKOFF,
        seed: int = 1,
    ) -> InProcessEdge:
        config = EdgeConfig(
            central="in-process",
            region=region,
            node=f"{region}-{len(self.edges) + 1}",
            policy=policy or EdgePolicy(),
            link=link or LinkSettings(),
            retry=retry,
            seed=seed,
        )
        edge = await assemble_edge(config, self.clock, self.central.channel())
        served = InProcessServer(max_receive_bytes=limits.MAX_EDGE_REQUEST_BYTES)
        add_edge_services(edge, served)
        channel = served.channel()
        client = edgekv.Client(edge=channel, retry=NO_CLIENT_RETRY)
        added = InProcessEdge(edge, client, client.namespace(self.kv.id), channel)
        self.edges.append(added)
        return added

    async def close(self) -> None:
        for edge in self.edges:
            await edge.edge.close()
