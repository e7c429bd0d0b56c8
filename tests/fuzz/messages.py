"""Hypothesis strategies for edgekv's request messages, and mutations of their bytes.

Theory of operation: :func:`message` builds a strategy for any message type
from its protobuf descriptor, so a field or method added to the contract is
fuzzed without being listed here. Each field is set or left out; its value is
drawn by type (integers around their bounds, doubles including NaN and the
infinities, strings and bytes of any content), and for the fields whose names
carry meaning (``namespace_id``, ``key``, ``metadata_json``, ``cursor``,
``title``) also from values chosen to sit on edgekv's rules: ids of namespaces
that exist, keys of 512 and 513 bytes, ``.``, nested JSON, cursors that look
almost right. :func:`mutated` then damages the serialised bytes — flips,
cuts, inserts, appends a field of the wrong wire type, or nothing — which is
how non-UTF-8 text and malformed messages reach the servers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DOTS = (b".", b"..")
MAX_DEPTH = 3


def _bounded_int(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [low, low + 1, -1, 0, 1, 59, 60, 61, 1000, 1001, high - 1, high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _names(namespace_ids: Sequence[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Values of the fields whose names mean something to edgekv."""
    json_texts = st.one_of(
        st.just('{"n": 1}'),
        st.sampled_from(["{}", "null", "NaN", "-Infinity", '{"x": NaN}', "[" * 1024, "1e999"]),
        st.text(max_size=40).map(lambda text: json.dumps({"a": text})),
        st.text(max_size=1100),
    )
    # Mostly keys that pass, so that requests get past validation; then the rules' edges.
    good_keys = st.text(min_size=1, max_size=24).map(str.encode).filter(lambda k: k not in DOTS)
    keys = st.one_of(
        good_keys,
        good_keys,
        st.sampled_from([b"", b".", b"..", b"a" * 512, b"a" * 513, "é".encode() * 256, b"k"]),
        st.binary(max_size=600),
    )
    return {
        # Mostly a namespace that exists, so that requests reach past the first check.
        "namespace_id": st.one_of(
            st.sampled_from(namespace_ids),
            st.sampled_from(namespace_ids),
            st.sampled_from(namespace_ids),
            st.sampled_from(["", "f" * 32, "F" * 32, "0" * 31, "g" * 32]),
            st.text(alphabet="0123456789abcdef", min_size=30, max_size=34),
            st.text(max_size=64),
        ),
        "key": keys,
        "keys": keys,
        "prefix": st.one_of(st.sampled_from([b"", b"a" * 513]), st.binary(max_size=20)),
        "metadata_json": json_texts,
        "cursor": st.one_of(
            st.sampled_from(["", "c1.", "c1.YQ", "c1.YQ=", "c1.!!", "garbage"]),
            st.text(max_size=30),
        ),
        "title": st.text(max_size=600),
        "value": st.binary(max_size=2048),
        # Numbers with a meaning: mostly values that pass, then their edges and anything.
        "expiration_ttl": st.one_of(st.sampled_from([60, 3600, 59, 0, -1]), _bounded_int(*INT64)),
        "expiration": st.one_of(st.just(4_102_444_800), st.integers(0, 2**40)),
        "cache_ttl": st.one_of(st.sampled_from([30, 60, 300, 29, 0]), _bounded_int(*INT64)),
        "start_revision": st.one_of(st.integers(0, 50), _bounded_int(*INT64)),
    }


def _scalar(field: FieldDescriptor, names: dict[str, st.SearchStrategy[Any]]) -> Any:
    if field.name in names:
        return names[field.name]
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=100)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=100)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-3, 50))
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return st.one_of(st.integers(0, 20), _bounded_int(*INT32))
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return _bounded_int(*INT64)
    raise TypeError(f"no strategy for field {field.full_name} of type {kind}")


def message(
    descriptor: Descriptor, namespace_ids: Sequence[str], depth: int = 0
) -> st.SearchStrategy[Message]:
    """Messages of this type with any fields set to any values, some of them meaningful."""
    names = _names(namespace_ids)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= MAX_DEPTH:
                continue
            value = message(field.message_type, namespace_ids, depth + 1)
        else:
            value = _scalar(field, names)
        if field.is_repeated:
            value = st.lists(value, max_size=120 if field.name == "keys" else 8)
        fields[field.name] = st.one_of(st.none(), value)
    cls = GetMessageClass(descriptor)
    return st.fixed_dictionaries(fields).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    built = cls()
    for name, value in values.items():
        if value is None:
            continue
        target = getattr(built, name, None)
        if isinstance(value, list):
            if value and isinstance(value[0], Message):
                for item in value:
                    target.add().CopyFrom(item)  # type: ignore[union-attr]
            else:
                target.extend(value)  # type: ignore[union-attr]
        elif isinstance(value, Message):
            target.CopyFrom(value)  # type: ignore[union-attr]
        else:
            setattr(built, name, value)
    return built


@st.composite
def mutated(draw: st.DrawFn, payload: bytes) -> bytes:
    """``payload`` as it is, or damaged by up to three mutations."""
    data = bytearray(payload)
    # Half the requests reach the servers as drawn; the others are damaged.
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "field"]))
        at = draw(st.integers(0, len(data))) if data else 0
        if how == "flip" and data:
            index = min(at, len(data) - 1)
            data[index] ^= draw(st.integers(1, 255))
        elif how == "cut" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "truncate":
            del data[at:]
        else:
            # A field of any number with any wire type: unknown fields, known fields of
            # the wrong type, lengths that run past the end.
            tag = (draw(st.integers(1, 20)) << 3) | draw(st.integers(0, 7))
            data += bytes([tag & 0x7F]) + draw(st.binary(max_size=6))
    return bytes(data)
