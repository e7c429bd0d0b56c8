"""A docker-compose deployment of a :class:`~edgekv.topology.Topology`.

Theory of operation: :func:`compose_dict` turns a topology into the dict of a
Compose file, with the ``edgekv central`` / ``edgekv edge`` flags of
:mod:`edgekv.node_args`, as the local launcher (:mod:`edgekv.launcher`)
passes them for the same topology, except what only makes sense in
containers: nodes listen on ``0.0.0.0`` (central on 7000, edges on 7100),
central stores in the ``redis`` service (append-only, fsynced on every write, as
central's default ``--durability local`` requires) and keeps its store record
in a volume of its own, edges reach it as ``central:7000``,
and an edge's node name defaults to REGION-HOSTNAME (the container's id) so a
region's service can be scaled to any number of replicas. The ``api`` service
serves Cloudflare's REST API (``edgekv api``) on 7080; central makes its
operator token in its volume at first start, and ``docker compose exec central
edgekv token create --account ID --operator-token-file
/var/lib/edgekv/operator-token`` makes API tokens with it. With central's
``auth`` on, the edges mount that volume read-only and their own calls carry
the operator token. With ``central.replicas`` N > 1 the one ``central`` becomes
``central-1`` … ``central-N`` on the same Redis (each publishing 7000, 7001, …
on the host, each with its own store record in the shared volume), and edges
and the API are given all of them (``--central central-1:7000,central-2:7000``:
calls are spread over them and fail over); ``central-1`` starts first, so
that it alone makes the operator token the others read. Only central
publishes a fixed host port; edges publish 7100 on an ephemeral host port
(``docker compose port edge-REGION 7100``). Key order is fixed, so the same
topology always gives the same file.

Unless the topology turns central's ``auth`` on, nothing edgekv serves over
gRPC is authenticated — central takes any write and deletes any namespace, an
edge's EdgeControl changes its link and flushes its cache (with ``auth`` too)
— so ports are published on the host's loopback address only, unless
``EDGEKV_PUBLISH_ADDRESS`` (read by Compose when it starts the file) names
another, such as ``0.0.0.0`` for every interface. Redis is never published.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from edgekv.locate import ClusterState
from edgekv.node_args import api_args, central_args, edge_args
from edgekv.topology import (
    DEFAULT_API_PORT,
    DEFAULT_CENTRAL_PORT,
    DEFAULT_EDGE_PORT,
    RegionSpec,
    Topology,
)

IMAGE = "edgekv:local"
CENTRAL_PORT = DEFAULT_CENTRAL_PORT
EDGE_PORT = DEFAULT_EDGE_PORT
API_PORT = DEFAULT_API_PORT
REDIS_URL = "redis://redis:6379/0"
# Redis keeps an acknowledged write on disk before it answers: central's default,
# --durability local, checks this and refuses anything weaker.
REDIS_PERSISTENCE = ["--appendonly", "yes", "--appendfsync", "always"]
# Central's record of the store it serves, in a volume of its own, so that a
# restarted central refuses a Redis that was flushed or went back (central.storage.record).
STORE_RECORD_DIR = "/var/lib/edgekv"
STORE_RECORD_PATH = f"{STORE_RECORD_DIR}/store-record.json"
# Central's operator token (made at its first start), in the same volume.
OPERATOR_TOKEN_PATH = f"{STORE_RECORD_DIR}/operator-token"
BUILD = {"context": "..", "dockerfile": "deploy/Dockerfile"}
# The experiment job finds the cluster in a state file that Compose writes from
# an inline config, and leaves its results folder in ../results on the host.
STATE_PATH = "/etc/edgekv/cluster.json"
RESULTS_PATH = "/results"
# --yes: a job has nobody to ask, and 600 simulated s at scale 1 plus setup is more than
# the ten minutes an experiment runs without it; whoever starts the job chose the run.
EXPERIMENT_COMMAND = [
    "experiment", "visibility", "--state", STATE_PATH, "--out", RESULTS_PATH, "--duration", "600",
    "--yes",
]  # fmt: skip
# Give every node the same anchor so scaled clocks agree: EDGEKV_TIME_ANCHOR=$(date +%s).
TIME_ANCHOR_ENV = "${EDGEKV_TIME_ANCHOR:-}"
# The host address ports are published on: loopback, unless the operator says otherwise.
PUBLISH_ADDRESS = "${EDGEKV_PUBLISH_ADDRESS:-127.0.0.1}"


def service_name(region: RegionSpec) -> str:
    return f"edge-{region.name}"


def _healthcheck(test: list[str]) -> dict[str, Any]:
    return {"test": test, "interval": "2s", "timeout": "5s", "retries": 30, "start_period": "5s"}


def _node_health(port: int) -> dict[str, Any]:
    return _healthcheck(["CMD", "edgekv", "health", f"127.0.0.1:{port}"])


def central_services(topology: Topology) -> list[str]:
    """``central`` for one central; ``central-1`` … ``central-N`` for N replicas."""
    replicas = topology.central.replicas
    return ["central"] if replicas == 1 else [f"central-{i}" for i in range(1, replicas + 1)]


def central_target(topology: Topology) -> str:
    """What edges, the API and the state file are given as central: every replica."""
    return ",".join(f"{name}:{CENTRAL_PORT}" for name in central_services(topology))


def central_command(topology: Topology, name: str = "central") -> list[str]:
    """Central stores in the redis service, keeps its record of it in its own volume
    (one record per replica: each records what it acknowledged); its time anchor comes
    from the environment."""
    record = (
        STORE_RECORD_PATH
        if topology.central.replicas == 1
        else f"{STORE_RECORD_DIR}/store-record-{name}.json"
    )
    return [
        *central_args(
            topology,
            listen=f"0.0.0.0:{CENTRAL_PORT}",
            storage=REDIS_URL,
            operator_token_file=OPERATOR_TOKEN_PATH,
        ),
        *("--store-record", record),
    ]


def api_command(topology: Topology) -> list[str]:
    return api_args(listen=f"0.0.0.0:{API_PORT}", central=central_target(topology))


def edge_command(topology: Topology, region: RegionSpec) -> list[str]:
    """A region's edges share one service, so they share its first edge's seed."""
    return edge_args(
        topology,
        region,
        listen=f"0.0.0.0:{EDGE_PORT}",
        central=central_target(topology),
        seed=topology.first_seed(region),
        token_file=OPERATOR_TOKEN_PATH,
    )


def _healthy(*names: str) -> dict[str, Any]:
    return {name: {"condition": "service_healthy"} for name in names}


def compose_dict(topology: Topology) -> dict[str, Any]:
    """The Compose file for ``topology``, as plain dicts, lists and strings."""
    services: dict[str, Any] = {
        "redis": {
            "image": "redis:7-alpine",
            "command": ["redis-server", *REDIS_PERSISTENCE],
            "volumes": ["redis-data:/data"],
            "healthcheck": _healthcheck(["CMD", "redis-cli", "ping"]),
            "restart": "unless-stopped",
        },
    }
    centrals = central_services(topology)
    for index, name in enumerate(centrals):
        # The first replica makes the operator token in the shared volume; the others
        # start after it, and read that token instead of each making one of its own.
        after = ["redis"] if index == 0 else ["redis", centrals[0]]
        services[name] = {
            "build": dict(BUILD),
            "image": IMAGE,
            "command": central_command(topology, name),
            "volumes": [f"central-state:{STORE_RECORD_DIR}"],
            "environment": {
                "EDGEKV_HEALTH_PORT": str(CENTRAL_PORT),
                "EDGEKV_TIME_ANCHOR": TIME_ANCHOR_ENV,
            },
            "ports": [f"{PUBLISH_ADDRESS}:{CENTRAL_PORT + index}:{CENTRAL_PORT}"],
            "depends_on": _healthy(*after),
            "healthcheck": _node_health(CENTRAL_PORT),
            "restart": "unless-stopped",
        }
    services["api"] = {
        "build": dict(BUILD),
        "image": IMAGE,
        "command": api_command(topology),
        "ports": [f"{PUBLISH_ADDRESS}:{API_PORT}:{API_PORT}"],
        "depends_on": _healthy(*centrals),
        "healthcheck": _healthcheck(
            ["CMD", "edgekv", "health", f"http://127.0.0.1:{API_PORT}/healthz"]
        ),
        "restart": "unless-stopped",
    }
    # A region's replicas share the seed of its first edge (their links still diverge:
    # calls differ in timing).
    for region in topology.regions:
        services[service_name(region)] = {
            "build": dict(BUILD),
            "image": IMAGE,
            "command": edge_command(topology, region),
            "environment": {
                "EDGEKV_HEALTH_PORT": str(EDGE_PORT),
                "EDGEKV_TIME_ANCHOR": TIME_ANCHOR_ENV,
            },
            "ports": [f"{PUBLISH_ADDRESS}::{EDGE_PORT}"],  # an ephemeral host port
            "depends_on": _healthy(*centrals),
            "healthcheck": _node_health(EDGE_PORT),
            "deploy": {"replicas": region.edges},
            "restart": "unless-stopped",
        }
        if topology.central.auth:  # the operator token, for the edge's own watches
            services[service_name(region)]["volumes"] = [f"central-state:{STORE_RECORD_DIR}:ro"]
    edges = [service_name(region) for region in topology.regions if region.edges > 0]
    services["experiment"] = {
        "build": dict(BUILD),
        "image": IMAGE,
        "profiles": ["experiment"],
        "command": list(EXPERIMENT_COMMAND),
        "configs": [{"source": "cluster-state", "target": STATE_PATH}],
        "volumes": [f"../results:{RESULTS_PATH}"],
        "depends_on": _healthy(*centrals, *edges),
        "restart": "no",
    }
    return {
        "name": "edgekv",
        "services": services,
        "volumes": {"redis-data": {}, "central-state": {}},
        "configs": {"cluster-state": {"content": cluster_state_json(topology)}},
    }


def cluster_state_json(topology: Topology) -> str:
    """The state file of the Compose cluster, as ``edgekv experiment --state`` reads it.

    Each region is reached through its service name, which Docker's DNS spreads
    over the region's replicas. The time anchor is the one the nodes get
    (Compose fills in ``${EDGEKV_TIME_ANCHOR}``; unset means "null", fine at scale 1).
    """
    state = ClusterState(
        api=f"api:{API_PORT}",
        central=central_target(topology),
        edges={r.name: [f"{service_name(r)}:{EDGE_PORT}"] for r in topology.regions if r.edges},
        nodes={
            service_name(region): {
                "kind": "edge",
                "region": region.name,
                "address": f"{service_name(region)}:{EDGE_PORT}",
                "rtt_ms": region.rtt_ms,
            }
            for region in topology.regions
            if region.edges
        },
        time_scale=topology.time_scale,
    )
    compact = json.dumps(json.loads(state.to_json()), separators=(",", ":"))
    return compact.replace('"time_anchor":null', '"time_anchor":${EDGEKV_TIME_ANCHOR:-null}')


def compose_yaml(topology: Topology, regenerate: str) -> str:
    """The Compose file as YAML, headed by a comment saying how to regenerate it."""
    header = (
        "# Generated by `edgekv deploy compose`; do not edit by hand.\n"
        f"# Regenerate: {regenerate}\n"
        "# Run: docker compose -f deploy/docker-compose.yml up -d  (see deploy/README.md)\n"
    )
    body = yaml.safe_dump(
        compose_dict(topology), sort_keys=False, default_flow_style=False, width=1000
    )
    return header + body
