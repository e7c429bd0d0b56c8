"""The cluster topology: one typed description for the launcher, the demo and deployments.

Theory of operation: a TOML file (or the built-in default) names the central
store and the regions; each region has its modelled link to central (RTT,
jitter, loss) and a number of edges with their cache and consistency settings.
:func:`load_topology` checks every field and names the one that is wrong, in
one line. The local launcher and the docker-compose generator both read a
:class:`Topology`, so they cannot drift apart.

A file looks like this (every field optional except the regions' names)::

    time_scale = 1.0                  # simulated seconds per real second

    [central]
    region = "us-east"
    storage = "sqlite:central.db"     # relative paths are inside the data dir
    write_rate_limit = true
    auth = false                      # true: gRPC calls need an API token (edgekv token)
    replicas = 1                      # central processes; more than 1 needs redis:// storage

    [edge_defaults]                   # for every region, unless it says otherwise
    cache = "memory"                  # or redis://HOST:PORT/DB
    cache_max_bytes = "64MiB"
    mode = "ttl"                      # ttl | invalidate | push
    max_stale_s = 0
    refresh_ahead = 0.0

    [[regions]]
    name = "eu-west"                  # a DNS label: a-z, 0-9 and '-' (edges: eu-west-1, ...)
    rtt_ms = 83
    jitter_ms = 4
    loss = 0.0
    edges = 1
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekv.clock import DEFAULT_TIME_SCALE
from edgekv.core.errors import UsageError

MiB = 1024 * 1024
# Where a node listens when nobody says otherwise (``edgekv central`` / ``edgekv edge``,
# and the containers of the compose file).
DEFAULT_CENTRAL_PORT = 7000
DEFAULT_EDGE_PORT = 7100
# The API node's (edgekv api): Cloudflare's REST API over HTTP.
DEFAULT_API_PORT = 7080
# The memory an edge's cache may hold: ``edgekv edge --cache-max-bytes``, and the
# topology's ``cache_max_bytes``.
DEFAULT_CACHE_MAX_BYTES = 64 * MiB
# Edges are seeded 1, 2, ... in topology order, so that a run's randomness replays.
FIRST_EDGE_SEED = 1


class Mode(enum.Enum):
    """How an edge learns of writes made elsewhere (see :mod:`edge.node`)."""

    TTL = "ttl"  # it does not: copies live out the reader's cacheTtl (Workers KV)
    INVALIDATE = "invalidate"  # central's Watch stream drops its copies
    PUSH = "push"  # central's Watch stream replaces its copies


MODE_NAMES = tuple(mode.value for mode in Mode)

# Median RTT to a central store in us-east: Azure's published inter-region medians
# (July 2023); source and caveats in docs/design.md, "Links".
DEFAULT_REGION_RTT_MS = {
    "us-east": 2.0,
    "us-west": 64.0,
    "eu-west": 83.0,
    "ap-southeast": 223.0,
    "sa-east": 115.0,
}


class TopologyError(UsageError):
    """A topology that cannot be used; the message names the file and the field."""


# A DNS label (RFC 1123): what a name may be when it becomes a host name (a compose
# service, a container), a file name (a node's log) or a metric label — so that
# "../../escaped" never becomes a path outside the data folder.
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DNS_LABEL_RULE = (
    "lower-case letters, digits and '-', at most 63 characters, not starting or ending with '-'"
)


def dns_label(name: str, field: str) -> str:
    """``name`` when it is a DNS label; else a one-line TopologyError naming ``field``."""
    if _DNS_LABEL.fullmatch(name) is None:
        shown = name if len(name) <= 70 else name[:64] + "…"
        raise TopologyError(f"{field}: {shown!r} is not a DNS label ({DNS_LABEL_RULE})")
    return name


@dataclass(frozen=True)
class EdgeSpec:
    cache: str = "memory"
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    mode: str = Mode.TTL.value  # one of MODE_NAMES
    max_stale_s: float = 0.0
    refresh_ahead: float = 0.0


@dataclass(frozen=True)
class RegionSpec:
    name: str
    rtt_ms: float
    jitter_ms: float = 0.0
    loss: float = 0.0
    edges: int = 1
    edge: EdgeSpec = EdgeSpec()

    def node_names(self) -> list[str]:
        return [f"{self.name}-{index}" for index in range(1, self.edges + 1)]


@dataclass(frozen=True)
class EdgeNodeSpec:
    """One edge of a region: its name and the seed of its randomness."""

    region: RegionSpec
    name: str
    seed: int


@dataclass(frozen=True)
class CentralSpec:
    region: str = "us-east"
    storage: str = "sqlite:central.db"
    write_rate_limit: bool = True
    # Refuse gRPC calls without an API token (edgekv central --auth). The REST API node
    # always asks for one.
    auth: bool = False
    # Central processes serving the same store. More than one share a Redis (they keep
    # no state of their own); a SQLite file has one writer, so it allows one.
    replicas: int = 1


@dataclass(frozen=True)
class Topology:
    central: CentralSpec
    regions: tuple[RegionSpec, ...]
    time_scale: float = DEFAULT_TIME_SCALE

    def with_time_scale(self, time_scale: float | None) -> Topology:
        return self if time_scale is None else replace(self, time_scale=time_scale)

    def with_auth(self, auth: bool) -> Topology:
        """This topology, with central's auth on if ``auth`` (a flag can only turn it on)."""
        return replace(self, central=replace(self.central, auth=True)) if auth else self

    def first_seed(self, region: RegionSpec) -> int:
        """The seed of ``region``'s first edge; its others take the seeds after it."""
        before = self.regions[: self.regions.index(region)]
        return FIRST_EDGE_SEED + sum(other.edges for other in before)

    def edge_nodes(self) -> list[EdgeNodeSpec]:
        """Every edge, in topology order: named REGION-1, REGION-2, ..., seeded 1, 2, ..."""
        return [
            EdgeNodeSpec(region, name, self.first_seed(region) + index)
            for region in self.regions
            for index, name in enumerate(region.node_names())
        ]

    def region(self, name: str) -> RegionSpec:
        for region in self.regions:
            if region.name == name:
                return region
        raise TopologyError(f"no region {name!r} in the topology")


def default_topology() -> Topology:
    """A central store in us-east on SQLite and one edge in each of the five regions."""
    regions = tuple(
        RegionSpec(name, rtt_ms, jitter_ms=round(rtt_ms * 0.05, 2))
        for name, rtt_ms in DEFAULT_REGION_RTT_MS.items()
    )
    return Topology(CentralSpec(), regions)


# A generated topology (``--regions N``): RTTs to central spread log-uniformly over
# this range, the nearest region first (central's), jitter 5 % of each RTT.
GENERATED_RTT_RANGE_MS = (2.0, 300.0)
MAX_GENERATED_REGIONS = 999
MAX_GENERATED_EDGES = 10_000


def generated_topology(regions: int, edges_per_region: int = 1) -> Topology:
    """``regions`` regions named pop-001, pop-002, ..., ``edges_per_region`` edges each.

    Region i (from 0) of n has the RTT at quantile (i + ½)/n of a log-uniform
    distribution over :data:`GENERATED_RTT_RANGE_MS`: the spread of PoPs near
    to and far from one central store, the same for every seed (so runs of
    different seeds share a topology). Central is in the first, nearest region.
    """
    if not 1 <= regions <= MAX_GENERATED_REGIONS:
        raise TopologyError(f"--regions must be from 1 to {MAX_GENERATED_REGIONS}, got {regions}")
    if not 1 <= edges_per_region <= MAX_GENERATED_EDGES // regions:
        raise TopologyError(
            f"--edges-per-region must be from 1 to {MAX_GENERATED_EDGES // regions} with "
            f"{regions} regions (at most {MAX_GENERATED_EDGES:,} edges), got {edges_per_region}"
        )
    low_ms, high_ms = GENERATED_RTT_RANGE_MS
    specs = []
    for index in range(regions):
        quantile = (index + 0.5) / regions
        rtt_ms = round(low_ms * (high_ms / low_ms) ** quantile, 2)
        specs.append(
            RegionSpec(
                f"pop-{index + 1:03d}",
                rtt_ms,
                jitter_ms=round(rtt_ms * 0.05, 2),
                edges=edges_per_region,
            )
        )
    return Topology(CentralSpec(region=specs[0].name), tuple(specs))


def parse_size(text: str | int, field: str = "size") -> int:
    """``64MiB``, ``1GiB``, ``500KiB``, ``1MB`` or a number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    units = {"kib": 1024, "mib": MiB, "gib": 1024 * MiB, "kb": 1000, "mb": 10**6, "gb": 10**9}
    lowered = str(text).strip().lower()
    try:
        for suffix, factor in units.items():
            if lowered.endswith(suffix):
                return int(float(lowered[: -len(suffix)]) * factor)
        return int(lowered)
    except ValueError:
        raise TopologyError(f"{field}: {text!r} is not a size like 64MiB") from None


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path}: invalid TOML: {exc}") from None
    try:
        return _topology(raw)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


class _Fields:
    """Reads one table, checking each field's type and range, naming it when wrong."""

    def __init__(self, table: Any, where: str, known: set[str]) -> None:
        if not isinstance(table, dict):
            raise TopologyError(f"{where}: must be a table")
        unknown = sorted(set(table) - known)
        if unknown:
            raise TopologyError(f"{where}.{unknown[0]}: unknown field")
        self.table = table
        self.where = where

    def name(self, field: str) -> str:
        return f"{self.where}.{field}" if self.where else field

    def number(self, field: str, default: float, low: float = 0.0, high: float = math.inf) -> float:
        value = self.table.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TopologyError(f"{self.name(field)}: must be a number")
        if not low <= value <= high:
            raise TopologyError(f"{self.name(field)}: must be between {low:g} and {high:g}")
        return float(value)

    def text(self, field: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(field, default)
        if not isinstance(value, str) or not value:
            raise TopologyError(f"{self.name(field)}: must be a non-empty string")
        if choices and value not in choices:
            raise TopologyError(f"{self.name(field)}: must be one of {', '.join(choices)}")
        return value

    def flag(self, field: str, default: bool) -> bool:
        value = self.table.get(field, default)
        if not isinstance(value, bool):
            raise TopologyError(f"{self.name(field)}: must be true or false")
        return value


_EDGE_FIELDS = {"cache", "cache_max_bytes", "mode", "max_stale_s", "refresh_ahead"}


def _edge_spec(fields: _Fields, base: EdgeSpec) -> EdgeSpec:
    size = fields.table.get("cache_max_bytes", base.cache_max_bytes)
    max_bytes = parse_size(size, fields.name("cache_max_bytes"))
    if max_bytes <= 0:
        raise TopologyError(f"{fields.name('cache_max_bytes')}: must be positive")
    return EdgeSpec(
        cache=fields.text("cache", base.cache),
        cache_max_bytes=max_bytes,
        mode=fields.text("mode", base.mode, MODE_NAMES),
        max_stale_s=fields.number("max_stale_s", base.max_stale_s),
        refresh_ahead=fields.number("refresh_ahead", base.refresh_ahead, 0.0, 0.99),
    )


def _region_name(fields: _Fields) -> str:
    """A region's name: a DNS label, and so are the names made from it (its compose
    service ``edge-NAME``, its edges ``NAME-1``, ``NAME-2``, …)."""
    name = dns_label(fields.text("name", ""), fields.name("name"))
    # (A region has at most 64 edges, so NAME-64 is its longest edge name: shorter than
    # edge-NAME.)
    dns_label(f"edge-{name}", f"{fields.name('name')} (as its compose service's name)")
    return name


def _replicas(fields: _Fields) -> int:
    """``central.replicas``: a whole number from 1 to 16; more than one share a Redis."""
    replicas = fields.number("replicas", CentralSpec.replicas, low=1, high=16)
    if replicas != int(replicas):
        raise TopologyError(f"{fields.name('replicas')}: must be a whole number")
    storage = fields.text("storage", CentralSpec.storage)
    if replicas > 1 and not storage.startswith(("redis://", "rediss://", "redis+sentinel://")):
        raise TopologyError(
            f"{fields.name('replicas')}: {int(replicas)} central replicas need a shared "
            "redis:// or redis+sentinel:// storage (a SQLite file has one writer)"
        )
    return int(replicas)


def _topology(raw: dict[str, Any]) -> Topology:
    top = _Fields(raw, "", {"time_scale", "central", "edge_defaults", "regions"})
    time_scale = top.number("time_scale", DEFAULT_TIME_SCALE, low=1e-6)
    central_fields = _Fields(
        raw.get("central", {}),
        "central",
        {"region", "storage", "write_rate_limit", "auth", "replicas"},
    )
    base = CentralSpec()
    central = CentralSpec(
        region=dns_label(central_fields.text("region", base.region), "central.region"),
        storage=central_fields.text("storage", base.storage),
        write_rate_limit=central_fields.flag("write_rate_limit", base.write_rate_limit),
        auth=central_fields.flag("auth", base.auth),
        replicas=_replicas(central_fields),
    )
    defaults = _edge_spec(
        _Fields(raw.get("edge_defaults", {}), "edge_defaults", _EDGE_FIELDS), EdgeSpec()
    )
    entries = raw.get("regions")
    if not isinstance(entries, list) or not entries:
        raise TopologyError("regions: needs at least one [[regions]] table")
    regions = []
    for index, entry in enumerate(entries):
        fields = _Fields(
            entry,
            f"regions[{index}]",
            {"name", "rtt_ms", "jitter_ms", "loss", "edges", *_EDGE_FIELDS},
        )
        name = _region_name(fields)
        region_base = RegionSpec(name, DEFAULT_REGION_RTT_MS.get(name, 0.0))
        edges = fields.number("edges", region_base.edges, low=0, high=64)
        if edges != int(edges):
            raise TopologyError(f"{fields.name('edges')}: must be a whole number")
        regions.append(
            RegionSpec(
                name=name,
                rtt_ms=fields.number("rtt_ms", region_base.rtt_ms),
                jitter_ms=fields.number("jitter_ms", region_base.jitter_ms),
                loss=fields.number("loss", region_base.loss, high=1.0),
                edges=int(edges),
                edge=_edge_spec(fields, defaults),
            )
        )
    names = [region.name for region in regions]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise TopologyError(f"regions: {duplicate!r} appears more than once")
    return Topology(central, tuple(regions), time_scale)
