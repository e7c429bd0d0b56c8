"""Conversions between core values and the protobuf messages of ``edgekv.v1``.

Theory of operation: the gRPC shells speak protobuf, the core speaks frozen
dataclasses; this module is the one place that maps one onto the other, so
"0 means not set" and "absent optional" are decided once.
"""

from __future__ import annotations

from typing import Any

from edgekv.core.cache import CachedPage, CachedValue, PageSlot
from edgekv.core.listing import ListPage
from edgekv.core.model import (
    DEFAULT_ACCOUNT_ID,
    Change,
    ChangeKind,
    Committed,
    Delete,
    KeyInfo,
    Namespace,
    Put,
    Version,
    WatchBatch,
)
from edgekv.v1 import central_pb2, kv_pb2


def optional(message: Any, field: str) -> Any:
    """A proto3 ``optional`` field's value, or None when the sender left it out."""
    return getattr(message, field) if message.HasField(field) else None


def put_arguments(message: Any) -> tuple[bytes, bytes, str | None, int | None, int | None]:
    """A put's key, value, metadata, expiration and TTL (a PutRequest or a BulkPutEntry),
    in the order :func:`edgekv.core.validation.validate_put` takes them."""
    return (
        message.key,
        message.value,
        optional(message, "metadata_json"),
        optional(message, "expiration"),
        optional(message, "expiration_ttl"),
    )


def namespace_to_pb(namespace: Namespace) -> kv_pb2.Namespace:
    return kv_pb2.Namespace(
        id=namespace.id,
        title=namespace.title,
        created_at=namespace.created_at,
        account_id=namespace.account_id,
    )


def namespace_from_pb(message: kv_pb2.Namespace) -> Namespace:
    return Namespace(
        id=message.id,
        title=message.title,
        created_at=message.created_at,
        account_id=message.account_id or DEFAULT_ACCOUNT_ID,
    )


def entry_to_pb(raw_key: bytes, version: Version | None) -> kv_pb2.Entry:
    message = kv_pb2.Entry()
    fill_entry(message, raw_key, version)
    return message


def fill_entry(message: kv_pb2.Entry, raw_key: bytes, version: Version | None) -> None:
    """Fill a response's own ``entry`` field in place.

    ``Response(entry=entry_to_pb(...))`` copies the finished Entry — its value
    included — into the response: for a 1 MiB value one more megabyte per
    read in flight, and about a millisecond of page faults with glibc's
    default malloc settings.
    """
    message.key = raw_key
    message.found = version is not None
    if version is None:
        return
    message.value = version.value
    if version.metadata_json is not None:
        message.metadata_json = version.metadata_json
    message.expiration = version.expiration or 0
    message.revision = version.revision
    message.commit_time = version.commit_time


def entry_from_pb(message: kv_pb2.Entry) -> Version | None:
    if not message.found:
        return None
    return Version(
        key=message.key.decode("utf-8"),
        value=message.value,
        metadata_json=message.metadata_json if message.HasField("metadata_json") else None,
        expiration=message.expiration or None,
        revision=message.revision,
        commit_time=message.commit_time,
    )


def key_info_to_pb(info: KeyInfo) -> kv_pb2.KeyInfo:
    return kv_pb2.KeyInfo(
        name=info.name.encode("utf-8"),
        expiration=info.expiration or 0,
        metadata_json=info.metadata_json,
    )


def key_info_from_pb(message: kv_pb2.KeyInfo) -> KeyInfo:
    return KeyInfo(
        name=message.name.decode("utf-8"),
        expiration=message.expiration or None,
        metadata_json=message.metadata_json if message.HasField("metadata_json") else None,
    )


_CHANGE_KINDS = {
    ChangeKind.PUT: kv_pb2.CHANGE_KIND_PUT,
    ChangeKind.DELETE: kv_pb2.CHANGE_KIND_DELETE,
}


def change_to_pb(change: Change, include_value: bool) -> kv_pb2.Change:
    message = kv_pb2.Change(
        revision=change.revision,
        kind=_CHANGE_KINDS[change.kind],
        key=change.key.encode("utf-8"),
        commit_time=change.commit_time,
    )
    if include_value and change.version is not None:
        message.has_value = True
        message.value = change.version.value
        if change.version.metadata_json is not None:
            message.metadata_json = change.version.metadata_json
        message.expiration = change.version.expiration or 0
    return message


def change_from_pb(namespace_id: str, message: kv_pb2.Change) -> Change:
    kind = ChangeKind.PUT if message.kind == kv_pb2.CHANGE_KIND_PUT else ChangeKind.DELETE
    key = message.key.decode("utf-8")
    version = None
    if message.has_value:
        version = Version(
            key=key,
            value=message.value,
            metadata_json=message.metadata_json if message.HasField("metadata_json") else None,
            expiration=message.expiration or None,
            revision=message.revision,
            commit_time=message.commit_time,
        )
    return Change(message.revision, kind, namespace_id, key, message.commit_time, version)


# -- what an edge asks central, and what it keeps of the answers ------------------------------


def get_request(namespace_id: str, key: str) -> central_pb2.GetRequest:
    return central_pb2.GetRequest(namespace_id=namespace_id, key=key.encode("utf-8"))


def get_many_request(namespace_id: str, keys: list[str]) -> central_pb2.GetManyRequest:
    return central_pb2.GetManyRequest(
        namespace_id=namespace_id, keys=[key.encode("utf-8") for key in keys]
    )


def list_request(slot: PageSlot) -> central_pb2.ListRequest:
    namespace_id, prefix, limit, cursor = slot
    return central_pb2.ListRequest(
        namespace_id=namespace_id, prefix=prefix.encode("utf-8"), limit=limit, cursor=cursor or ""
    )


def put_request(write: Put) -> central_pb2.PutRequest:
    """A validated put, forwarded: a TTL goes as given, so that central counts it from its
    own commit."""
    return central_pb2.PutRequest(
        namespace_id=write.namespace_id,
        key=write.key.encode("utf-8"),
        value=write.value,
        metadata_json=write.metadata_json,
        expiration=write.expiration if write.expiration_ttl is None else None,
        expiration_ttl=write.expiration_ttl,
    )


def delete_request(write: Delete) -> central_pb2.DeleteRequest:
    return central_pb2.DeleteRequest(namespace_id=write.namespace_id, key=write.key.encode("utf-8"))


def watch_request(
    namespace_id: str, start_revision: int, include_values: bool
) -> central_pb2.WatchRequest:
    return central_pb2.WatchRequest(
        namespace_id=namespace_id, start_revision=start_revision, include_values=include_values
    )


def value_copy(
    namespace_id: str, key: str, entry: kv_pb2.Entry, header: kv_pb2.ResponseHeader
) -> CachedValue:
    """What central answered for a key, stamped with when (its time and revision) it answered."""
    return CachedValue(
        namespace_id,
        key,
        entry_from_pb(entry),
        fetched_at=header.server_time,
        fetched_at_revision=header.revision,
    )


def page_copy(slot: PageSlot, response: central_pb2.ListResponse) -> CachedPage:
    page = ListPage(
        keys=[key_info_from_pb(info) for info in response.keys],
        list_complete=response.list_complete,
        cursor=response.cursor or None,
    )
    header = response.header
    return CachedPage(slot, page, header.server_time, fetched_at_revision=header.revision)


def committed_from_pb(response: central_pb2.WriteResponse) -> Committed:
    return Committed(response.revision, response.commit_time)


def watch_batch(namespace_id: str, response: central_pb2.WatchResponse) -> WatchBatch:
    return WatchBatch(
        response.header.revision,
        [change_from_pb(namespace_id, change) for change in response.changes],
    )
