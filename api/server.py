"""The API node: Cloudflare's v4 KV routes over HTTP, each a call to central's gRPC.

Theory of operation: one aiohttp handler takes every request. It routes on the
raw path (:mod:`api.routes`), learns who the caller is from the
``Authorization: Bearer`` token, then makes the one central call the route
stands for, passing the token on in the call's ``authorization`` metadata:
central, which keeps the tokens, decides what the caller may see and do, as
Cloudflare's API sits in front of its central storage. The API keeps no data
and no KV rule of its own; a :class:`~edgekv.core.errors.KVError` from anywhere
becomes Cloudflare's error envelope with the registry's HTTP status and API
code (:func:`api.convert.failure`). Nothing a client sends gets a 5xx or a
traceback: anything unforeseen is logged once and answered 500 with the
envelope (and counted, so tests and fuzzers see it).

Who a token belongs to is asked of central (``Authorize`` with no namespace)
once per token and kept for :data:`IDENTITY_LIFETIME_S`, so that a request
costs one central call; a revoked token keeps reaching its account's routes
for at most that long — central itself refuses it at once. A path naming
another account than the token's is refused with ACCOUNT_FORBIDDEN (403), as
Cloudflare does; a namespace of another account is NAMESPACE_NOT_FOUND (404),
so that its id does not leak.

Bodies are read whole, up to :data:`MAX_BODY_BYTES` (a bulk write's 100 MiB);
a value's multipart body is read part by part under the same bound.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api import convert
from api.routes import ACCOUNTLESS, Op, Route, match
from edgekv.channels import open_channel
from edgekv.core import limits
from edgekv.core.accounts import bearer_token, token_digest
from edgekv.core.errors import ErrorKind, KVError, error
from edgekv.inflight import DEFAULT_MAX_IN_FLIGHT, BoundedChannel
from edgekv.replicas import check_one_store
from edgekv.rpc import AUTHORIZATION_METADATA_KEY, error_from_rpc
from edgekv.tls import ServerTls, server_context
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc

log = logging.getLogger(__name__)

# The largest body taken: a bulk write's (Cloudflare's 100 MB request limit).
MAX_BODY_BYTES = limits.MAX_BULK_BYTES
# How long the API trusts what central said a token is (see the module docstring).
IDENTITY_LIFETIME_S = 5.0
# How long the API waits for central.
CENTRAL_TIMEOUT_S = 30.0
# Where the node serves its OpenAPI description (api/openapi.yaml) as JSON, to anyone.
OPENAPI_PATH = "/client/v4/openapi.json"

Handler = Callable[["ApiService", web.Request, Route, str], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Identity:
    account_id: str
    token_id: str
    expires_at: float  # time.monotonic()


class ApiService:
    """The routes' handlers, over one channel to central."""

    def __init__(self, central: Any, central_address: str) -> None:
        self._stub = central_pb2_grpc.CentralStoreStub(
            BoundedChannel(central, DEFAULT_MAX_IN_FLIGHT)
        )
        self._central_address = central_address
        self._identities: dict[str, Identity] = {}
        self.answered: Counter[tuple[str, int]] = Counter()
        self.unforeseen = 0

    # -- one request --------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        op_name = "unrouted"
        try:
            route = match(request.method, request.raw_path.partition("?")[0])
            op_name = route.op.value
            authorization = await self._authorize(request, route)
            response = await HANDLERS[route.op](self, request, route, authorization)
        except KVError as exc:
            response = _error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            response = _error_response(_too_large(request.content_length))
        except ConnectionResetError:  # the client left mid-body: nobody reads the answer
            return web.Response(status=400)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so once, answer like Cloudflare, never a traceback
            log.exception("unforeseen error answering %s %s", request.method, request.raw_path)
            self.unforeseen += 1
            response = _error_response(error(ErrorKind.INTERNAL, detail="internal error"))
        self.answered[(op_name, response.status)] += 1
        return response

    async def _authorize(self, request: web.Request, route: Route) -> str:
        """The caller's ``authorization`` value for central, once its account is the path's."""
        header = request.headers.get("Authorization")
        if header is None:
            if "X-Auth-Key" in request.headers or "X-Auth-Email" in request.headers:
                raise error(ErrorKind.API_KEY_UNSUPPORTED)
            raise error(ErrorKind.TOKEN_MISSING)
        authorization = f"Bearer {bearer_token(header)}"
        account_id = (await self._identity_of(authorization)).account_id
        if route.op in ACCOUNTLESS:
            return authorization
        if account_id != route.account_id:
            if route.namespace_id:  # of another account: as if it did not exist
                raise error(
                    ErrorKind.NAMESPACE_NOT_FOUND,
                    operation=route.op.value,
                    namespace_id=route.namespace_id,
                )
            raise error(ErrorKind.ACCOUNT_FORBIDDEN, account_id=route.account_id)
        return authorization

    async def _identity_of(self, authorization: str) -> Identity:
        digest = token_digest(authorization)
        now = time.monotonic()
        known = self._identities.get(digest)
        if known is not None and now < known.expires_at:
            return known
        answer: pb.AuthorizeResponse = await self.call(
            self._stub.Authorize, pb.AuthorizeRequest(), authorization
        )
        if len(self._identities) > 10_000:  # bounded: forget everything now and then
            self._identities.clear()
        identity = Identity(answer.account_id, answer.token_id, now + IDENTITY_LIFETIME_S)
        self._identities[digest] = identity
        return identity

    async def call(
        self, method: Callable[..., Awaitable[Any]], request: Any, authorization: str
    ) -> Any:
        try:
            return await method(
                request,
                timeout=CENTRAL_TIMEOUT_S,
                metadata=((AUTHORIZATION_METADATA_KEY, authorization),),
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, f"the central store at {self._central_address}") from None

    # -- namespaces ---------------------------------------------------------

    async def list_namespaces(self, request: web.Request, route: Route, auth: str) -> web.Response:
        message = convert.namespace_list_request(request.query)
        answer = await self.call(self._stub.ListNamespaces, message, auth)
        return _json(
            convert.success(
                [convert.namespace_result(ns) for ns in answer.namespaces],
                convert.namespace_page_info(message, answer),
            )
        )

    async def create_namespace(self, request: web.Request, route: Route, auth: str) -> web.Response:
        title = convert.title_of(convert.json_body(await _body(request)))
        answer = await self.call(
            self._stub.CreateNamespace, pb.CreateNamespaceRequest(title=title), auth
        )
        return _json(convert.success(convert.namespace_result(answer.namespace)))

    async def get_namespace(self, request: web.Request, route: Route, auth: str) -> web.Response:
        answer = await self.call(
            self._stub.GetNamespace, pb.GetNamespaceRequest(namespace_id=route.namespace_id), auth
        )
        return _json(convert.success(convert.namespace_result(answer.namespace)))

    async def rename_namespace(self, request: web.Request, route: Route, auth: str) -> web.Response:
        title = convert.title_of(convert.json_body(await _body(request)))
        message = pb.RenameNamespaceRequest(namespace_id=route.namespace_id, title=title)
        answer = await self.call(self._stub.RenameNamespace, message, auth)
        return _json(convert.success(convert.namespace_result(answer.namespace)))

    async def delete_namespace(self, request: web.Request, route: Route, auth: str) -> web.Response:
        message = pb.DeleteNamespaceRequest(namespace_id=route.namespace_id)
        await self.call(self._stub.DeleteNamespace, message, auth)
        return _json(convert.success({}))

    # -- values and keys ----------------------------------------------------

    async def get_value(self, request: web.Request, route: Route, auth: str) -> web.Response:
        entry = await self._entry(route, auth)
        headers = {"expiration": str(entry.expiration)} if entry.expiration else {}
        return web.Response(
            body=entry.value, content_type="application/octet-stream", headers=headers
        )

    async def get_metadata(self, request: web.Request, route: Route, auth: str) -> web.Response:
        entry = await self._entry(route, auth)
        return _json(convert.success(convert.metadata_value(entry)))

    async def _entry(self, route: Route, auth: str) -> Any:
        message = pb.GetRequest(namespace_id=route.namespace_id, key=route.key)
        answer = await self.call(self._stub.Get, message, auth)
        if not answer.entry.found:
            raise error(ErrorKind.KEY_NOT_FOUND, operation="get")
        return answer.entry

    async def put_value(self, request: web.Request, route: Route, auth: str) -> web.Response:
        expiration, expiration_ttl = convert.expirations(request.query)
        value, metadata_json = await _value_and_metadata(request)
        message = pb.PutRequest(namespace_id=route.namespace_id, key=route.key, value=value)
        if metadata_json is not None:
            message.metadata_json = metadata_json
        if expiration is not None:
            message.expiration = convert.int64(expiration)
        if expiration_ttl is not None:
            message.expiration_ttl = convert.int64(expiration_ttl)
        await self.call(self._stub.Put, message, auth)
        return _json(convert.success({}))

    async def delete_value(self, request: web.Request, route: Route, auth: str) -> web.Response:
        message = pb.DeleteRequest(namespace_id=route.namespace_id, key=route.key)
        await self.call(self._stub.Delete, message, auth)
        return _json(convert.success({}))

    async def list_keys(self, request: web.Request, route: Route, auth: str) -> web.Response:
        message = convert.list_keys_request(route.namespace_id, request.query)
        answer = await self.call(self._stub.List, message, auth)
        keys = [convert.key_result(info) for info in answer.keys]
        return _json(convert.success(keys, {"count": len(keys), "cursor": answer.cursor}))

    async def bulk_put(self, request: web.Request, route: Route, auth: str) -> web.Response:
        body = convert.json_body(await _body(request))
        message = convert.bulk_put_request(route.namespace_id, body)
        answer = await self.call(self._stub.BulkPut, message, auth)
        return _bulk_written(answer)

    async def bulk_delete(self, request: web.Request, route: Route, auth: str) -> web.Response:
        body = convert.json_body(await _body(request))
        message = convert.bulk_delete_request(route.namespace_id, body)
        answer = await self.call(self._stub.BulkDelete, message, auth)
        return _bulk_written(answer)

    async def bulk_get(self, request: web.Request, route: Route, auth: str) -> web.Response:
        body = convert.json_body(await _body(request))
        message, value_type, with_metadata = convert.bulk_get_request(route.namespace_id, body)
        answer = await self.call(self._stub.GetMany, message, auth)
        return _json(convert.success(convert.bulk_get_result(answer, value_type, with_metadata)))

    # -- who the token is -----------------------------------------------------

    async def memberships(self, request: web.Request, route: Route, auth: str) -> web.Response:
        """The token's one account, as Cloudflare lists the accounts a user belongs to (a
        page past the first is empty, which ends any client's paging)."""
        identity = await self._identity_of(auth)
        page = max(1, convert.integer(request.query, "page") or 1)
        account = {"id": identity.account_id, "name": f"edgekv account {identity.account_id}"}
        members = [{"id": identity.token_id or identity.account_id, "status": "accepted",
                    "account": account}] if page == 1 else []  # fmt: skip
        info = {"page": page, "per_page": 20, "count": len(members), "total_count": 1,
                "total_pages": 1}  # fmt: skip
        return _json(convert.success(members, info))

    async def verify_token(self, request: web.Request, route: Route, auth: str) -> web.Response:
        identity = await self._identity_of(auth)
        return _json(convert.success({"id": identity.token_id, "status": "active"}))


HANDLERS: dict[Op, Handler] = {
    Op.MEMBERSHIPS: ApiService.memberships,
    Op.VERIFY_TOKEN: ApiService.verify_token,
    Op.LIST_NAMESPACES: ApiService.list_namespaces,
    Op.CREATE_NAMESPACE: ApiService.create_namespace,
    Op.GET_NAMESPACE: ApiService.get_namespace,
    Op.RENAME_NAMESPACE: ApiService.rename_namespace,
    Op.DELETE_NAMESPACE: ApiService.delete_namespace,
    Op.GET_VALUE: ApiService.get_value,
    Op.PUT_VALUE: ApiService.put_value,
    Op.DELETE_VALUE: ApiService.delete_value,
    Op.GET_METADATA: ApiService.get_metadata,
    Op.LIST_KEYS: ApiService.list_keys,
    Op.BULK_PUT: ApiService.bulk_put,
    Op.BULK_DELETE: ApiService.bulk_delete,
    Op.BULK_GET: ApiService.bulk_get,
}


# -- bodies -------------------------------------------------------------------------


async def _body(request: web.Request) -> bytes:
    """The whole body; aiohttp refuses one over the app's client_max_size (MAX_BODY_BYTES)."""
    try:
        return await request.read()
    except web.RequestPayloadError:  # a damaged gzip body, or damaged chunked framing
        raise _undecodable() from None


def _undecodable() -> KVError:
    detail = "it cannot be read (its Content-Encoding or chunked framing is damaged)"
    return error(ErrorKind.BODY_INVALID, detail=detail)


def _too_large(length: int | None) -> KVError:
    return error(
        ErrorKind.BODY_TOO_LARGE,
        length=length if length is not None else f"more than {MAX_BODY_BYTES}",
        limit=MAX_BODY_BYTES,
    )


async def _value_and_metadata(request: web.Request) -> tuple[bytes, str | None]:
    """A value's PUT body: the raw body is the value (whatever its type, JSON included, as
    Cloudflare stores it); a multipart body has a ``value`` part and maybe ``metadata``."""
    if request.content_type != "multipart/form-data":
        return await _body(request), None
    try:
        reader = await request.multipart()
        parts = await _read_parts(reader)
    except ValueError as exc:  # aiohttp's word for a malformed multipart body
        raise error(ErrorKind.BODY_INVALID, detail=f"malformed multipart body ({exc})") from None
    except HttpProcessingError as exc:  # and for a part's headers that do not parse
        detail = f"malformed multipart body ({exc.message})"
        raise error(ErrorKind.BODY_INVALID, detail=detail) from None
    except web.RequestPayloadError:
        raise _undecodable() from None
    if "value" not in parts:
        raise error(ErrorKind.BODY_INVALID, detail='the multipart body has no "value" part')
    metadata = parts.get("metadata")
    if metadata is None:
        return parts["value"], None
    try:
        return parts["value"], metadata.decode("utf-8")
    except UnicodeDecodeError:
        raise error(ErrorKind.METADATA_NOT_JSON, detail="it is not UTF-8") from None


async def _read_parts(reader: MultipartReader) -> dict[str, bytes]:
    """Every named part's bytes (a part's Content-Type and filename do not matter: the
    SDK sends the value as a file named "upload", wrangler as a plain field)."""
    parts: dict[str, bytes] = {}
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart bodies are not taken")
        chunks = []
        while chunk := await part.read_chunk(1 << 20):
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise _too_large(None)
            chunks.append(chunk)
        if part.name:
            parts[part.name] = b"".join(chunks)
    return parts


# -- answers ------------------------------------------------------------------------


def _json(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _error_response(exc: KVError) -> web.Response:
    status, body = convert.failure(exc)
    return _json(body, status)


def _bulk_written(answer: pb.BulkWriteResponse) -> web.Response:
    body = convert.success(convert.bulk_write_result(answer))
    body["messages"] = convert.bulk_write_messages(answer)
    return _json(body)


# -- the node -----------------------------------------------------------------------


class ApiCollector(Collector):
    """Prometheus metrics of an API node: requests answered by route and status."""

    def __init__(self, service: ApiService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        answered = CounterMetricFamily(
            "edgekv_api_requests",
            "Requests answered, by route and HTTP status",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(self._service.answered.items()):
            answered.add_metric([route, str(status)], count)
        yield answered
        yield GaugeMetricFamily(
            "edgekv_api_unforeseen_errors",
            "Requests answered 500 for a bug",
            value=self._service.unforeseen,
        )


class OneLineRefusals(logging.Filter):
    """aiohttp refuses a malformed request itself (a bad request line, broken chunked
    framing, a damaged gzip body) and logs it at ERROR with a traceback: any client
    could fill the node's log. Such a record becomes one line at INFO, without the
    traceback — it is the client's mistake, answered 400, not the node's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            words = str(exc).strip().splitlines()
            record.msg = "refused a malformed request: %s%s"
            record.args = (type(exc).__name__, f": {words[0]}" if words else "")
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _quiet_aiohttp_refusals() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineRefusals) for f in server_log.filters):
        server_log.addFilter(OneLineRefusals())


# How long the start waits for each central of a list to say which store it serves.
STORE_CHECK_TIMEOUT_S = 5.0


class ApiServer:
    """An API node serving on one address until :meth:`stop`."""

    def __init__(
        self,
        central: str,
        grace_s: float = 5.0,
        *,
        tls_ca: str | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        _quiet_aiohttp_refusals()
        self.central = central
        # Central's replicas (A,B or dns:///NAME:PORT) are spread over and failed over.
        self._channel = open_channel(central, tls_ca=tls_ca)
        self._tls_ca = tls_ca
        # Served over HTTPS with ``tls``; the context is made (and the files read) here.
        self._ssl = None if tls is None else server_context(tls)
        self.service = ApiService(self._channel, central)
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.app.router.add_route("*", "/healthz", self._health)
        self.app.router.add_route("GET", OPENAPI_PATH, self._openapi)
        # Any path, newlines (a key's %0A, decoded by aiohttp's router) too; the node routes it.
        self.app.router.add_route("*", r"/{tail:[\s\S]*}", self.service.handle)
        # ``grace_s``: how long a stop lets running requests finish.
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=grace_s
        )
        self._serving = False
        self.port = 0

    async def start(self, listen: str) -> int:
        # Replicas that serve different stores (Redis databases) are refused in one line.
        await check_one_store(self.central, self._tls_ca, None, STORE_CHECK_TIMEOUT_S)
        host, _, port = listen.rpartition(":")
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, host or "127.0.0.1", int(port), reuse_port=False, ssl_context=self._ssl
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OSError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1]
        self._serving = True
        return self.port

    async def stop(self) -> None:
        """Stop taking requests, let those running finish (up to ``grace_s``), close."""
        self._serving = False
        await self._runner.cleanup()
        await self._channel.close()

    async def _health(self, request: web.Request) -> web.Response:
        if not self._serving:
            return web.json_response({"status": "NOT_SERVING"}, status=503)
        return web.json_response({"status": "SERVING", "central": self.central})

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The node's OpenAPI description, ``api/openapi.yaml`` (package data), read once."""
    text = Path(__file__).with_name("openapi.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document
