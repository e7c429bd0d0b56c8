"""Tagged JSON: the arguments a scenario passes and the results both sides give back.

Theory of operation: a scenario is written once, in Python (:mod:`.scenarios`),
and run by two interpreters — ``worker.js`` inside Miniflare and
:mod:`.edgekv_side` against edgekv's Python API — so its arguments travel as
JSON. Plain JSON values (strings, numbers, lists, objects) stand for
themselves; what JSON cannot carry has a tag: ``{"$": "bytes", "hex": …}``,
``{"$": "number", "repr": "NaN"}``, ``{"$": "undefined"}``, ``{"$": "map",
"entries": …}`` (a multi-key read's ``Map``), ``{"$": "cursor", "call": i}``
(the cursor call *i* returned) and ``{"$": "now", "plus": s}`` (the current
Unix second plus *s*, resolved by each side when it makes the call). Lone
surrogates travel as JSON's ``\\udc00`` escapes, which both sides read as a
lone surrogate.

Results come back in the same tags. :func:`normalised` then removes what the
two sides may rightly differ in — each reader's ``cacheStatus``, a cursor's
opaque text, an expiration's distance from the run's own clock — so that what
remains can be compared with ``==``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

JSONValue = Any


class Undefined:
    """JavaScript's ``undefined``: an argument left out, or what put and delete return."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = Undefined()


@dataclass(frozen=True)
class CursorOf:
    """The cursor that call ``call`` (of the same scenario) returned."""

    call: int


@dataclass(frozen=True)
class NowPlus:
    """The current Unix time in whole seconds plus ``plus_s``, taken when the call is made."""

    plus_s: int


def encode(value: Any) -> JSONValue:
    """A scenario's Python argument as tagged JSON."""
    if value is UNDEFINED:
        return {"$": "undefined"}
    if isinstance(value, bytes):
        return {"$": "bytes", "hex": value.hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$": "number", "repr": js_number(value)}
    if isinstance(value, CursorOf):
        return {"$": "cursor", "call": value.call}
    if isinstance(value, NowPlus):
        return {"$": "now", "plus": value.plus_s}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    return value


def js_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def normalised(value: JSONValue, now_s: int) -> JSONValue:
    """``value`` without what two correct sides may differ in (see the module docstring).

    Integral floats become ints (JavaScript has one number type); ``cacheStatus`` goes;
    a cursor becomes ``"<cursor>"``; an ``expiration`` — and a number in an error
    message that is within a year of now — becomes its distance from ``now_s``, the
    start of the scenario on that side's clock, as ``now+60s`` (a farther one is
    rounded to 10^5 s). The two sides' scenarios start seconds apart and wait for young
    seconds at different times, so :func:`alike` lets such distances differ by a little.
    """
    if isinstance(value, list):
        return [normalised(item, now_s) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, dict):
        return value
    shown: dict[str, JSONValue] = {}
    for key, item in value.items():
        if key == "cacheStatus":
            continue
        if key == "cursor" and isinstance(item, str):
            shown[key] = "<cursor>"
        elif key == "expiration" and isinstance(item, int | float):
            shown[key] = _from_now(int(item), now_s)
        elif key == "message" and isinstance(item, str):
            shown[key] = _NUMBER.sub(lambda m: _from_now_if_near(int(m[0]), now_s), item)
        else:
            shown[key] = normalised(item, now_s)
    return shown


_NUMBER = re.compile(r"\b\d{9,11}\b")
_A_YEAR_S = 366 * 24 * 3600


def _from_now(unix_s: int, now_s: int) -> str:
    """Near expirations as a distance from now; far ones (an int32's end, 9999's) as the
    date they are, to a day: the two sides ran seconds apart, so either form compares."""
    if abs(unix_s - now_s) >= _A_YEAR_S:
        return f"~{round(unix_s, -5)}"
    return f"now{unix_s - now_s:+d}s"


def _from_now_if_near(unix_s: int, now_s: int) -> str:
    return _from_now(unix_s, now_s) if abs(unix_s - now_s) < _A_YEAR_S else str(unix_s)


NOW_RELATIVE = re.compile(r"now([+-]\d+)s")
# A far date as _from_now shows it.
FAR_DATE = re.compile(r"~\d+")
# How far two distances from "now" may differ and still be the same answer: each side
# waits up to a second for a young second before each call that sends "now + s".
CLOCK_SLACK_S = 4


def alike(ours: JSONValue, theirs: JSONValue) -> bool:
    """``ours == theirs``, except that distances from now (``now+60s``) may differ by
    :data:`CLOCK_SLACK_S`, in values and inside messages alike."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(alike(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(alike, ours, theirs))
    if isinstance(ours, str) and isinstance(theirs, str):
        mine, yours = NOW_RELATIVE.findall(ours), NOW_RELATIVE.findall(theirs)
        return (
            NOW_RELATIVE.sub("now", ours) == NOW_RELATIVE.sub("now", theirs)
            and len(mine) == len(yours)
            and all(abs(int(a) - int(b)) <= CLOCK_SLACK_S for a, b in zip(mine, yours, strict=True))
        )
    return bool(ours == theirs) and type(ours) is type(theirs)
