"""The judge: scenarios run through Miniflare, which runs Cloudflare's KV binding inside workerd.

Theory of operation: ``runner.mjs`` starts one Miniflare with a KV namespace
per scenario and the small Worker in ``worker.js``, sends each scenario's
calls to it, and prints what each call returned or threw. Miniflare is pinned
in ``package.json`` / ``package-lock.json`` (4.20260426.0, the newest 4.x that
runs on Node 20); :func:`ensure_installed` runs ``npm ci`` when
``node_modules`` is missing or older than the lock file. Without ``node`` and
``npm`` the test skips on a developer's machine and fails in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.differential.codec import encode
from tests.differential.scenarios import Scenario

HERE = Path(__file__).resolve().parent
INSTALLED_STAMP = HERE / "node_modules" / ".package-lock.json"
RUN_TIMEOUT_S = 300


def node_or_skip() -> str:
    """The ``node`` executable; outside CI a missing node skips, in CI it fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "the differential test needs node and npm (Node >= 18) for Miniflare"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must have them")
        pytest.skip(reason)
    return node


def ensure_installed() -> None:
    """``npm ci`` in this folder unless node_modules matches package-lock.json already."""
    lock = HERE / "package-lock.json"
    if INSTALLED_STAMP.exists() and INSTALLED_STAMP.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        check=True,
        timeout=RUN_TIMEOUT_S,
    )


def run_in_miniflare(node: str, scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """Per scenario, ``{"now_s": …, "results": […]}`` as Workers' own binding gave them."""
    calls = [{"calls": [encode(call.as_json()) for call in s.calls]} for s in scenarios]
    completed = subprocess.run(
        [node, str(HERE / "runner.mjs")],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=HERE,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"runner.mjs failed ({completed.returncode}):\n{completed.stderr}")
    answers: list[dict[str, Any]] = json.loads(completed.stdout)
    return answers
