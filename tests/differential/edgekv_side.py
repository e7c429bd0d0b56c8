"""The same scenarios through edgekv's Python API, at central or through an edge.

Theory of operation: each call of a scenario is the Workers binding's method
with JavaScript's arguments (``get(key, "json")``, ``put(key, value,
{expirationTtl: 60})``, ``list({prefix})``); :func:`call_kv` makes the
Python call a Worker author would write for it (``get(key, type="json")``,
``put(key, value, expiration_ttl=60)``, ``list(prefix=…)``), and
:func:`as_result` turns what it returned — or what it raised — into the tagged
JSON ``worker.js`` answers with, so that the two can be compared. An exception
that is a Python ``TypeError`` is reported as JavaScript's ``TypeError``,
anything else as ``Error``; the message is the exception's text.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from edgekv.client import KVNamespace, ListResult, ValueWithMetadata, WriteResult
from tests.differential.codec import (
    UNDEFINED,
    CursorOf,
    JSONValue,
    NowPlus,
    Undefined,
    js_number,
)
from tests.differential.scenarios import Scenario

# JavaScript option names and the Python keyword each becomes.
_PYTHON_NAMES = {
    "type": "type",
    "cacheTtl": "cache_ttl",
    "expiration": "expiration",
    "expirationTtl": "expiration_ttl",
    "metadata": "metadata",
    "prefix": "prefix",
    "limit": "limit",
    "cursor": "cursor",
}
# Where each method takes its options (``put(key, value, {expirationTtl})``).
_OPTIONS_AT = {"get": 1, "getWithMetadata": 1, "put": 2, "list": 0}
# Late in a second, a "now + 60" taken here may be a second behind central's clock
# when the put arrives; such calls wait for the next second to be young.
_YOUNG_SECOND = 0.7


async def run_scenario(kv: KVNamespace, scenario: Scenario) -> dict[str, Any]:
    """``{"now_s": …, "results": […]}``, as ``worker.js`` answers for the same scenario."""
    now_s = math.floor(time.time())
    results: list[JSONValue] = []
    for call in scenario.calls:
        args = [_resolved(arg, results) for arg in call.args]
        if any(isinstance(arg, NowPlus) for arg in _flat(call.args)):
            await _wait_for_a_young_second()
            args = [_resolved(arg, results) for arg in call.args]
        many = call.op in ("get", "getWithMetadata") and isinstance(args[0], list)
        try:
            answer = await call_kv(kv, call.op, args)
            results.append({"ok": await (_as_map(answer) if many else as_result(answer))})
        except Exception as exc:  # what the binding raised is the result being compared
            kind = "TypeError" if isinstance(exc, TypeError) else "Error"
            results.append({"error": {"type": kind, "message": str(exc)}})
    return {"now_s": now_s, "results": results}


async def call_kv(kv: KVNamespace, op: str, args: list[Any]) -> Any:
    """The Python call for the binding's ``op(*args)``."""
    if op == "pause":  # not the binding's: lets a second pass, for the write-rate rule
        await asyncio.sleep(args[0])
        return UNDEFINED
    positional, keywords = _python_arguments(op, args)
    if op == "get":
        return await kv.get(*positional, **keywords)
    if op == "getWithMetadata":
        return await kv.get_with_metadata(*positional, **keywords)
    if op == "put":
        return await kv.put(*positional, **keywords)
    if op == "delete":
        return await kv.delete(*positional)
    if op == "list":
        return await kv.list(**keywords)
    raise ValueError(f"no such binding method: {op}")


def _python_arguments(op: str, args: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The binding's arguments as Python's: those before the options positional, the
    options (an object, or for reads a type alone) as keywords, ``undefined`` left out."""
    at = _OPTIONS_AT.get(op, len(args))
    if len(args) > at + 1:
        raise ValueError(f"{op}: arguments after its options: {args!r}")
    positional, options = list(args[:at]), args[at] if len(args) > at else UNDEFINED
    if isinstance(options, str) and op in ("get", "getWithMetadata"):
        return positional, {"type": options}  # get(key, "json")
    if isinstance(options, Undefined):
        return positional, {}
    if not isinstance(options, dict):
        raise ValueError(f"{op}: options must be an object or a type, not {options!r}")
    keywords = {_PYTHON_NAMES[name]: value for name, value in options.items()}
    return positional, {name: value for name, value in keywords.items() if value is not UNDEFINED}


async def as_result(value: Any) -> JSONValue:
    """What ``worker.js`` would answer for the JavaScript value ``value`` stands for."""
    if isinstance(value, WriteResult | Undefined):
        return {"$": "undefined"}
    if isinstance(value, ValueWithMetadata):
        return {"value": await as_result(value.value), "metadata": await as_result(value.metadata)}
    if isinstance(value, ListResult):
        listed: dict[str, JSONValue] = {
            "keys": [await _listed_key(key) for key in value.keys],
            "list_complete": value.list_complete,
        }
        if value.cursor is not None:
            listed["cursor"] = value.cursor
        return listed
    if isinstance(value, Mapping):
        return {key: await as_result(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return {"$": "bytes", "hex": value.hex()}
    if isinstance(value, AsyncIterator):
        return {"$": "bytes", "hex": b"".join([part async for part in value]).hex()}
    if isinstance(value, list):
        return [await as_result(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"$": "number", "repr": js_number(value)}
    return value


async def _as_map(answer: Mapping[str, Any]) -> JSONValue:
    """A multi-key read's ``{key: result}``, shown as the ``Map`` the binding returns."""
    return {"$": "map", "entries": [[key, await as_result(item)] for key, item in answer.items()]}


async def _listed_key(key: Any) -> JSONValue:
    shown: dict[str, JSONValue] = {"name": key.name}
    if key.expiration is not None:
        shown["expiration"] = key.expiration
    if key.metadata is not None:
        shown["metadata"] = await as_result(key.metadata)
    return shown


def _resolved(arg: Any, results: list[JSONValue]) -> Any:
    if isinstance(arg, NowPlus):
        return math.floor(time.time()) + arg.plus_s
    if isinstance(arg, CursorOf):
        answer = results[arg.call]
        return answer.get("ok", {}).get("cursor") if isinstance(answer, dict) else None
    if isinstance(arg, dict):
        return {name: _resolved(value, results) for name, value in arg.items()}
    if isinstance(arg, list):
        return [_resolved(item, results) for item in arg]
    return arg


def _flat(args: Any) -> list[Any]:
    if isinstance(args, dict):
        return [item for value in args.values() for item in _flat(value)]
    if isinstance(args, list | tuple):
        return [item for value in args for item in _flat(value)]
    return [args]


async def _wait_for_a_young_second() -> None:
    fraction = time.time() % 1
    if fraction > _YOUNG_SECOND:
        await asyncio.sleep(1 - fraction + 0.01)
