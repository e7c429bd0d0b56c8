"""Address specs as every ``--central`` takes them, and the CA a client finds.

:func:`edgekv.channels.parse_target` turns ``HOST:PORT``, a list of them or a
``dns:///`` target into what gRPC dials, and refuses what gRPC could not dial
with one line; :func:`edgekv.locate.locate_tls_ca` says which CA a client
trusts. (That the channels spread and fail over is shown on real processes
in ``tests/integration/test_central_failover.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekv.channels import ROUND_ROBIN, Target, channel_options, parse_target
from edgekv.core.errors import UsageError
from edgekv.locate import ClusterState, locate_tls_ca


@pytest.mark.parametrize(
    ("spec", "target", "authority"),
    [
        # One address: gRPC's own resolver (a name is re-resolved; all its addresses used).
        ("127.0.0.1:7000", "127.0.0.1:7000", None),
        ("localhost:7000", "localhost:7000", None),
        ("[::1]:7000", "[::1]:7000", None),
        # IP literals: one ipv4:/ipv6: target, the certificate checked against the first.
        ("10.0.0.1:7000,10.0.0.2:7001", "ipv4:10.0.0.1:7000,10.0.0.2:7001", "10.0.0.1:7000"),
        (" 10.0.0.1:7000 , 10.0.0.2:7000 ", "ipv4:10.0.0.1:7000,10.0.0.2:7000", "10.0.0.1:7000"),
        ("[::1]:7000,[::2]:7000", "ipv6:[::1]:7000,[::2]:7000", "[::1]:7000"),
        # Names in a list: resolved here (localhost has 127.0.0.1; IPv4 is preferred).
        ("localhost:7000,127.0.0.1:7001", "ipv4:127.0.0.1:7000,127.0.0.1:7001", "localhost:7000"),
        # gRPC targets pass through.
        ("dns:///central.edgekv.svc:7000", "dns:///central.edgekv.svc:7000", None),
        ("dns://10.0.0.53/central:7000", "dns://10.0.0.53/central:7000", None),
        ("ipv4:10.0.0.1:7000,10.0.0.2:7000", "ipv4:10.0.0.1:7000,10.0.0.2:7000", None),
    ],
)
def test_specs_become_grpc_targets(spec: str, target: str, authority: str | None) -> None:
    parsed = parse_target(spec)
    assert (parsed.target, parsed.authority) == (target, authority)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("", "no address given"),
        ("127.0.0.1:7000,", "element 2 is empty"),
        (",127.0.0.1:7000", "element 1 is empty"),
        ("127.0.0.1:7000,,127.0.0.1:7001", "element 2 is empty"),
        ("127.0.0.1", "'127.0.0.1' has no port"),
        ("127.0.0.1:7000,central", "'central' has no port"),
        (":7000", "':7000' has no host"),
        ("127.0.0.1:0", "port '0' of '127.0.0.1:0' is not 1 to 65535"),
        ("127.0.0.1:65536", "is not 1 to 65535"),
        ("127.0.0.1:70x", "port '70x'"),
        ("::1:7000", "write an IPv6 address in brackets, [::1]:7000"),
        ("[127.0.0.1]:7000", "is not an IPv6 address"),
        ("[::1]7000", "is not [IPV6]:PORT"),
        ("127.0.0.1:7000,[::1]:7000", "mixes IPv4 and IPv6"),
        ("127.0.0.1:7000,no-such-host.invalid:7000", "cannot resolve 'no-such-host.invalid'"),
        ("http://127.0.0.1:7000", "a http:// URL is no gRPC address"),
        ("dns:///central", "'central' has no port"),
        ("ipv4:", "nothing after ipv4:"),
    ],
)
def test_bad_specs_are_one_line_usage_errors(spec: str, words: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_target(spec)
    message = str(refused.value)
    assert words in message, message
    assert "\n" not in message


def test_every_channel_balances_and_keeps_alive_and_the_callers_options_win() -> None:
    options = dict(channel_options(parse_target("10.0.0.1:7000,10.0.0.2:7000")))
    assert options["grpc.service_config"] == ROUND_ROBIN
    assert options["grpc.default_authority"] == "10.0.0.1:7000"
    assert options["grpc.keepalive_time_ms"] < options["grpc.keepalive_timeout_ms"] * 2
    assert options["grpc.http2.ping_timeout_ms"] == options["grpc.keepalive_timeout_ms"]
    # gRPC takes the first of two options of one name: a caller's own stays the only one.
    mine = channel_options(Target("x", "x:1"), [("grpc.max_reconnect_backoff_ms", 5)])
    assert [value for name, value in mine if name == "grpc.max_reconnect_backoff_ms"] == [5]


def test_a_client_trusts_the_given_ca_then_the_variable_then_its_clusters(tmp_path: Path) -> None:
    state_file = tmp_path / "cluster.json"
    ClusterState(
        "127.0.0.1:7000",
        edges={"eu-west": ["127.0.0.1:7101"]},
        api="127.0.0.1:8787",
        tls_ca=str(tmp_path / "ca.crt"),
    ).write(state_file)
    environ = {"EDGEKV_STATE_FILE": str(state_file)}
    cluster_ca = str(tmp_path / "ca.crt")
    assert locate_tls_ca("given.crt", ["127.0.0.1:7000"], environ) == "given.crt"
    assert locate_tls_ca(None, ["127.0.0.1:7000"], {**environ, "EDGEKV_TLS_CA": "v.crt"}) == "v.crt"
    # The state file's CA is for that cluster's own addresses only.
    assert locate_tls_ca(None, ["127.0.0.1:7000", "127.0.0.1:7101"], environ) == cluster_ca
    assert locate_tls_ca(None, ["127.0.0.1:8787"], environ) == cluster_ca
    assert locate_tls_ca(None, ["127.0.0.1:7000,127.0.0.1:7101"], environ) == cluster_ca
    assert locate_tls_ca(None, ["127.0.0.1:9999"], environ) is None
    assert locate_tls_ca(None, ["127.0.0.1:7000,127.0.0.1:9999"], environ) is None
    # No state file, or a plain cluster's: plain gRPC.
    assert locate_tls_ca(None, ["127.0.0.1:7000"], {"EDGEKV_STATE_FILE": "/nonexistent"}) is None
    ClusterState("127.0.0.1:7000").write(state_file)
    assert locate_tls_ca(None, ["127.0.0.1:7000"], environ) is None
    # A state file round-trips its CA.
    again = ClusterState.from_json(ClusterState("a:1", tls_ca="/x/ca.crt").to_json(), state_file)
    assert again.tls_ca == "/x/ca.crt"
