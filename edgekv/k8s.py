"""A Kubernetes deployment of a :class:`~edgekv.topology.Topology`: manifests for ``kubectl``.

Theory of operation: :func:`manifests` turns a topology into files of
Kubernetes objects (plain dicts), one file per component, and
:func:`render` writes them as YAML with a ``kustomization.yaml`` beside them,
so that ``kubectl apply -k DIR`` applies them. Every node's command line comes
from :mod:`edgekv.node_args`, as the local launcher's and the compose file's
do, so the three cannot drift apart; what only makes sense in a cluster is a
parameter: nodes listen on ``0.0.0.0``, find one another by Service name,
and take their TLS files and operator token from Secrets.

The shape:

- **central**: a Deployment of ``central.replicas`` stateless replicas (the
  topology's, or ``--central-replicas``), all on one Redis: the in-cluster
  one — a StatefulSet running Redis with ``appendonly yes`` and
  ``appendfsync always`` (what central's default ``--durability local``
  checks) on a PersistentVolumeClaim, reachable from central's pods only (a
  NetworkPolicy) — unless the topology's storage is a Redis URL of its own
  (``redis://``, ``rediss://``, ``redis+sentinel://``), which is then used
  as it is. A ``sqlite:`` (or ``memory:``) storage becomes the in-cluster
  Redis: a SQLite file has one writer and dies with its pod's disk, while
  replicas that come and go need a store they share. Two Services: ``central``
  (a ClusterIP) and ``central-headless`` (``clusterIP: None``), whose DNS name
  resolves to every ready replica, so that with several replicas edges and the
  API dial ``dns:///central-headless:7000`` and gRPC's round_robin spreads
  calls over all of them and fails over (a ClusterIP balances connections,
  and a gRPC client keeps one). Replicas spread over hosts when they can
  (topologySpreadConstraints), and a PodDisruptionBudget lets a drain take one
  at a time. Each keeps its store record (``--store-record``) in an emptyDir:
  it outlives a container restart, not the pod.
- **edges**: a Deployment per region (``replicas`` = the region's edges, its
  link settings in its flags) and a Service ``edge-REGION`` in front of it;
  a region's replicas share its first edge's seed and name themselves
  REGION-HOSTNAME, as in the compose file.
- **api**: the REST API node (``edgekv api``) and its Service, as compose has it.
- **the cluster description**: a ConfigMap ``edgekv-cluster`` whose
  ``cluster.json`` is a state file (:class:`~edgekv.locate.ClusterState`)
  naming the Services, which ``edgekv status --state``, ``edgekv kv`` (through
  ``EDGEKV_STATE_FILE``) and the experiments read, mounted in the API's pod and
  the experiment's, or copied out with ``kubectl get configmap``.
- **the experiment**: a Job running compose's experiment command on that state
  file, writing its results to a PersistentVolumeClaim; it is a kustomization
  of its own (``experiment/``), applied once the cluster is up, as compose
  keeps it behind a profile.

Probes are gRPC-native (``grpc: {port}``, the nodes serve ``grpc.health.v1``)
and an HTTP ``GET /healthz`` for the API. The kubelet's gRPC probe of Kubernetes
1.31 speaks plaintext only, so with TLS, which is the default, central and the
edges also serve the health service alone, in plain gRPC, on a port of its own
(``--health-listen``, the main port + 1), and the probes ask there. With TLS,
servers take ``--tls-cert`` and ``--tls-key`` and clients ``--tls-ca`` from the
Secret ``edgekv-tls`` (keys ``tls.crt``, ``tls.key``, ``ca.crt``) mounted at
``/etc/edgekv/tls``. The operator token is the Secret ``edgekv-operator`` (key
``operator-token``), made once by whoever deploys, so that every replica accepts
the same one (each making its own at first start, as one central does, would
give as many operators as replicas). Neither Secret is generated: a secret has
no place in files that get committed. Every pod runs as a non-root user with a
read-only root file system, no capabilities, no privilege escalation, the
runtime's seccomp profile and no service-account token, which the ``restricted``
Pod Security Standard the namespace enforces asks for.

Output is deterministic: keys come in a fixed order (``apiVersion``, ``kind``,
``metadata``, ``spec``, as Kubernetes writes them), so the same topology always
gives the same files.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from edgekv.compose import EXPERIMENT_COMMAND, REDIS_PERSISTENCE, RESULTS_PATH, STATE_PATH
from edgekv.core.errors import UsageError
from edgekv.locate import ClusterState
from edgekv.node_args import api_args, central_args, edge_args
from edgekv.redis_urls import PASSWORD_VARIABLE
from edgekv.topology import (
    DEFAULT_API_PORT,
    DEFAULT_CENTRAL_PORT,
    DEFAULT_EDGE_PORT,
    MiB,
    RegionSpec,
    Topology,
)

NAMESPACE = "edgekv"
# The image deploy/Dockerfile builds (compose's), and the Redis compose runs.
IMAGE = "edgekv:local"
REDIS_IMAGE = "redis:7-alpine"
CENTRAL_PORT = DEFAULT_CENTRAL_PORT
EDGE_PORT = DEFAULT_EDGE_PORT
API_PORT = DEFAULT_API_PORT
REDIS_PORT = 6379
IN_CLUSTER_REDIS_URL = f"redis://redis:{REDIS_PORT}/0"
REDIS_VOLUME_SIZE = "1Gi"
RESULTS_VOLUME_SIZE = "1Gi"
# The users the images run as: deploy/Dockerfile's edgekv, and the redis image's redis.
EDGEKV_UID = 10001
REDIS_UID = 999
# Secrets the deployment uses and does not make (deploy/README.md says how).
TLS_SECRET = "edgekv-tls"
TLS_DIR = "/etc/edgekv/tls"
TLS_CERT = f"{TLS_DIR}/tls.crt"
TLS_KEY = f"{TLS_DIR}/tls.key"
TLS_CA = f"{TLS_DIR}/ca.crt"
OPERATOR_SECRET = "edgekv-operator"
OPERATOR_KEY = "operator-token"
OPERATOR_DIR = "/etc/edgekv/operator"
OPERATOR_TOKEN_PATH = f"{OPERATOR_DIR}/{OPERATOR_KEY}"
# An external Redis's password, if it has one (optional: a Redis without one needs none).
REDIS_SECRET = "edgekv-redis"
REDIS_SECRET_KEY = "password"
# Secret files are root's; the pods' fsGroup may read them (0440), nobody else.
SECRET_FILE_MODE = 0o440
CLUSTER_CONFIGMAP = "edgekv-cluster"
STATE_KEY = "cluster.json"
STORE_RECORD_DIR = "/var/lib/edgekv"
STORE_RECORD_PATH = f"{STORE_RECORD_DIR}/store-record.json"
TMP_DIR = "/tmp"
EXPERIMENT_JOB = "experiment"
RESULTS_CLAIM = "experiment-results"
EXPERIMENT_DIR = "experiment"
KUSTOMIZATION = "kustomization.yaml"
# The first line of every file this module writes: how stale files of an earlier run are
# told from anyone else's (write_files removes only these).
GENERATED_LINE = "# Generated by `edgekv deploy k8s`; do not edit by hand."
# Largest central.replicas a deployment takes: the topology file's bound.
MAX_CENTRAL_REPLICAS = 16


@dataclass(frozen=True)
class Options:
    """What a deployment adds to its topology."""

    tls: bool = True
    # One Unix time every node's scaled clock starts from; needed unless time runs at 1.
    time_anchor: float | None = None


@dataclass(frozen=True)
class Manifest:
    """One file: its path inside the output folder, its objects, and a note for its head."""

    path: str
    objects: tuple[dict[str, Any], ...]
    note: str = ""


def with_central_replicas(topology: Topology, replicas: int | None) -> Topology:
    """``topology`` with ``replicas`` central replicas (a deployment's own Redis serves
    them, whatever storage the topology names for local runs)."""
    if replicas is None:
        return topology
    if not 1 <= replicas <= MAX_CENTRAL_REPLICAS:
        raise UsageError(
            f"--central-replicas must be from 1 to {MAX_CENTRAL_REPLICAS}, got {replicas}"
        )
    return replace(topology, central=replace(topology.central, replicas=replicas))


# -- what central stores in -----------------------------------------------------------------


REDIS_SCHEMES = ("redis", "rediss", "redis+sentinel")


def external_redis(topology: Topology) -> str | None:
    """The topology's own Redis URL for central, without its password; None when central
    gets the in-cluster Redis (any storage that is not a Redis URL)."""
    storage = topology.central.storage
    if urlsplit(storage).scheme not in REDIS_SCHEMES:
        return None
    return _reachable_url(storage, "central.storage")


def _reachable_url(url: str, field: str) -> str:
    """A Redis URL fit for a manifest: its password left out (pods get it from the Secret
    edgekv-redis; a manifest is no place for one), and not a loopback address, which in
    a pod is the pod itself."""
    if any(_is_loopback(host) for host in _hosts(url)):
        raise UsageError(
            f"{field}: {_without_password(url)} is this machine's loopback address, and "
            "inside a pod that is the pod itself: name a Redis the pods can reach "
            "(or sqlite: storage, for the deployment's own Redis)"
        )
    return _without_password(url)


def _hosts(url: str) -> list[str]:
    """The hosts of a Redis URL: one, or a Sentinel URL's several (``h1:p1,h2:p2``)."""
    hosts = []
    for item in urlsplit(url).netloc.rpartition("@")[2].split(","):
        if item.startswith("["):  # [IPv6]:PORT
            hosts.append(item[1:].partition("]")[0])
        else:
            hosts.append(item.partition(":")[0])
    return hosts


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}" if user else hosts))


def central_target(topology: Topology) -> str:
    """What edges, the API and the state file dial: the one replica's Service, or every
    replica's address through the headless Service (gRPC's round_robin, failing over)."""
    if topology.central.replicas == 1:
        return f"central:{CENTRAL_PORT}"
    return f"dns:///central-headless:{CENTRAL_PORT}"


def edge_service(region: RegionSpec) -> str:
    return f"edge-{region.name}"


# -- pieces every workload shares -------------------------------------------------------------


def _labels(component: str, **more: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "edgekv", "app.kubernetes.io/component": component, **more}


def _region_labels(region: RegionSpec) -> dict[str, str]:
    return _labels("edge", **{"edgekv/region": region.name})


def _metadata(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": dict(labels)}


def _pod_spec(
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    *,
    uid: int = EDGEKV_UID,
    more: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod that needs nothing of the Kubernetes API, sees no Service variables (it finds
    Services by DNS), and runs as ``uid``, whose group (fsGroup) may read its Secrets and
    write its volumes; ``more`` adds fields of the pod's spec."""
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        **(more or {}),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        **({"volumes": volumes} if volumes else {}),
    }


CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _container(
    name: str,
    image: str,
    args: list[str],
    *,
    ports: list[dict[str, Any]] | None = None,
    env: list[dict[str, Any]] | None = None,
    probes: dict[str, Any] | None = None,
    resources: dict[str, Any],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    container["args"] = args
    if env:
        container["env"] = env
    if ports:
        container["ports"] = ports
    container.update(probes or {})
    container["resources"] = resources
    container["securityContext"] = dict(CONTAINER_SECURITY)
    container["volumeMounts"] = mounts
    return container


def _mebibytes(size_bytes: int) -> str:
    return f"{math.ceil(size_bytes / MiB)}Mi"


def _resources(
    cpu_request: str, memory_request_bytes: int, cpu_limit: str, memory_limit_bytes: int
) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu_request, "memory": _mebibytes(memory_request_bytes)},
        "limits": {"cpu": cpu_limit, "memory": _mebibytes(memory_limit_bytes)},
    }


# An idle node holds about 50 MiB (measured: central, an edge, the API, each one Python
# process with gRPC or aiohttp loaded). Central and an edge use one core at most (the
# GIL); a limit of one core costs them nothing and keeps a runaway from the node's others.
CENTRAL_RESOURCES = _resources("250m", 128 * MiB, "1", 512 * MiB)
API_RESOURCES = _resources("100m", 128 * MiB, "1", 256 * MiB)
REDIS_RESOURCES = _resources("100m", 128 * MiB, "1", 1024 * MiB)
EXPERIMENT_RESOURCES = _resources("500m", 512 * MiB, "2", 2048 * MiB)
EDGE_BASE_MEMORY_BYTES = 128 * MiB
EDGE_HEADROOM_BYTES = 256 * MiB


def _edge_resources(region: RegionSpec) -> dict[str, Any]:
    """An edge's memory grows with its cache when the cache is in its memory: the cache
    counts its values' bytes, and Python's objects and dicts around them take about as
    much again, hence twice the cache in the limit."""
    cache = region.edge.cache_max_bytes if region.edge.cache == "memory" else 0
    return _resources("100m", EDGE_BASE_MEMORY_BYTES + cache, "1", EDGE_HEADROOM_BYTES + 2 * cache)


def health_port(port: int, tls: bool) -> int:
    """Where the kubelet asks a gRPC node's health: its own port, or with TLS (which the
    kubelet's gRPC probe does not speak) the plain health port beside it."""
    return port + 1 if tls else port


def health_args(port: int, tls: bool) -> list[str]:
    """``--health-listen`` for a node served over TLS (see :func:`health_port`)."""
    return ["--health-listen", f"0.0.0.0:{port + 1}"] if tls else []


def _grpc_probes(port: int) -> dict[str, Any]:
    """Readiness (in the Services' endpoints or not) and liveness (restart) of a gRPC node:
    the kubelet asks grpc.health.v1 at ``port`` itself."""
    action = {"grpc": {"port": port}}
    ready_period_s, live_period_s, timeout_s = 5, 10, 2
    return {
        "readinessProbe": {
            **action,
            "periodSeconds": ready_period_s,
            "timeoutSeconds": timeout_s,
            "failureThreshold": 3,
        },
        # Restart only a node that stays unhealthy for a minute: a Redis that is loading,
        # or a central that is busy, is not fixed by a restart.
        "livenessProbe": {
            **action,
            "initialDelaySeconds": 10,
            "periodSeconds": live_period_s,
            "timeoutSeconds": timeout_s,
            "failureThreshold": max(3, 60 // live_period_s),
        },
    }


def _grpc_ports(port: int, tls: bool) -> list[dict[str, Any]]:
    """A gRPC node's container ports: its own, and with TLS its plain health port."""
    return [_port("grpc", port), *([_port("health", port + 1)] if tls else [])]


def _http_probes(port: int, tls: bool) -> dict[str, Any]:
    """The API node's /healthz: the kubelet's HTTP probe speaks HTTPS (checking no
    certificate), so it stays native with TLS."""
    action = {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTPS" if tls else "HTTP"}}
    return {
        "readinessProbe": {
            **action,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            **action,
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 6,
        },
    }


def _port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "containerPort": port, "protocol": "TCP"}


def _tmp() -> tuple[dict[str, Any], dict[str, Any]]:
    """A writable /tmp on a read-only root file system."""
    return (
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "tmp", "mountPath": TMP_DIR},
    )


def _tls_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": SECRET_FILE_MODE}},
        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
    )


def _operator_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    secret = {
        "secretName": OPERATOR_SECRET,
        "defaultMode": SECRET_FILE_MODE,
        "items": [{"key": OPERATOR_KEY, "path": OPERATOR_KEY}],
    }
    return (
        {"name": "operator", "secret": secret},
        {"name": "operator", "mountPath": OPERATOR_DIR, "readOnly": True},
    )


def _state_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster description, as the file compose's experiment reads."""
    return (
        {"name": "cluster", "configMap": {"name": CLUSTER_CONFIGMAP}},
        {"name": "cluster", "mountPath": STATE_PATH, "subPath": STATE_KEY, "readOnly": True},
    )


def _volumes(*pairs: tuple[dict[str, Any], dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    return [volume for volume, _ in pairs], [mount for _, mount in pairs]


def _redis_password_env() -> list[dict[str, Any]]:
    """An external Redis's password from the Secret edgekv-redis, if it exists."""
    source = {"name": REDIS_SECRET, "key": REDIS_SECRET_KEY, "optional": True}
    return [{"name": PASSWORD_VARIABLE, "valueFrom": {"secretKeyRef": source}}]


def _service(
    name: str, labels: dict[str, str], port_name: str, port: int, *, headless: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": "None"} if headless else {"type": "ClusterIP"}
    spec["selector"] = dict(labels)
    spec["ports"] = [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, labels),
        "spec": spec,
    }


def _deployment(
    name: str, labels: dict[str, str], replicas: int, pod: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


# -- the objects ----------------------------------------------------------------------------


def namespace() -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "edgekv",
        # The API server refuses any pod of this namespace that breaks the restricted
        # Pod Security Standard; every pod here keeps it.
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "v1.31",
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels},
    }


def cluster_state(topology: Topology, options: Options) -> ClusterState:
    """The state file of the deployed cluster: every address a Service's name, which only
    resolves inside the cluster (or in the namespace)."""
    edges = [region for region in topology.regions if region.edges]
    nodes: dict[str, dict[str, object]] = {
        "central": {
            "kind": "central",
            "region": topology.central.region,
            "address": f"central:{CENTRAL_PORT}",
            "rtt_ms": 0.0,
        },
        "api": {
            "kind": "api",
            "region": topology.central.region,
            "address": f"api:{API_PORT}",
            "rtt_ms": 0.0,
        },
    }
    for region in edges:
        nodes[edge_service(region)] = {
            "kind": "edge",
            "region": region.name,
            "address": f"{edge_service(region)}:{EDGE_PORT}",
            "rtt_ms": region.rtt_ms,
        }
    return ClusterState(
        central=central_target(topology),
        edges={region.name: [f"{edge_service(region)}:{EDGE_PORT}"] for region in edges},
        nodes=nodes,
        time_scale=topology.time_scale,
        time_anchor=options.time_anchor,
        api=f"api:{API_PORT}",
        tls_ca=TLS_CA if options.tls else None,
    )


def cluster_configmap(topology: Topology, options: Options) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(CLUSTER_CONFIGMAP, _labels("cluster")),
        "data": {STATE_KEY: cluster_state(topology, options).to_json() + "\n"},
    }


def redis_objects() -> tuple[dict[str, Any], ...]:
    """The in-cluster Redis: every acknowledged write on its disk before it answers."""
    labels = _labels("redis")
    data = {"name": "data", "mountPath": "/data"}
    container = _container(
        "redis",
        REDIS_IMAGE,
        ["redis-server", *REDIS_PERSISTENCE],
        ports=[_port("redis", REDIS_PORT)],
        probes={
            "readinessProbe": {
                "exec": {"command": ["redis-cli", "ping"]},
                "periodSeconds": 5,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            },
            "livenessProbe": {
                "tcpSocket": {"port": REDIS_PORT},
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
                "timeoutSeconds": 2,
                "failureThreshold": 6,
            },
        },
        resources=REDIS_RESOURCES,
        mounts=[data],
    )
    claim = {
        "metadata": {"name": "data", "labels": dict(labels)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": REDIS_VOLUME_SIZE}},
        },
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata("redis", labels),
        "spec": {
            "serviceName": "redis",
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec([container], [], uid=REDIS_UID),
            },
            "volumeClaimTemplates": [claim],
        },
    }
    # Nothing but central talks to Redis: it holds every key and value, unauthenticated.
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata("redis", labels),
        "spec": {
            "podSelector": {"matchLabels": dict(labels)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": _labels("central")}}],
                    "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                }
            ],
        },
    }
    service = _service("redis", labels, "redis", REDIS_PORT, headless=True)
    return service, statefulset, policy


def central_objects(topology: Topology, options: Options) -> tuple[dict[str, Any], ...]:
    labels = _labels("central")
    external = external_redis(topology)
    tls = {"tls_cert": TLS_CERT, "tls_key": TLS_KEY} if options.tls else {}
    args = [
        *central_args(
            topology,
            listen=f"0.0.0.0:{CENTRAL_PORT}",
            storage=external or IN_CLUSTER_REDIS_URL,
            time_anchor=options.time_anchor,
            operator_token_file=OPERATOR_TOKEN_PATH,
            **tls,
        ),
        *("--store-record", STORE_RECORD_PATH),
        *health_args(CENTRAL_PORT, options.tls),
    ]
    record = (
        {"name": "state", "emptyDir": {"sizeLimit": "16Mi"}},
        {"name": "state", "mountPath": STORE_RECORD_DIR},
    )
    pairs = [_tmp(), record, _operator_volume(), *([_tls_volume()] if options.tls else [])]
    volumes, mounts = _volumes(*pairs)
    container = _container(
        "central",
        IMAGE,
        args,
        ports=_grpc_ports(CENTRAL_PORT, options.tls),
        env=_redis_password_env() if external else None,
        probes=_grpc_probes(health_port(CENTRAL_PORT, options.tls)),
        resources=CENTRAL_RESOURCES,
        mounts=mounts,
    )
    replicas = topology.central.replicas
    spread: dict[str, Any] = {
        # Replicas on different hosts survive one host's loss; on a one-node cluster they
        # still start (ScheduleAnyway).
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(labels)},
            }
        ]
    }
    pod = _pod_spec([container], volumes, more=spread if replicas > 1 else None)
    objects = [
        _service("central", labels, "grpc", CENTRAL_PORT),
        _service("central-headless", labels, "grpc", CENTRAL_PORT, headless=True),
        _deployment("central", labels, replicas, pod),
    ]
    if replicas > 1:
        objects.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _metadata("central", labels),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(labels)}},
            }
        )
    return tuple(objects)


def api_objects(topology: Topology, options: Options) -> tuple[dict[str, Any], ...]:
    labels = _labels("api")
    tls = {"tls_cert": TLS_CERT, "tls_key": TLS_KEY, "tls_ca": TLS_CA} if options.tls else {}
    args = api_args(central=central_target(topology), listen=f"0.0.0.0:{API_PORT}", **tls)
    volumes, mounts = _volumes(_tmp(), _state_volume(), *([_tls_volume()] if options.tls else []))
    port_name = "https" if options.tls else "http"
    container = _container(
        "api",
        IMAGE,
        args,
        ports=[_port(port_name, API_PORT)],
        # The API's pod doubles as the place to run edgekv against the cluster from
        # inside it: `kubectl exec deploy/api -- edgekv status` finds the state file.
        env=_tool_env(options),
        probes=_http_probes(API_PORT, options.tls),
        resources=API_RESOURCES,
        mounts=mounts,
    )
    return (
        _service("api", labels, port_name, API_PORT),
        _deployment("api", labels, 1, _pod_spec([container], volumes)),
    )


def _tool_env(options: Options) -> list[dict[str, Any]]:
    """What edgekv's client commands in a pod need: the state file, and the CA."""
    env = [{"name": "EDGEKV_STATE_FILE", "value": STATE_PATH}]
    if options.tls:
        env.append({"name": "EDGEKV_TLS_CA", "value": TLS_CA})
    return env


def edge_objects(
    topology: Topology, region: RegionSpec, options: Options
) -> tuple[dict[str, Any], ...]:
    """A region's edges: its replicas share its first edge's seed (as in compose)."""
    labels = _region_labels(region)
    auth = topology.central.auth
    tls = {"tls_cert": TLS_CERT, "tls_key": TLS_KEY, "tls_ca": TLS_CA} if options.tls else {}
    args = edge_args(
        topology,
        region,
        listen=f"0.0.0.0:{EDGE_PORT}",
        central=central_target(topology),
        seed=topology.first_seed(region),
        time_anchor=options.time_anchor,
        # With central's auth on, an edge's own calls (its watches) carry the operator token.
        token_file=OPERATOR_TOKEN_PATH if auth else None,
        **tls,
    ) + health_args(EDGE_PORT, options.tls)
    extra = (*([_operator_volume()] if auth else []), *([_tls_volume()] if options.tls else []))
    volumes, mounts = _volumes(_tmp(), *extra)
    external_cache = urlsplit(region.edge.cache).scheme in REDIS_SCHEMES
    container = _container(
        "edge",
        IMAGE,
        args,
        ports=_grpc_ports(EDGE_PORT, options.tls),
        env=_redis_password_env() if external_cache else None,
        probes=_grpc_probes(health_port(EDGE_PORT, options.tls)),
        resources=_edge_resources(region),
        mounts=mounts,
    )
    name = edge_service(region)
    return (
        _service(name, labels, "grpc", EDGE_PORT),
        _deployment(name, labels, region.edges, _pod_spec([container], volumes)),
    )


def experiment_objects(topology: Topology, options: Options) -> tuple[dict[str, Any], ...]:
    """Compose's experiment job: the visibility experiment on the running cluster, which
    it finds in the state file; its results folder on a volume that outlives the pod."""
    labels = _labels("experiment")
    results = (
        {"name": "results", "persistentVolumeClaim": {"claimName": RESULTS_CLAIM}},
        {"name": "results", "mountPath": RESULTS_PATH},
    )
    pairs = [_tmp(), _state_volume(), results, *([_tls_volume()] if options.tls else [])]
    volumes, mounts = _volumes(*pairs)
    # Matplotlib keeps a font cache; the root file system is read-only.
    env = [*_tool_env(options), {"name": "MPLCONFIGDIR", "value": f"{TMP_DIR}/matplotlib"}]
    if topology.central.auth:  # central refuses calls without a token
        source = {"name": OPERATOR_SECRET, "key": OPERATOR_KEY}
        env.append({"name": "EDGEKV_TOKEN", "valueFrom": {"secretKeyRef": source}})
    container = _container(
        "experiment",
        IMAGE,
        list(EXPERIMENT_COMMAND),
        env=env,
        resources=EXPERIMENT_RESOURCES,
        mounts=mounts,
    )
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(RESULTS_CLAIM, labels),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": RESULTS_VOLUME_SIZE}},
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(EXPERIMENT_JOB, labels),
        "spec": {
            # A failed run leaves nothing behind and says why in its log; running it again
            # unasked would take as long again and say the same.
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec([container], volumes, more={"restartPolicy": "Never"}),
            },
        },
    }
    return claim, job


# -- the files ------------------------------------------------------------------------------


def manifests(topology: Topology, options: Options) -> list[Manifest]:
    """Every file but the kustomizations, in the order ``kubectl apply -k`` lists them."""
    if topology.time_scale != 1 and options.time_anchor is None:
        raise UsageError(
            f"time scale {topology.time_scale:g} needs --time-anchor UNIX_S, so that every "
            "pod's scaled clock starts from the same instant (e.g. --time-anchor $(date +%s))"
        )
    if options.time_anchor is not None and not 0 <= options.time_anchor < math.inf:
        raise UsageError(f"--time-anchor must be a Unix time, got {options.time_anchor:g}")
    for region in topology.regions:
        if urlsplit(region.edge.cache).scheme in REDIS_SCHEMES:
            _reachable_url(region.edge.cache, f"region {region.name}: cache")
    topology = _without_passwords(topology)
    files = [
        Manifest("namespace.yaml", (namespace(),)),
        Manifest("cluster.yaml", (cluster_configmap(topology, options),)),
    ]
    if external_redis(topology) is None:
        note = (
            f"Central's storage: the topology says {topology.central.storage} (for local "
            "runs); in Kubernetes central's replicas\n# share this Redis instead, on a volume "
            "that outlives their pods (deploy/README.md says why)."
        )
        files.append(Manifest("redis.yaml", redis_objects(), note))
    files.append(Manifest("central.yaml", central_objects(topology, options)))
    files.append(Manifest("api.yaml", api_objects(topology, options)))
    for region in topology.regions:
        files.append(
            Manifest(f"{edge_service(region)}.yaml", edge_objects(topology, region, options))
        )
    files.append(
        Manifest(f"{EXPERIMENT_DIR}/experiment.yaml", experiment_objects(topology, options))
    )
    return files


def _without_passwords(topology: Topology) -> Topology:
    """The topology with no password in its Redis URLs: pods read it from a Secret."""
    central = replace(topology.central, storage=_without_password(topology.central.storage))
    regions = tuple(
        replace(region, edge=replace(region.edge, cache=_without_password(region.edge.cache)))
        for region in topology.regions
    )
    return replace(topology, central=central, regions=regions)


def kustomization(resources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": resources,
        # Where the image comes from: `kustomize edit set image edgekv=REGISTRY/edgekv:TAG`.
        "images": [{"name": "edgekv", "newName": "edgekv", "newTag": "local"}],
    }


class _Dumper(yaml.SafeDumper):
    """Compose's YAML style, with multi-line strings (the state file) as literal blocks,
    and every value written out where it is (no &anchors and *aliases for the dicts
    that probes share)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str:
    """One YAML document per object, each opened by ``---``."""
    return yaml.dump_all(
        objects,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
        explicit_start=True,
    )


def _kustomization_yaml(resources: list[str]) -> str:
    return yaml.dump(
        kustomization(resources), Dumper=_Dumper, sort_keys=False, default_flow_style=False
    )


def render_files(
    topology: Topology, options: Options, regenerate: str, output: str
) -> dict[str, str]:
    """Every file of the deployment, path (inside the output folder) to text."""
    header = f"{GENERATED_LINE}\n# Regenerate: {regenerate}\n"
    files = manifests(topology, options)
    texts: dict[str, str] = {}
    for manifest in files:
        note = f"# {manifest.note}\n" if manifest.note else ""
        texts[manifest.path] = header + note + to_yaml(manifest.objects)
    main = [m.path for m in files if "/" not in m.path]
    experiment = [
        m.path.removeprefix(f"{EXPERIMENT_DIR}/")
        for m in files
        if m.path.startswith(EXPERIMENT_DIR)
    ]
    apply_main = f"# Apply: kubectl apply -k {output}  (after its Secrets; see deploy/README.md)\n"
    apply_job = (
        f"# Apply: kubectl apply -k {output}/{EXPERIMENT_DIR}  (once the cluster is ready)\n"
    )
    texts[KUSTOMIZATION] = header + apply_main + _kustomization_yaml(main)
    texts[f"{EXPERIMENT_DIR}/{KUSTOMIZATION}"] = (
        header + apply_job + _kustomization_yaml(experiment)
    )
    return dict(sorted(texts.items()))


def render_stream(topology: Topology, options: Options, regenerate: str) -> str:
    """What ``kubectl apply -k`` applies (all but the experiment), as one YAML stream for
    ``kubectl apply -f -``."""
    objects = [
        obj
        for manifest in manifests(topology, options)
        if not manifest.path.startswith(f"{EXPERIMENT_DIR}/")
        for obj in manifest.objects
    ]
    return f"{GENERATED_LINE}\n# Regenerate: {regenerate}\n" + to_yaml(objects)


def write_files(texts: dict[str, str], directory: Path) -> list[Path]:
    """Write ``texts`` under ``directory``; remove the files an earlier run generated there
    that this one does not (a region since removed), and nothing else. Returns those."""
    try:
        for relative, text in texts.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        # Only where this module writes: the folder, and its experiment folder.
        candidates = [*directory.glob("*.yaml"), *(directory / EXPERIMENT_DIR).glob("*.yaml")]
        stale = [
            path
            for path in sorted(candidates)
            if path.relative_to(directory).as_posix() not in texts and _generated(path)
        ]
        for path in stale:
            path.unlink()
    except OSError as exc:
        where = exc.filename or directory
        raise UsageError(f"cannot write {where}: {exc.strerror or exc}") from None
    return stale


def _generated(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as file:
            return file.readline().rstrip("\n") == GENERATED_LINE
    except (OSError, UnicodeDecodeError):
        return False
