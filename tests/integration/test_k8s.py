"""The Kubernetes deployment: generated, validated against Kubernetes 1.31, offline.

There is no Kubernetes cluster here or in CI, so the manifests are checked the
ways that need none: ``deploy/k8s/`` is exactly what ``edgekv deploy k8s``
generates; every object validates strictly (no field the API does not know)
against the OpenAPI schemas of Kubernetes 1.31 that the ``kubernetes-validate``
package ships (``v1.31.0-local-strict``), without the network; what the API
server checks beyond a schema and what the restricted Pod Security Standard
asks is checked by hand; each ``kustomization.yaml`` validates against
kustomize's JSON Schema (``tests/data/kustomization-schema.json``) and lists
exactly the files beside it; and the nodes' command lines are the compose
file's, apart from what a cluster changes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from edgekv.compose import compose_dict
from edgekv.k8s import (
    EDGEKV_UID,
    GENERATED_LINE,
    Options,
    render_files,
    with_central_replicas,
)
from edgekv.locate import ClusterState
from edgekv.node_args import central_args, edge_args
from edgekv.process import spawn, wait_ready
from edgekv.topology import default_topology, load_topology
from tests.integration.test_deploy import CUSTOM_TOPOLOGY, flags
from tests.support.tls import certificates as tls_certificates

EDGEKV = [sys.executable, "-m", "edgekv"]
REPO = Path(__file__).parents[2]
K8S_DIR = REPO / "deploy" / "k8s"
KUSTOMIZATION_SCHEMA = Path(__file__).parents[1] / "data" / "kustomization-schema.json"
KUBERNETES_VERSION = "1.31"
# The Secrets the deployment uses and leaves to whoever deploys it (deploy/README.md).
SECRETS = {"edgekv-tls", "edgekv-operator", "edgekv-redis"}
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``edgekv ARGS``, with none of the developer's EDGEKV_* settings but the state file's
    (which the suite points at a file that does not exist)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EDGEKV_") or k == "EDGEKV_STATE_FILE"
    }
    return subprocess.run(
        [*EDGEKV, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def load_dir(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Every YAML file under ``directory`` (path relative to it) and its documents."""
    return {
        path.relative_to(directory).as_posix(): [
            doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc
        ]
        for path in sorted(directory.rglob("*.yaml"))
    }


def load_texts(texts: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {path: [doc for doc in yaml.safe_load_all(text) if doc] for path, text in texts.items()}


def k8s_objects(files: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        doc
        for path, docs in files.items()
        if not path.endswith("kustomization.yaml")
        for doc in docs
    ]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def pod_of(workload: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = workload["spec"]["template"]
    return template


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = pod_of(workload)["spec"]["containers"]
    return found


def topology_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(text, encoding="utf-8")
    return path


# Deployments other than the committed one, each exercising another branch.
EXTERNAL_REDIS_TOPOLOGY = """
[central]
storage = "redis://edgekv:s3cret-pass@redis.storage.svc:6380/2"
replicas = 3

[[regions]]
name = "eu-west"
edges = 2
cache = "redis://cache.storage.svc:6379/1"
"""


def variants(tmp_path: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The committed files and three more deployments, parsed."""
    custom = load_topology(topology_file(tmp_path, CUSTOM_TOPOLOGY))
    authenticated = replace(custom, central=replace(custom.central, auth=True))
    external = load_topology(topology_file(tmp_path, EXTERNAL_REDIS_TOPOLOGY))
    return {
        "committed": load_dir(K8S_DIR),
        "custom, no TLS": load_texts(
            render_files(custom, Options(tls=False, time_anchor=1.79e9), "x", "out")
        ),
        "auth": load_texts(render_files(authenticated, Options(time_anchor=1.79e9), "x", "out")),
        "external redis": load_texts(render_files(external, Options(), "x", "out")),
    }


# -- the committed copy -----------------------------------------------------------------------


def test_committed_manifests_are_what_edgekv_deploy_k8s_generates(tmp_path: Path) -> None:
    """deploy/k8s is the default topology with two central replicas, byte for byte."""
    for attempt in ("first", "second"):  # the same both times: deterministic
        (tmp_path / attempt).mkdir()
        result = run(
            "deploy", "k8s", "--central-replicas", "2", "--output", "deploy/k8s",
            cwd=tmp_path / attempt,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        generated = tmp_path / attempt / "deploy" / "k8s"
        committed = {p.relative_to(K8S_DIR): p for p in K8S_DIR.rglob("*") if p.is_file()}
        written = {p.relative_to(generated): p for p in generated.rglob("*") if p.is_file()}
        assert sorted(written) == sorted(committed), "deploy/k8s has other files than generated"
        for relative, path in written.items():
            assert path.read_text(encoding="utf-8") == committed[relative].read_text(
                encoding="utf-8"
            ), (
                f"deploy/k8s/{relative} is stale: run "
                "`edgekv deploy k8s --central-replicas 2 --output deploy/k8s`"
            )
    assert all(
        path.read_text(encoding="utf-8").startswith(GENERATED_LINE + "\n")
        for path in K8S_DIR.rglob("*.yaml")
    )


def test_without_output_the_stream_is_what_apply_k_applies() -> None:
    """`edgekv deploy k8s | kubectl apply -f -`: the main kustomization's objects, in order."""
    result = run("deploy", "k8s", "--central-replicas", "2")
    assert result.returncode == 0, result.stderr
    streamed = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    files = load_dir(K8S_DIR)
    listed = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert streamed == [doc for name in listed["resources"] for doc in files[name]]


# -- every object, strictly, offline ----------------------------------------------------------


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the network fails the test: the schemas must be local."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the validation tried to reach the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    try:
        version = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except ValidationError as exc:
        where = ".".join(map(str, exc.path))
        return [f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}"]
    # The package picks the newest schemas not newer than asked for: they must be 1.31's.
    assert version == KUBERNETES_VERSION
    return []


@pytest.mark.usefixtures("offline")
def test_every_object_validates_strictly_against_kubernetes_1_31(tmp_path: Path) -> None:
    for name, files in variants(tmp_path).items():
        objects = k8s_objects(files)
        assert len(objects) >= 10, name
        errors = [error for obj in objects for error in schema_errors(obj)]
        assert errors == [], name


@pytest.mark.usefixtures("offline")
def test_the_validation_is_strict_it_refuses_what_kubernetes_does_not_know() -> None:
    """The same check finds a field 1.31 has no such thing as, and a wrong type."""
    (central,) = (obj for obj in load_dir(K8S_DIR)["central.yaml"] if obj["kind"] == "Deployment")
    assert schema_errors(central) == []
    probe = containers(central)[0]["readinessProbe"]
    probe["grpc"] = {"port": 7000, "tls": True}  # no TLS in 1.31's gRPC probe
    assert schema_errors(central) and "'tls' was unexpected" in schema_errors(central)[0]
    del probe["grpc"]
    central["spec"]["replicas"] = "two"
    assert schema_errors(central) and "replicas" in schema_errors(central)[0]


# -- what the API server and admission would refuse, which no schema says -------------------

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# The restricted Pod Security Standard's volume types.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def semantic_errors(objects: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    names = [(obj["kind"], obj["metadata"]["name"]) for obj in objects]
    errors += [f"{kind}/{name} twice" for kind, name in set(names) if names.count((kind, name)) > 1]
    configmaps = set(by_kind(objects, "ConfigMap"))
    claims = set(by_kind(objects, "PersistentVolumeClaim"))
    workloads = [obj for obj in objects if obj["kind"] in WORKLOADS]
    for obj in objects:
        name = obj["metadata"]["name"]
        pattern = DNS_1035 if obj["kind"] == "Service" else DNS_1123
        if pattern.fullmatch(name) is None:
            errors.append(f"{obj['kind']}/{name}: not a valid name")
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != "edgekv":
            errors.append(f"{obj['kind']}/{name}: not in the edgekv namespace")
    for workload in workloads:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_of(workload)
        spec = pod["spec"]
        selector = workload["spec"].get("selector", {}).get("matchLabels", {})
        if selector.items() - pod["metadata"]["labels"].items():
            errors.append(f"{where}: its selector does not select its own pods")
        security = spec["securityContext"]
        if security.get("runAsNonRoot") is not True or not security.get("runAsUser"):
            errors.append(f"{where}: may run as root")
        if security.get("seccompProfile") != {"type": "RuntimeDefault"}:
            errors.append(f"{where}: no RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            errors.append(f"{where}: mounts a service-account token it has no use for")
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        claim_templates = {
            c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])
        }
        for volume in volumes.values():
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                errors.append(f"{where}: volume {volume['name']} of a kind restricted refuses")
            if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                errors.append(f"{where}: ConfigMap {volume['configMap']['name']} is not deployed")
            if "secret" in volume and volume["secret"]["secretName"] not in SECRETS:
                errors.append(
                    f"{where}: Secret {volume['secret']['secretName']} is documented nowhere"
                )
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim is not None and claim not in claims:
                errors.append(f"{where}: claim {claim} is not deployed")
        for container in spec["containers"]:
            at = f"{where}/{container['name']}"
            context = container["securityContext"]
            if context != {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }:
                errors.append(f"{at}: security context {context}")
            resources = container["resources"]
            for bound in ("requests", "limits"):
                if set(resources.get(bound, {})) != {"cpu", "memory"}:
                    errors.append(f"{at}: no cpu and memory {bound}")
            if workload["kind"] != "Job" and not {"readinessProbe", "livenessProbe"} <= set(
                container
            ):
                errors.append(f"{at}: no readiness and liveness probes")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes and mount["name"] not in claim_templates:
                    errors.append(f"{at}: mounts {mount['name']}, which is no volume")
            for port in container.get("ports", []):
                if len(port["name"]) > 15:
                    errors.append(f"{at}: port name {port['name']} longer than 15")
            for variable in container.get("env", []):
                secret = variable.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                if secret is not None and secret not in SECRETS:
                    errors.append(f"{at}: Secret {secret} is documented nowhere")
    for service in by_kind(objects, "Service").values():
        where = f"Service/{service['metadata']['name']}"
        selected = [
            w for w in workloads
            if service["spec"]["selector"].items() <= pod_of(w)["metadata"]["labels"].items()
        ]  # fmt: skip
        if not selected:
            errors.append(f"{where}: selects no pods")
        ports = {p["name"] for w in selected for c in containers(w) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in ports:
                errors.append(f"{where}: target port {port['targetPort']} is no pod's")
    return errors


def test_what_the_api_server_and_the_restricted_pod_security_standard_check(
    tmp_path: Path,
) -> None:
    for name, files in variants(tmp_path).items():
        assert semantic_errors(k8s_objects(files)) == [], name
    namespace = by_kind(k8s_objects(load_dir(K8S_DIR)), "Namespace")["edgekv"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_semantic_checks_find_what_they_look_for() -> None:
    objects = k8s_objects(load_dir(K8S_DIR))
    central = by_kind(objects, "Deployment")["central"]
    containers(central)[0]["securityContext"]["allowPrivilegeEscalation"] = True
    containers(central)[0]["volumeMounts"].append({"name": "nowhere", "mountPath": "/x"})
    by_kind(objects, "Service")["api"]["spec"]["ports"][0]["targetPort"] = "grpc"
    errors = semantic_errors(objects)
    assert any("Deployment/central/central: security context" in e for e in errors)
    assert any("mounts nowhere" in e for e in errors)
    assert any("Service/api: target port grpc" in e for e in errors)


def test_every_secret_the_manifests_use_is_documented() -> None:
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    for secret in SECRETS:
        assert f"create secret generic {secret}" in readme, secret


def test_the_image_runs_as_the_user_the_pods_ask_for_and_has_every_package() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert f"--uid {EDGEKV_UID}" in dockerfile
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    # What pyproject.toml's package find includes: every one must be in the image.
    assert copied == {"edgekv", "central", "edge", "api"}


# -- the kustomizations ------------------------------------------------------------------------


def kustomization_errors(directory: Path) -> list[str]:
    """Checks a kustomization.yaml: kustomize's schema, every file beside it listed and
    every listed file there, and no object twice."""
    schema = json.loads(KUSTOMIZATION_SCHEMA.read_text(encoding="utf-8"))
    document = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    if document.get("kind") != "Kustomization" or not document.get("apiVersion", "").startswith(
        "kustomize.config.k8s.io/"
    ):
        errors.append("not a Kustomization")
    listed = document.get("resources", [])
    beside = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    errors += [f"{name} is not listed" for name in beside if name not in listed]
    errors += [f"{name} does not exist" for name in listed if not (directory / name).is_file()]
    return errors


@pytest.mark.parametrize("directory", [K8S_DIR, K8S_DIR / "experiment"], ids=["main", "experiment"])
def test_kustomizations_validate_and_list_exactly_their_files(directory: Path) -> None:
    assert kustomization_errors(directory) == []
    document = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert document["namespace"] == "edgekv"


def test_the_kustomization_check_finds_a_file_left_out(tmp_path: Path) -> None:
    result = run("deploy", "k8s", "--output", str(tmp_path / "k8s"))
    assert result.returncode == 0, result.stderr
    assert kustomization_errors(tmp_path / "k8s") == []
    (tmp_path / "k8s" / "extra.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")
    kustomization = tmp_path / "k8s" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text(encoding="utf-8").replace("namespace: edgekv", "namespace: 7"),
        encoding="utf-8",
    )
    errors = kustomization_errors(tmp_path / "k8s")
    assert "extra.yaml is not listed" in errors
    assert any("namespace" in error and "string" in error for error in errors)


# -- the scaled-out shape, and the same commands as compose -------------------------------------


def test_the_committed_shape_two_central_replicas_on_the_in_cluster_redis() -> None:
    objects = k8s_objects(load_dir(K8S_DIR))
    topology = with_central_replicas(default_topology(), 2)
    central = by_kind(objects, "Deployment")["central"]
    assert central["spec"]["replicas"] == 2
    assert containers(central)[0]["args"] == [
        *central_args(
            topology,
            listen="0.0.0.0:7000",
            storage="redis://redis:6379/0",
            operator_token_file="/etc/edgekv/operator/operator-token",
            tls_cert="/etc/edgekv/tls/tls.crt",
            tls_key="/etc/edgekv/tls/tls.key",
        ),
        *("--store-record", "/var/lib/edgekv/store-record.json"),
        *("--health-listen", "0.0.0.0:7001"),
    ]
    spread = pod_of(central)["spec"]["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert by_kind(objects, "PodDisruptionBudget")["central"]["spec"]["maxUnavailable"] == 1
    services = by_kind(objects, "Service")
    assert services["central"]["spec"]["type"] == "ClusterIP"
    assert services["central-headless"]["spec"]["clusterIP"] == "None"
    assert (
        services["central-headless"]["spec"]["selector"] == services["central"]["spec"]["selector"]
    )

    redis = by_kind(objects, "StatefulSet")["redis"]
    assert containers(redis)[0]["args"] == [
        "redis-server", "--appendonly", "yes", "--appendfsync", "always"
    ]  # fmt: skip
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert containers(redis)[0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert services["redis"]["spec"]["clusterIP"] == "None"  # the StatefulSet's own
    (rule,) = by_kind(objects, "NetworkPolicy")["redis"]["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": services["central"]["spec"]["selector"]}}
    ]

    for region in topology.regions:
        edge = by_kind(objects, "Deployment")[f"edge-{region.name}"]
        assert edge["spec"]["replicas"] == region.edges
        assert containers(edge)[0]["args"] == [
            *edge_args(
                topology,
                region,
                listen="0.0.0.0:7100",
                central="dns:///central-headless:7000",
                seed=topology.first_seed(region),
                tls_cert="/etc/edgekv/tls/tls.crt",
                tls_key="/etc/edgekv/tls/tls.key",
                tls_ca="/etc/edgekv/tls/ca.crt",
            ),
            *("--health-listen", "0.0.0.0:7101"),
        ]
        assert (
            by_kind(objects, "Service")[f"edge-{region.name}"]["spec"]["ports"][0]["port"] == 7100
        )
    api = containers(by_kind(objects, "Deployment")["api"])[0]
    assert flags(api["args"])["--central"] == "dns:///central-headless:7000"


def test_the_state_configmap_is_a_state_file_naming_the_services() -> None:
    objects = k8s_objects(load_dir(K8S_DIR))
    text = by_kind(objects, "ConfigMap")["edgekv-cluster"]["data"]["cluster.json"]
    state = ClusterState.from_json(text, K8S_DIR / "cluster.yaml")
    regions = [region.name for region in default_topology().regions]
    assert state.central == "dns:///central-headless:7000"
    assert state.edges == {name: [f"edge-{name}:7100"] for name in regions}
    assert state.api == "api:7080"
    assert state.tls_ca == "/etc/edgekv/tls/ca.crt"
    assert {info["kind"] for info in state.nodes.values()} == {"central", "api", "edge"}
    assert (state.time_scale, state.time_anchor, state.launcher_pid) == (1.0, None, None)
    # The experiment Job reads it where compose's reads its own, and so can edgekv in the
    # API's pod (EDGEKV_STATE_FILE).
    job = by_kind(k8s_objects(load_dir(K8S_DIR)), "Job")["experiment"]
    (experiment,) = containers(job)
    assert experiment["args"][:4] == [
        "experiment",
        "visibility",
        "--state",
        "/etc/edgekv/cluster.json",
    ]
    mounts = {m["mountPath"]: m for m in experiment["volumeMounts"]}
    assert mounts["/etc/edgekv/cluster.json"]["subPath"] == "cluster.json"
    assert by_kind(objects, "Deployment")["api"]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ][0] == {"name": "EDGEKV_STATE_FILE", "value": "/etc/edgekv/cluster.json"}


def test_k8s_commands_are_composes_but_where_a_cluster_differs(tmp_path: Path) -> None:
    topology = load_topology(topology_file(tmp_path, CUSTOM_TOPOLOGY))
    services = compose_dict(topology)["services"]
    files = load_texts(render_files(topology, Options(time_anchor=1.79e9), "x", "out"))
    deployments = by_kind(k8s_objects(files), "Deployment")
    where = {
        "--listen", "--central", "--storage", "--store-record", "--operator-token-file",
        "--token-file", "--time-anchor", "--tls-cert", "--tls-key", "--tls-ca",
        "--health-listen",
    }  # fmt: skip

    def shared(command: list[str]) -> dict[str, str]:
        return {k: v for k, v in flags(command).items() if k not in where}

    assert shared(containers(deployments["central"])[0]["args"]) == shared(
        services["central"]["command"]
    )
    for name in ("edge-eu-west", "edge-mars"):
        assert shared(containers(deployments[name])[0]["args"]) == shared(services[name]["command"])
        assert deployments[name]["spec"]["replicas"] == services[name]["deploy"]["replicas"]
    # The anchor every pod's clock shares, where compose takes it from the environment.
    assert flags(containers(deployments["edge-mars"])[0]["args"])["--time-anchor"] == "1790000000.0"
    job = by_kind(k8s_objects(files), "Job")["experiment"]
    assert containers(job)[0]["args"] == services["experiment"]["command"]


def test_tls_wiring_and_the_probes_with_and_without_it(tmp_path: Path) -> None:
    topology = default_topology()
    for tls in (True, False):
        files = load_texts(render_files(topology, Options(tls=tls), "x", "out"))
        deployments = by_kind(k8s_objects(files), "Deployment")
        for name, deployment in deployments.items():
            (container,) = containers(deployment)
            args = flags(container["args"])
            mounted = {m["name"]: m for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod_of(deployment)["spec"]["volumes"]}
            if tls:
                assert args["--tls-cert"] == "/etc/edgekv/tls/tls.crt", name
                assert args["--tls-key"] == "/etc/edgekv/tls/tls.key", name
                assert (args.get("--tls-ca") is None) == (name == "central"), name  # clients
                assert mounted["tls"] == {
                    "name": "tls",
                    "mountPath": "/etc/edgekv/tls",
                    "readOnly": True,
                }
                assert volumes["tls"]["secret"]["secretName"] == "edgekv-tls"
            else:
                assert not {"--tls-cert", "--tls-key", "--tls-ca"} & set(args), name
                assert "tls" not in mounted and "tls" not in volumes, name
            probe = container["readinessProbe"]
            port = container["ports"][0]["containerPort"]
            if name == "api":
                assert probe["httpGet"] == {
                    "path": "/healthz", "port": 7080, "scheme": "HTTPS" if tls else "HTTP"
                }  # fmt: skip
            elif tls:  # the kubelet's gRPC probe speaks no TLS in 1.31: the plain health port
                assert probe["grpc"] == {"port": port + 1}
                assert args["--health-listen"] == f"0.0.0.0:{port + 1}", name
                assert container["ports"][1] == {
                    "name": "health", "containerPort": port + 1, "protocol": "TCP"
                }  # fmt: skip
            else:
                assert probe["grpc"] == {"port": port}
                assert "--health-listen" not in args, name
            assert container["livenessProbe"].keys() & probe.keys() >= {"periodSeconds"}


def test_an_external_redis_is_used_as_it_is_and_its_password_stays_out(tmp_path: Path) -> None:
    topology = load_topology(topology_file(tmp_path, EXTERNAL_REDIS_TOPOLOGY))
    texts = render_files(topology, Options(), "x", "out")
    assert "redis.yaml" not in texts
    assert all("s3cret-pass" not in text for text in texts.values())
    objects = k8s_objects(load_texts(texts))
    assert "StatefulSet" not in {obj["kind"] for obj in objects}
    deployments = by_kind(objects, "Deployment")
    (central,) = containers(deployments["central"])
    assert deployments["central"]["spec"]["replicas"] == 3
    assert flags(central["args"])["--storage"] == "redis://edgekv@redis.storage.svc:6380/2"
    password = {
        "name": "EDGEKV_REDIS_PASSWORD",
        "valueFrom": {
            "secretKeyRef": {"name": "edgekv-redis", "key": "password", "optional": True}
        },
    }
    assert central["env"] == [password]
    (edge,) = containers(deployments["edge-eu-west"])
    assert flags(edge["args"])["--cache"] == "redis://cache.storage.svc:6379/1"
    assert edge["env"] == [password]


def test_regenerating_removes_its_own_stale_files_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    custom = topology_file(tmp_path, CUSTOM_TOPOLOGY)
    first = run("deploy", "k8s", "--topology", str(custom), "--time-anchor", "1790000000",
                "--output", str(out))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert (out / "edge-mars.yaml").exists()
    (out / "mine.yaml").write_text("# someone else's\n", encoding="utf-8")
    second = run("deploy", "k8s", "--output", str(out))
    assert second.returncode == 0, second.stderr
    assert not (out / "edge-mars.yaml").exists()
    assert f"removed {out / 'edge-mars.yaml'}" in second.stdout
    assert (out / "mine.yaml").read_text(encoding="utf-8") == "# someone else's\n"


# -- bad input: one line, exit 1 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("topology", "args", "expected"),
    [
        ('[central]\nreplicas = 0\n[[regions]]\nname = "x"\n', [], "central.replicas: must be"),
        (None, ["--central-replicas", "17"], "--central-replicas must be from 1 to 16"),
        (None, ["--time-scale", "10"], "needs --time-anchor"),
        (
            '[central]\nstorage = "redis://127.0.0.1:6379/0"\n[[regions]]\nname = "x"\n',
            [],
            "central.storage: redis://127.0.0.1:6379/0 is this machine's loopback address",
        ),
        (None, ["--output", "{file}/k8s"], "cannot write"),
    ],
    ids=["zero replicas", "too many replicas", "no anchor", "loopback redis", "unwritable"],
)
def test_bad_input_is_one_error_line(
    tmp_path: Path, topology: str | None, args: list[str], expected: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    argv = [arg.replace("{file}", str(a_file)) for arg in args]
    if topology is not None:
        argv += ["--topology", str(topology_file(tmp_path, topology))]
    result = run("deploy", "k8s", *argv)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("edgekv: error: ") and expected in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_status_reads_a_state_file_given_with_state(tmp_path: Path) -> None:
    """What `edgekv status --state cluster.json` does with a copy of the ConfigMap's file."""
    state = tmp_path / "cluster.json"
    state.write_text(
        json.dumps(
            {
                "central": "127.0.0.1:1",
                "nodes": {"central": {"kind": "central", "region": "x", "address": "127.0.0.1:1"}},
            }
        ),
        encoding="utf-8",
    )
    result = run("status", "--state", str(state))
    assert result.returncode == 1  # nothing answers at 127.0.0.1:1
    assert re.search(r"^central\s+x\s+127\.0\.0\.1:1\s+DOWN", result.stdout, re.M), result.stdout
    missing = run("status", "--state", str(tmp_path / "missing.json"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "missing.json: cannot read it" in missing.stderr


# -- the manifests' command lines and probes, run ------------------------------------------


def localised(args: list[str], files: dict[str, str], **flag_values: str) -> list[str]:
    """A container's args with its in-pod paths mapped onto this machine's files and some
    flags' values replaced (an address, the storage), as a pod's would be by Kubernetes."""
    replaced = []
    for arg in args:
        for pod_path, path in files.items():
            arg = arg.replace(pod_path, path)
        replaced.append(arg)
    for flag, value in flag_values.items():
        replaced[replaced.index(flag) + 1] = value
    return replaced


@pytest.mark.redis
def test_the_manifests_commands_and_probes_run_over_tls(tmp_path: Path, redis_url: str) -> None:
    """Central, an edge and the API started with the committed manifests' own args (their
    Secrets' files made here; a local redis-server, durable as the StatefulSet's, for the
    in-cluster Redis), answering the manifests' own probes: every flag exists, and TLS is
    wired end to end."""
    certificates = tls_certificates(tmp_path / "tls")  # openssl: a skip outside CI only
    operator = tmp_path / "operator-token"
    operator.write_text("an-operator-token-as-the-secret-holds-it\n", encoding="utf-8")
    (tmp_path / "state").mkdir()
    files = {
        "/etc/edgekv/tls/": f"{certificates.ca.parent}/",
        "/etc/edgekv/operator/operator-token": str(operator),
        "/var/lib/edgekv/": f"{tmp_path / 'state'}/",
    }
    deployments = by_kind(k8s_objects(load_dir(K8S_DIR)), "Deployment")
    pods = {name: containers(deployments[name])[0] for name in ("central", "edge-eu-west", "api")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    children = []
    try:
        central = localised(
            pods["central"]["args"],
            files,
            **{"--listen": "127.0.0.1:0", "--storage": redis_url, "--health-listen": "127.0.0.1:0"},
        )
        children.append(spawn([*EDGEKV, *central], tmp_path / "central.log", env=env))
        (ready,) = wait_ready(children, timeout_s=20)
        port = ready.address.rpartition(":")[2]
        # The name the headless Service resolves to, here localhost (the certificate's).
        target = f"dns:///localhost:{port}"
        edge = localised(
            pods["edge-eu-west"]["args"],
            files,
            **{"--listen": "127.0.0.1:0", "--central": target, "--health-listen": "127.0.0.1:0"},
        )
        api = localised(
            pods["api"]["args"], files, **{"--listen": "127.0.0.1:0", "--central": target}
        )
        children.append(spawn([*EDGEKV, *edge], tmp_path / "edge.log", env=env))
        children.append(spawn([*EDGEKV, *api], tmp_path / "api.log", env=env))
        _, edge_ready, api_ready = wait_ready(children, timeout_s=20)
        for node in (ready, edge_ready):
            # What the kubelet's grpc probe does: plain grpc.health.v1 on the health port.
            assert pods["central"]["readinessProbe"]["grpc"] == {"port": 7001}
            probe = subprocess.run(
                [*EDGEKV, "health", node.fields["health"]],
                env=env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert probe.returncode == 0, probe.stderr
            # The node's own port serves TLS only: without the CA it refuses.
            plain = subprocess.run(
                [*EDGEKV, "health", node.address],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert plain.returncode == 1
        # The kubelet's HTTPS probe checks no certificate; it asks for /healthz.
        http = pods["api"]["readinessProbe"]["httpGet"]
        unverified = ssl.create_default_context()
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        url = f"{http['scheme'].lower()}://{api_ready.address}{http['path']}"
        with urllib.request.urlopen(url, context=unverified, timeout=10) as response:
            assert response.status == 200
    finally:
        for child in children:
            child.stop()
