"""Every client channel edgekv makes: one address or several, plain or TLS, failing over.

Theory of operation: :func:`open_channel` is the one place a ``grpc.aio``
channel to a node is made — by the Python client, an edge's upstream, the API
node, :class:`~edgekv.control.NodeControl` and the benchmarks. It takes an
address *spec*, as every ``--central`` / ``--edge`` flag and ``central=`` does:

- ``HOST:PORT`` — one address; a name is resolved (and re-resolved) by gRPC's
  own DNS resolver, and calls are spread over every address it has;
- ``HOST:PORT,HOST:PORT,…`` — several servers (central replicas on one
  Redis): IP literals become gRPC's ``ipv4:``/``ipv6:`` target as they are;
  names are resolved once, here, with ``getaddrinfo`` (gRPC has no target
  for a list of names; a name whose addresses change later needs ``dns:///``);
- ``dns:///NAME:PORT`` (or another gRPC target: ``ipv4:``, ``ipv6:``, ``unix:``)
  — passed to gRPC as it is: a Kubernetes Service's name resolving to every
  replica, re-resolved when connections fail.

A spec gRPC could not dial — an empty element, a missing port, a port out of
range, a name that does not resolve, IPv4 and IPv6 literals mixed in a list —
is a :class:`~edgekv.core.errors.UsageError`, one line at start.

Calls are spread by gRPC's ``round_robin`` policy, which keeps a connection
(a subchannel) to every address and picks among the READY ones only. When a
server dies its connections close, its subchannel leaves READY within
milliseconds, and new calls go to the others; a call that was on the dead
connection fails UNAVAILABLE, and a read is retried by the caller
(:mod:`edgekv.retry`) on another server. A write that may have reached the
dead server is never re-sent by edgekv (a Put is not idempotent: a repeat
takes a new revision, may be refused by the one-write-per-second rule although
the first attempt succeeded, and may overwrite another writer's later value);
gRPC itself re-sends a call only while it surely never reached a server
(its transparent retry: the connection was gone before the call was sent, or
the server refused the stream unread).

A host that vanishes without closing anything (its interface down, a
partition: packets dropped, no RST) is found by HTTP/2 keepalive: every
:data:`KEEPALIVE_TIME_MS` the client pings each connection, and a ping not
answered within :data:`KEEPALIVE_TIMEOUT_MS` closes it, failing its calls
UNAVAILABLE and taking it out of the rotation — about 5 s, where TCP's own
retransmission timeout takes about 15 minutes. (Measured with a replica
SIGSTOPped — its sockets open, nothing answering — in
``tests/integration/test_central_failover.py``, where no call picks it again
while it stays stopped: gRPC reconnects, but a connection whose server sends
no HTTP/2 SETTINGS never becomes READY.) Servers must allow pings that often:
:data:`SERVER_KEEPALIVE_OPTIONS`, which every edgekv server sets.

With ``tls_ca`` the channel is TLS, trusting that CA (:mod:`edgekv.tls`). One
channel checks every server of a list against one name, the authority: the
first element's host (``NAME`` of ``dns:///NAME:PORT``). Replicas therefore
share a certificate that names it — a cluster certificate whose
subjectAltName lists every name clients use.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from edgekv.core.errors import UsageError
from edgekv.rpc import CHANNEL_OPTIONS
from edgekv.tls import read_ca

# gRPC targets passed through as they are (the scheme, then ":").
PASSED_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract")

# Spread calls over every address (the default, pick_first, would use one only).
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

# Every connection is pinged every 2 s, and one whose ping is not answered within 3 s is
# dead: a vanished host is out of the rotation within about 5 s, for a ping of 17 bytes
# per connection every 2 s. 3 s, not less: a loaded 2-core machine must not be taken for
# a dead one (a connection closed by mistake fails its writes "may have been applied").
KEEPALIVE_TIME_MS = 2000
KEEPALIVE_TIMEOUT_MS = 3000
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # While calls are in flight gRPC pings for its own reasons (flow control's BDP
    # probe), and the keepalive ping then rides on those pings, which answer to this
    # timeout (default 1 minute), not the one above: calls hung on a vanished host
    # would keep their connection "alive" for a minute.
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # Ping idle connections too: a replica must be known dead before a call picks it.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
# What a server must allow for those pings not to count as abuse (gRPC's default
# minimum is 5 minutes between pings; a client that pings more often is sent GOAWAY).
SERVER_KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
]

# Reconnect quickly after a server comes back: gRPC's default backoff grows to 2 min.
RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

FORMS = "HOST:PORT, a list HOST:PORT,HOST:PORT,... or dns:///NAME:PORT"


@dataclass(frozen=True, slots=True)
class Target:
    """What gRPC dials for an address spec."""

    # The spec as given (for messages).
    spec: str
    # gRPC's target string.
    target: str
    # The name the server's certificate is checked against (and HTTP/2's :authority);
    # None: gRPC's own choice, the target's host.
    authority: str | None = None
    # How many addresses the spec named (1 for a single name or a passed-through target).
    elements: int = 1


def parse_target(spec: str) -> Target:
    """The gRPC target of ``spec`` (see the module docstring); UsageError when it is bad.

    Names in a list are resolved here, once, with ``getaddrinfo`` (a blocking call).
    """
    text = spec.strip()
    if not text:
        raise UsageError(f"no address given: expected {FORMS}")
    scheme, colon, rest = text.partition(":")
    if colon and scheme in PASSED_SCHEMES:
        return _passed_through(spec, scheme, rest)
    if "://" in text:
        raise UsageError(f"bad address {spec!r}: a {scheme}:// URL is no gRPC address ({FORMS})")
    elements = [element.strip() for element in text.split(",")]
    parsed = [_host_port(spec, element, index) for index, element in enumerate(elements, 1)]
    if len(parsed) == 1:
        return Target(spec, elements[0])
    hosts = [host for host, _port in parsed]
    families = {_family(host) for host in hosts}
    if None in families:  # names: resolve them
        addresses = _resolved(spec, parsed)
    elif len(families) == 1:
        addresses = [(host, port) for host, port in parsed]
    else:
        raise UsageError(
            f"bad address list {spec!r}: it mixes IPv4 and IPv6 addresses, and one gRPC "
            "channel takes one family; use names or dns:///NAME:PORT"
        )
    return Target(spec, _ip_target(addresses), authority=elements[0], elements=len(elements))


def _passed_through(spec: str, scheme: str, rest: str) -> Target:
    if scheme == "dns":
        # dns:[//DNS-SERVER/]HOST:PORT
        name = rest[2:].partition("/")[2] if rest.startswith("//") else rest.lstrip("/")
        _host_port(spec, name, 1)
    elif not rest:
        raise UsageError(f"bad address {spec!r}: nothing after {scheme}:")
    return Target(spec, spec.strip())


def _host_port(spec: str, element: str, index: int) -> tuple[str, int]:
    """(host, port) of one ``HOST:PORT`` (``[V6]:PORT`` for an IPv6 literal)."""
    where = f"bad address {spec!r}" if "," not in spec else f"bad address list {spec!r}"
    if not element:
        raise UsageError(f"{where}: element {index} is empty; expected {FORMS}")
    if element.startswith("["):
        host, bracket, tail = element[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise UsageError(f"{where}: {element!r} is not [IPV6]:PORT")
        port_text = tail[1:]
        if _family(host) != socket.AF_INET6:
            raise UsageError(f"{where}: {host!r} in brackets is not an IPv6 address")
    else:
        host, colon, port_text = element.rpartition(":")
        if not colon:
            raise UsageError(f"{where}: {element!r} has no port; expected HOST:PORT")
        if not host:
            raise UsageError(f"{where}: {element!r} has no host; expected HOST:PORT")
        if ":" in host:
            raise UsageError(f"{where}: write an IPv6 address in brackets, [{host}]:{port_text}")
    if not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
        raise UsageError(f"{where}: port {port_text!r} of {element!r} is not 1 to 65535")
    return host, int(port_text)


def _family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal; None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def _resolved(spec: str, parsed: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Every address of every element, one family (IPv4 if every element has one)."""
    by_element: list[list[tuple[int, str, int]]] = []
    for host, port in parsed:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UsageError(
                f"bad address list {spec!r}: cannot resolve {host!r} ({exc.strerror})"
            ) from None
        by_element.append(
            [(int(family), str(sockaddr[0]), port) for family, _, _, _, sockaddr in infos]
        )
    for family in (socket.AF_INET, socket.AF_INET6):
        if all(any(f == family for f, _, _ in element) for element in by_element):
            seen: dict[tuple[str, int], None] = {}
            for element in by_element:
                for f, host, port in element:
                    if f == family:
                        seen.setdefault((host, port))
            return list(seen)
    raise UsageError(
        f"bad address list {spec!r}: its names resolve to IPv4 for some and IPv6 for "
        "others, and one gRPC channel takes one family"
    )


def _ip_target(addresses: Sequence[tuple[str, int]]) -> str:
    if _family(addresses[0][0]) == socket.AF_INET6:
        return "ipv6:" + ",".join(f"[{host}]:{port}" for host, port in addresses)
    return "ipv4:" + ",".join(f"{host}:{port}" for host, port in addresses)


def channel_options(
    target: Target, options: Sequence[tuple[str, Any]] = CHANNEL_OPTIONS
) -> list[tuple[str, Any]]:
    """``options`` with the balancing, keepalive and reconnect options every channel has."""
    extra: list[tuple[str, Any]] = [
        ("grpc.service_config", ROUND_ROBIN),
        *KEEPALIVE_OPTIONS,
        *RECONNECT_OPTIONS,
    ]
    if target.authority is not None:
        extra.append(("grpc.default_authority", target.authority))
    given = {name for name, _ in options}
    # gRPC takes the first of two options of one name: the caller's win.
    return [*options, *(option for option in extra if option[0] not in given)]


def open_channel(
    spec: str | Target,
    *,
    tls_ca: str | os.PathLike[str] | None = None,
    options: Sequence[tuple[str, Any]] = CHANNEL_OPTIONS,
    tls_server_name: str | None = None,
) -> Any:
    """A ``grpc.aio`` channel to ``spec`` (see the module docstring; or a :class:`Target`
    parsed already); TLS with ``tls_ca``. ``tls_server_name`` is the name the server's
    certificate must have when it is not the host dialled (a health check of
    127.0.0.1 inside a container whose certificate names its Service).

    Raises UsageError for a bad spec or CA file. (Typed ``Any``: grpcio has no types.)
    """
    target = spec if isinstance(spec, Target) else parse_target(spec)
    every = channel_options(target, options)
    if tls_ca is None:
        return grpc.aio.insecure_channel(target.target, options=every)
    if tls_server_name:
        every.insert(0, ("grpc.ssl_target_name_override", tls_server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=read_ca(tls_ca))
    return grpc.aio.secure_channel(target.target, credentials, options=every)
