"""The cluster topology: the default, and one clear line for each bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekv.node_args import central_args, edge_args
from edgekv.topology import (
    DEFAULT_CACHE_MAX_BYTES,
    MODE_NAMES,
    EdgeSpec,
    Mode,
    TopologyError,
    default_topology,
    load_topology,
    parse_size,
)


def test_the_default_is_central_in_us_east_and_one_edge_in_each_of_five_regions() -> None:
    topology = default_topology()
    assert topology.central.region == "us-east"
    assert topology.central.storage.startswith("sqlite:")
    assert {r.name: r.rtt_ms for r in topology.regions} == {
        "us-east": 2,
        "us-west": 64,
        "eu-west": 83,
        "ap-southeast": 223,
        "sa-east": 115,
    }
    assert [name for r in topology.regions for name in r.node_names()][:2] == [
        "us-east-1",
        "us-west-1",
    ]
    assert topology.with_time_scale(10).time_scale == 10


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return path


def test_a_full_file_is_read_with_defaults_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
time_scale = 5
[central]
storage = "memory:"
write_rate_limit = false
[edge_defaults]
cache_max_bytes = "32MiB"
mode = "invalidate"
[[regions]]
name = "eu-west"
edges = 2
jitter_ms = 3
[[regions]]
name = "lab"
rtt_ms = 10
mode = "push"
max_stale_s = 30
""",
    )
    topology = load_topology(path)
    assert topology.time_scale == 5
    assert not topology.central.write_rate_limit
    eu, lab = topology.regions
    assert (eu.rtt_ms, eu.jitter_ms, eu.edges, eu.edge.mode) == (83, 3, 2, "invalidate")
    assert eu.edge.cache_max_bytes == 32 * 1024 * 1024
    assert eu.node_names() == ["eu-west-1", "eu-west-2"]
    assert (lab.rtt_ms, lab.edge.mode, lab.edge.max_stale_s) == (10, "push", 30)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[[regions]]\nname = 'x'\nrtt_ms = -1", "regions[0].rtt_ms: must be between 0"),
        ("[[regions]]\nname = 'x'\nloss = 2", "regions[0].loss: must be between 0 and 1"),
        ("[[regions]]\nname = 'x'\nmode = 'eager'", "regions[0].mode: must be one of"),
        ("[[regions]]\nname = 'x'\nedges = 1.5", "regions[0].edges: must be a whole number"),
        ("[[regions]]\nname = 'x'\ncolour = 'red'", "regions[0].colour: unknown field"),
        ("[[regions]]\nname = 'x'\ncache_max_bytes = 'lots'", "regions[0].cache_max_bytes"),
        ("[[regions]]\nname = 'x'\n[[regions]]\nname = 'x'", "'x' appears more than once"),
        ("time_scale = 0\n[[regions]]\nname = 'x'", "time_scale: must be between"),
        (
            "[central]\nwrite_rate_limit = 'yes'\n[[regions]]\nname = 'x'",
            "central.write_rate_limit",
        ),
        ("", "regions: needs at least one"),
        ("regions = [", "invalid TOML"),
        ("[[regions]]\nname = '../../escaped'", "regions[0].name: '../../escaped' is not"),
        ("[[regions]]\nname = 'EU-West'", "regions[0].name: 'EU-West' is not a DNS label"),
        ("[[regions]]\nname = '-eu'", "regions[0].name: '-eu' is not a DNS label"),
        ("[[regions]]\nname = 'eu-'", "regions[0].name: 'eu-' is not a DNS label"),
        ("[[regions]]\nname = 'eu west'", "regions[0].name: 'eu west' is not a DNS label"),
        (f"[[regions]]\nname = '{'r' * 64}'", "regions[0].name: 'rrrrrrrr"),
        (f"[[regions]]\nname = '{'r' * 60}'", "edge-rrr"),  # its compose service's name
        ("[central]\nregion = 'a/b'\n[[regions]]\nname = 'x'", "central.region: 'a/b' is not"),
    ],
)
def test_bad_fields_are_named_in_one_line(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert named in message
    assert "\n" not in message


def test_names_that_are_dns_labels_pass(tmp_path: Path) -> None:
    longest = "r" * (63 - len("edge-"))  # edge-REGION, its compose service, is a label too
    for name in ("eu-west", "a", "0", "r2-d2", longest):
        path = write(tmp_path, f"[[regions]]\nname = '{name}'\n")
        assert load_topology(path).regions[0].name == name


def test_sizes() -> None:
    assert parse_size("64MiB") == 64 * 1024 * 1024
    assert parse_size("1GiB") == 1024**3
    assert parse_size("500KiB") == 500 * 1024
    assert parse_size(1234) == 1234


def test_edges_are_named_and_seeded_in_topology_order(tmp_path: Path) -> None:
    topology = load_topology(
        write(
            tmp_path,
            "[[regions]]\nname = 'a'\nedges = 2\n"
            "[[regions]]\nname = 'empty'\nedges = 0\n"
            "[[regions]]\nname = 'b'\n",
        )
    )
    assert [(e.region.name, e.name, e.seed) for e in topology.edge_nodes()] == [
        ("a", "a-1", 1),
        ("a", "a-2", 2),
        ("b", "b-1", 3),
    ]
    assert [topology.first_seed(region) for region in topology.regions] == [1, 3, 3]


def test_one_set_of_edge_defaults_and_mode_names() -> None:
    assert EdgeSpec().cache_max_bytes == DEFAULT_CACHE_MAX_BYTES == 64 * 1024 * 1024
    assert MODE_NAMES == ("ttl", "invalidate", "push")
    assert EdgeSpec().mode == Mode.TTL.value


def test_node_flags_say_what_the_topology_says_and_what_the_caller_adds() -> None:
    topology = default_topology().with_time_scale(4)
    eu = topology.region("eu-west")
    edge = edge_args(topology, eu, central="central:7000", seed=3, time_anchor=12.5)
    assert edge[:7] == [
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--central",
        "central:7000",
        "--region",
        "eu-west",
    ]
    assert "--node" not in edge
    assert edge[-6:] == ["--seed", "3", "--time-scale", "4", "--time-anchor", "12.5"]
    named = edge_args(topology, eu, central="c:1", seed=1, node="eu-west-1", listen="0.0.0.0:1")
    assert named[named.index("--node") + 1] == "eu-west-1" and "--time-anchor" not in named
    central = central_args(topology, storage="memory:")
    assert central == [
        "central",
        "--listen",
        "127.0.0.1:0",
        "--storage",
        "memory:",
        "--time-scale",
        "4",
    ]
