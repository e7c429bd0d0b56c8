"""``edgekv api`` as a user runs it: a real process in front of a real central process.

It prints its ready line, answers its health endpoint, serves a request, exports
Prometheus metrics, and stops gracefully on SIGTERM, leaving nothing in its log
but its own lines.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import ClassVar

from tests.support.central_process import start_central
from tests.support.node_process import NodeProcess, node_command, start_node


class ApiProcess(NodeProcess):
    kind: ClassVar[str] = "api"


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_api_node_serves_reports_and_stops_gracefully(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with start_central("memory:", logs) as central:
        made = subprocess.run(
            [sys.executable, "-m", "edgekv", "token", "create", "--account", "0" * 32,
             "--central", central.address],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        token = made.stdout.strip()
        metrics = f"127.0.0.1:{_free_port()}"
        argv = node_command("api", "--central", central.address, "--metrics-listen", metrics)
        api = start_node(ApiProcess, argv, logs)
        with api:
            base = f"http://{api.address}"
            assert api.ready_line.endswith(f"base-url={base}/client/v4")
            assert _get(f"{base}/healthz")[0] == 200
            accounts = f"{base}/client/v4/accounts/{'0' * 32}/storage/kv/namespaces"
            status, body = _get(accounts, token)
            assert status == 200 and b'"success": true' in body
            assert _get(accounts)[0] == 401
            status, exported = _get(f"http://{metrics}/metrics")
            assert status == 200
            assert (
                b'edgekv_api_requests_total{route="list namespaces",status="200"} 1.0' in exported
            )
            assert (
                b'edgekv_api_requests_total{route="list namespaces",status="401"} 1.0' in exported
            )
            assert b"edgekv_api_unforeseen_errors 0.0" in exported
            assert api.terminate() == 0
        assert "Traceback" not in api.stderr()
        assert "stopped" in api.stderr()
