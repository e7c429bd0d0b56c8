"""Scraping a node's Prometheus endpoint in tests: ``{metric: {labels: value}}``."""

from __future__ import annotations

import asyncio
import re
import urllib.request

# name{labels} value, or name value for a metric without labels (labels "").
METRIC_SAMPLE = re.compile(r"^(?P<name>\w+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def parse(text: str) -> dict[str, dict[str, float]]:
    samples: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = METRIC_SAMPLE.match(line)
        if match:
            samples.setdefault(match["name"], {})[match["labels"] or ""] = float(match["value"])
    return samples


async def scrape(port: int) -> dict[str, dict[str, float]]:
    """``{metric name: {labels: value}}`` from the /metrics page on ``port``."""
    return parse(await asyncio.to_thread(_fetch, f"http://127.0.0.1:{port}/metrics"))
