"""Reading back what an experiment wrote: a JSON object checked against its dataclass.

Theory of operation: ``edgekv report`` redraws a results folder from its
``run.json`` and ``history.jsonl`` alone, and such a folder may have been
edited, truncated, or written by another edgekv. :func:`from_record` builds a
dataclass from a JSON object only when every field it needs is there with a
value of its declared type (``int``, ``float``, ``str``, ``dict``, a
``Literal``, or ``None`` where allowed; unknown fields are ignored), and
otherwise raises :class:`MalformedRecord` saying which field is wrong — one
line for the user, where the constructor would have raised a TypeError deep
inside a summary.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from edgekv.core.errors import UsageError

T = TypeVar("T")


class MalformedRecord(UsageError):
    """A JSON record that is not what edgekv wrote; the message names the field."""


def from_record(cls: type[T], raw: object) -> T:
    """``cls(**raw)``, once every field of ``raw`` it takes has its declared type."""
    if not isinstance(raw, dict):
        raise MalformedRecord(f"expected a JSON object, got {type(raw).__name__}")
    taken = {}
    for name, fits, required in _fields(typing.cast(Any, cls)):  # a class is hashable
        if name not in raw:
            if required:
                raise MalformedRecord(f"field {name!r} is missing")
            continue
        value = raw[name]
        if not fits(value):
            raise MalformedRecord(f"field {name!r} has an unexpected value {value!r:.60}")
        taken[name] = value
    return cls(**taken)


Check = Callable[[Any], bool]


@functools.cache
def _fields(cls: Any) -> list[tuple[str, Check, bool]]:
    """Each field's name, the check of its type, and whether a record must have it; made
    once per class, since a history has a line per operation."""
    hints = typing.get_type_hints(cls)
    return [
        (
            field.name,
            _check(hints[field.name]),
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
    ]


def _check(hint: Any) -> Check:
    """A function that says whether a JSON value fits the type ``hint``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = frozenset(typing.get_args(hint))
        return lambda value: isinstance(value, str | int) and value in allowed
    if origin in (typing.Union, types.UnionType):
        arms = [_check(arm) for arm in typing.get_args(hint)]
        return lambda value: any(fits(value) for fits in arms)
    if hint is type(None):
        return lambda value: value is None
    if hint is float:
        return lambda value: type(value) in (int, float)
    if hint is int:
        return lambda value: type(value) is int
    kind = origin if origin is not None else hint  # dict[str, Any] -> dict
    return lambda value: isinstance(value, kind)
