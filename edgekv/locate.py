"""Where the cluster is: flags, then environment variables, then the cluster state file.

Theory of operation: the ``kv`` commands, :func:`edgekv.bindings` and anything
else that needs an address asks here. The order is fixed — an explicit
``--central`` / ``--edge`` flag, then ``EDGEKV_CENTRAL`` /
``EDGEKV_EDGE_<REGION>`` (region upper-cased, ``-`` as ``_``), then the state
file a local launcher writes (``$EDGEKV_STATE_FILE``, by default
``~/.edgekv/cluster.json``). When none answers, the error says all three ways.
The CA a TLS client trusts is found the same way (:func:`locate_tls_ca`):
``--tls-ca``, ``EDGEKV_TLS_CA``, then the state file's, for its cluster's own
addresses only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgekv.clock import DEFAULT_TIME_SCALE
from edgekv.core.errors import UsageError
from edgekv.private_files import make_private_dirs, write_private_text
from edgekv.process import ProcessIdentity
from edgekv.tls import CA_VARIABLE


class ClusterNotFoundError(UsageError):
    """No address for the central store or for a region's edge."""


@dataclass
class ClusterState:
    """What a launcher records about a running cluster.

    Each process it started is recorded with its identity — PID, start time
    and command line (:class:`~edgekv.process.ProcessIdentity`) — so that
    ``edgekv down`` signals a PID only while it is still that process.
    """

    central: str
    # Region → edge addresses in that region.
    edges: dict[str, list[str]] = field(default_factory=dict)
    # Node name → {"kind", "region", "address", "pid", "started_ticks", "cmdline", "log"};
    # empty for hand-made files.
    nodes: dict[str, dict[str, object]] = field(default_factory=dict)
    launcher_pid: int | None = None
    time_scale: float = DEFAULT_TIME_SCALE
    time_anchor: float | None = None
    # The launcher's {"pid", "started_ticks", "cmdline"}.
    launcher: dict[str, object] = field(default_factory=dict)
    # The REST API node's address (HOST:PORT), and the account and API token `edgekv up`
    # made for it (the file is its owner's only); None for a cluster without one.
    api: str | None = None
    account_id: str | None = None
    api_token: str | None = None
    # Where central keeps its operator token (edgekv token reads it).
    operator_token_file: str | None = None
    # The CA that signed every node's TLS certificate (a PEM file), None for plain gRPC.
    tls_ca: str | None = None

    def addresses(self) -> set[str]:
        """Every address of the cluster's nodes (each of a list ``A,B`` too)."""
        named = [self.central, self.api or "", *(a for group in self.edges.values() for a in group)]
        named += [str(info.get("address", "")) for info in self.nodes.values()]
        return {part.strip() for spec in named for part in [spec, *spec.split(",")] if part}

    def launcher_identity(self) -> ProcessIdentity | None:
        """The launcher as recorded; None when only its PID (or nothing) was."""
        return ProcessIdentity.from_json(self.launcher) if self.launcher_pid else None

    def node_identities(self) -> dict[str, ProcessIdentity | None]:
        """Each node's process as recorded; None for a node recorded by its PID alone."""
        return {name: ProcessIdentity.from_json(info) for name, info in self.nodes.items()}

    def to_json(self) -> str:
        return json.dumps(
            {
                "central": self.central,
                "edges": self.edges,
                "nodes": self.nodes,
                "launcher_pid": self.launcher_pid,
                "time_scale": self.time_scale,
                "time_anchor": self.time_anchor,
                # Only a launcher's own file has one (a compose cluster's has none).
                **({"launcher": self.launcher} if self.launcher else {}),
                **{
                    name: value
                    for name, value in (
                        ("api", self.api),
                        ("account_id", self.account_id),
                        ("api_token", self.api_token),
                        ("operator_token_file", self.operator_token_file),
                        ("tls_ca", self.tls_ca),
                    )
                    if value is not None
                },
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, path: Path) -> ClusterState:
        try:
            raw = json.loads(text)
            central = raw["central"]
            edges = {
                str(region): list(map(str, addresses))
                for region, addresses in raw.get("edges", {}).items()
            }
            nodes = {str(name): dict(info) for name, info in raw.get("nodes", {}).items()}
            launcher_pid = raw.get("launcher_pid")
            time_scale = float(raw.get("time_scale", DEFAULT_TIME_SCALE))
            anchor = raw.get("time_anchor")
            launcher = dict(raw.get("launcher") or {})
            api = {
                name: None if raw.get(name) is None else str(raw[name])
                for name in ("api", "account_id", "api_token", "operator_token_file", "tls_ca")
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ClusterNotFoundError(f"{path}: not a cluster state file ({exc})") from None
        return cls(
            str(central),
            edges,
            nodes,
            None if launcher_pid is None else int(launcher_pid),
            time_scale,
            None if anchor is None else float(anchor),
            launcher,
            **api,
        )

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file; readable by its owner only."""
        make_private_dirs(path.parent)
        partial = path.with_suffix(".partial")
        write_private_text(partial, self.to_json())
        partial.replace(path)


def state_file_path(environ: Mapping[str, str] = os.environ) -> Path:
    override = environ.get("EDGEKV_STATE_FILE")
    return Path(override) if override else Path.home() / ".edgekv" / "cluster.json"


def read_state(environ: Mapping[str, str] = os.environ) -> ClusterState | None:
    """The state file named by the environment (or the default), None when there is none."""
    path = state_file_path(environ)
    if not path.exists():
        return None
    return read_state_file(path)


def read_state_file(path: Path) -> ClusterState:
    """A state file at an explicit path; one clear error when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterNotFoundError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return ClusterState.from_json(text, path)


def edge_variable(region: str) -> str:
    return "EDGEKV_EDGE_" + region.upper().replace("-", "_")


def locate_central(
    flag: str | None = None,
    environ: Mapping[str, str] = os.environ,
    how_to_pass: str = "--central HOST:PORT",
) -> str:
    """``flag``, else ``EDGEKV_CENTRAL``, else the state file's central; ``how_to_pass``
    names the first way in the error (a flag for the CLI, an argument for Python)."""
    if flag:
        return flag
    if environ.get("EDGEKV_CENTRAL"):
        return environ["EDGEKV_CENTRAL"]
    state = read_state(environ)
    if state is not None:
        return state.central
    raise ClusterNotFoundError(
        f"no central store given: pass {how_to_pass}, set EDGEKV_CENTRAL, "
        "or start a cluster with `edgekv up`"
    )


def locate_tls_ca(
    flag: str | os.PathLike[str] | None,
    addresses: Iterable[str],
    environ: Mapping[str, str] = os.environ,
) -> str | None:
    """The CA a client dialling ``addresses`` trusts: ``flag``, else ``EDGEKV_TLS_CA``, else
    the state file's, but only when every address is one of that cluster's (a server
    named by hand is not assumed to be the local cluster's); None: plain gRPC."""
    if flag:
        return os.fspath(flag)
    if environ.get(CA_VARIABLE):
        return environ[CA_VARIABLE]
    try:
        state = read_state(environ)
    except ClusterNotFoundError:  # a broken state file names no cluster, and no CA
        return None
    if state is None or state.tls_ca is None:
        return None
    known = state.addresses()
    wanted = {part.strip() for spec in addresses for part in spec.split(",")}
    return state.tls_ca if wanted and wanted <= known else None


def locate_edge(
    region: str,
    flag: str | None = None,
    environ: Mapping[str, str] = os.environ,
    how_to_pass: str = "--edge HOST:PORT",
) -> str:
    if flag:
        return flag
    variable = edge_variable(region)
    if environ.get(variable):
        return environ[variable]
    state = read_state(environ)
    if state is not None:
        addresses = state.edges.get(region)
        if addresses:
            return addresses[0]
        known = ", ".join(sorted(state.edges)) or "none"
        raise ClusterNotFoundError(
            f"the cluster in {state_file_path(environ)} has no edge in region {region!r} "
            f"(regions: {known})"
        )
    raise ClusterNotFoundError(
        f"no edge for region {region!r}: pass {how_to_pass}, set {variable}, "
        "or start a cluster with `edgekv up`"
    )
