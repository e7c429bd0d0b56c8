"""Between Cloudflare's JSON and central's protobuf messages: pure functions.

Theory of operation: the API node reads a request's query and body into
central's messages here, and central's answers into the JSON results the v4
API returns, inside Cloudflare's envelope (``success``, ``errors``,
``messages``, ``result``, ``result_info``). Every KV rule — key and value
limits, expirations, cursors, pages — is central's (the core's): this module
only checks what JSON can get wrong (a body that is not JSON, a field of the
wrong type, a number that is not one) and says so with BODY_INVALID or
PARAMETER_INVALID. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from edgekv.core import limits
from edgekv.core.errors import REGISTRY, ErrorKind, KVError, error
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import kv_pb2

# The widest numbers the messages' int32 fields hold: a larger one is refused by central's
# rules all the same (a page, a limit), so it is clamped rather than overflowing protobuf.
INT32_MAX = 2**31 - 1
# Keys per page when a list gives no limit, and the least a limit may be (the v4 API's).
DEFAULT_KEYS_LIMIT = limits.MAX_LIST_LIMIT
MIN_KEYS_LIMIT = 10

Json = Any


def success(result: Json, result_info: Mapping[str, Json] | None = None) -> dict[str, Json]:
    body: dict[str, Json] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = dict(result_info)
    return body


def failure(exc: KVError) -> tuple[int, dict[str, Json]]:
    """The HTTP status and envelope of an error, with Cloudflare's code for it."""
    spec = REGISTRY[exc.kind]
    body = {
        "success": False,
        "errors": [{"code": spec.api_code, "message": exc.reason}],
        "messages": [],
        "result": None,
    }
    return spec.http_status, body


# -- the request: query parameters and JSON bodies ------------------------------------


def json_body(raw: bytes) -> Json:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise error(ErrorKind.BODY_INVALID, detail=f"it is not JSON ({exc})") from None


def integer(query: Mapping[str, str], name: str) -> int | None:
    """An integer query parameter, or None when absent."""
    text = query.get(name)
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        raise error(
            ErrorKind.PARAMETER_INVALID, name=name, value=text, detail="it must be an integer"
        ) from None


def choice(query: Mapping[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    value = query.get(name, default)
    if value not in allowed:
        raise error(
            ErrorKind.PARAMETER_INVALID,
            name=name,
            value=value,
            detail="it must be " + " or ".join(repr(a) for a in allowed),
        )
    return value


def int32(value: int) -> int:
    return max(-INT32_MAX - 1, min(INT32_MAX, value))


def int64(value: int) -> int:
    """``value`` within int64 (central refuses anything past year 9999 all the same)."""
    return max(-(2**63), min(2**63 - 1, value))


def title_of(body: Json) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("title"), str):
        raise error(ErrorKind.BODY_INVALID, detail='expected a JSON object with a string "title"')
    title: str = body["title"]
    try:
        title.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): JSON allows it, protobuf does not
        raise error(ErrorKind.BODY_INVALID, detail='"title" is not valid Unicode') from None
    return title


def key_bytes(key: str) -> bytes:
    """A key from JSON as bytes; a lone surrogate stays invalid UTF-8 for central to refuse."""
    return key.encode("utf-8", "surrogatepass")


def namespace_list_request(query: Mapping[str, str]) -> pb.ListNamespacesRequest:
    order = choice(query, "order", ("id", "title"), "id")
    direction = choice(query, "direction", ("asc", "desc"), "asc")
    return pb.ListNamespacesRequest(
        page=int32(integer(query, "page") or 1),
        per_page=int32(_per_page(query)),
        order=pb.NAMESPACE_ORDER_TITLE if order == "title" else pb.NAMESPACE_ORDER_ID,
        descending=direction == "desc",
    )


def _per_page(query: Mapping[str, str]) -> int:
    per_page = integer(query, "per_page")
    if per_page is None:
        return limits.DEFAULT_NAMESPACES_PER_PAGE
    if per_page == 0:  # 0 means "the default" to central; to the API it is no page at all
        raise error(
            ErrorKind.PAGE_INVALID,
            field="per_page",
            value=0,
            detail=f"it must be between 1 and {limits.MAX_NAMESPACES_PER_PAGE}",
        )
    return per_page


def expirations(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``expiration`` and ``expiration_ttl`` of a value's PUT."""
    return integer(query, "expiration"), integer(query, "expiration_ttl")


def list_keys_request(namespace_id: str, query: Mapping[str, str]) -> pb.ListRequest:
    limit = integer(query, "limit")
    if limit is None:
        limit = DEFAULT_KEYS_LIMIT
    elif limit < MIN_KEYS_LIMIT:
        raise error(
            ErrorKind.PARAMETER_INVALID,
            name="limit",
            value=str(limit),
            detail=f"it must be at least {MIN_KEYS_LIMIT}",
        )
    return pb.ListRequest(
        namespace_id=namespace_id,
        prefix=key_bytes(query.get("prefix", "")),
        limit=int32(limit),
        cursor=query.get("cursor", ""),
    )


def bulk_put_request(namespace_id: str, body: Json) -> pb.BulkPutRequest:
    if not isinstance(body, list):
        raise error(ErrorKind.BODY_INVALID, detail="expected a JSON array of key-value pairs")
    return pb.BulkPutRequest(
        namespace_id=namespace_id, entries=[_bulk_entry(i, item) for i, item in enumerate(body)]
    )


def _bulk_entry(index: int, item: Json) -> pb.BulkPutEntry:
    where = f"item {index}"
    if not isinstance(item, dict):
        raise error(ErrorKind.BODY_INVALID, detail=f"{where} is not a JSON object")
    key, value = item.get("key"), item.get("value")
    if not isinstance(key, str) or not isinstance(value, str):
        raise error(ErrorKind.BODY_INVALID, detail=f'{where} needs a string "key" and "value"')
    entry = pb.BulkPutEntry(key=key_bytes(key), value=_bulk_value(where, value, item))
    if item.get("metadata") is not None:
        entry.metadata_json = json.dumps(item["metadata"], separators=(",", ":"))
    for field in ("expiration", "expiration_ttl"):
        number = item.get(field)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float) or not _whole(number):
            raise error(ErrorKind.BODY_INVALID, detail=f'{where}: "{field}" must be an integer')
        setattr(entry, field, int64(int(number)))
    return entry


def _whole(number: float) -> bool:
    return math.isfinite(number) and number == int(number)


def _bulk_value(where: str, value: str, item: Mapping[str, Json]) -> bytes:
    if item.get("base64") is True:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise error(
                ErrorKind.BODY_INVALID, detail=f"{where}: its value is not valid base64"
            ) from None
    return value.encode("utf-8", "surrogatepass")


def bulk_delete_request(namespace_id: str, body: Json) -> pb.BulkDeleteRequest:
    if not isinstance(body, list) or not all(isinstance(key, str) for key in body):
        raise error(ErrorKind.BODY_INVALID, detail="expected a JSON array of key names")
    return pb.BulkDeleteRequest(namespace_id=namespace_id, keys=[key_bytes(k) for k in body])


def bulk_get_request(namespace_id: str, body: Json) -> tuple[pb.GetManyRequest, str, bool]:
    """The request, the type values are read as ("text" or "json"), and withMetadata."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise error(ErrorKind.BODY_INVALID, detail='expected a JSON object with an array "keys"')
    keys = body["keys"]
    if not all(isinstance(key, str) for key in keys):
        raise error(ErrorKind.BODY_INVALID, detail='"keys" must hold strings')
    value_type = body.get("type", "text")
    if value_type not in ("text", "json"):
        raise error(ErrorKind.GET_MANY_TYPE_INVALID, type=str(value_type))
    with_metadata = body.get("withMetadata", False)
    if not isinstance(with_metadata, bool):
        raise error(ErrorKind.BODY_INVALID, detail='"withMetadata" must be true or false')
    request = pb.GetManyRequest(namespace_id=namespace_id, keys=[key_bytes(k) for k in keys])
    return request, value_type, with_metadata


# -- the answer: central's messages as the API's results ------------------------------


def namespace_result(namespace: kv_pb2.Namespace) -> dict[str, Json]:
    return {"id": namespace.id, "title": namespace.title, "supports_url_encoding": True}


def namespace_page_info(
    request: pb.ListNamespacesRequest, response: pb.ListNamespacesResponse
) -> dict[str, int]:
    total = response.total_count
    return {
        "page": request.page,
        "per_page": request.per_page,
        "count": len(response.namespaces),
        "total_count": total,
        "total_pages": math.ceil(total / request.per_page) if request.per_page else 0,
    }


def metadata_value(entry: kv_pb2.Entry | kv_pb2.KeyInfo) -> Json:
    return json.loads(entry.metadata_json) if entry.HasField("metadata_json") else None


def key_result(info: kv_pb2.KeyInfo) -> dict[str, Json]:
    result: dict[str, Json] = {"name": info.name.decode("utf-8", "replace")}
    if info.expiration:
        result["expiration"] = info.expiration
    if info.HasField("metadata_json"):
        result["metadata"] = metadata_value(info)
    return result


def bulk_write_result(response: pb.BulkWriteResponse) -> dict[str, Json]:
    return {
        "successful_key_count": response.successful_key_count,
        "unsuccessful_keys": [
            result.key.decode("utf-8", "replace") for result in response.results if not result.ok
        ],
    }


def bulk_write_messages(response: pb.BulkWriteResponse) -> list[dict[str, Json]]:
    """Why each refused entry was refused, as the envelope's ``messages``."""
    return [
        {
            "code": _api_code(result.error_kind),
            "message": f"{result.key.decode('utf-8', 'replace')!r}: {result.error_message}",
        }
        for result in response.results
        if not result.ok
    ]


def bulk_get_result(
    response: pb.GetManyResponse, value_type: str, with_metadata: bool
) -> dict[str, Json]:
    values: dict[str, Json] = {}
    for entry in response.entries:
        name = entry.key.decode("utf-8", "replace")
        if not entry.found:
            values[name] = None
            continue
        value = _typed(entry.value, value_type)
        if with_metadata:
            item: dict[str, Json] = {"value": value, "metadata": metadata_value(entry)}
            if entry.expiration:
                item["expiration"] = entry.expiration
            values[name] = item
        else:
            values[name] = value
    return {"values": values}


def _typed(value: bytes, value_type: str) -> Json:
    text = value.decode("utf-8", "replace")
    if value_type == "text":
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested deeper than Python parses, as json_body says
        raise error(ErrorKind.GET_MANY_VALUE_NOT_JSON) from None


def _api_code(kind_name: str) -> int:
    try:
        return REGISTRY[ErrorKind(kind_name)].api_code
    except ValueError:
        return REGISTRY[ErrorKind.INTERNAL].api_code
