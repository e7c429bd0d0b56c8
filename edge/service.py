"""The edge's gRPC services: ``EdgeKV`` (for Workers) and ``EdgeControl`` (for operators).

Theory of operation: thin shells. Each handler unpacks the request into plain
values, asks the :class:`~edge.node.EdgeNode`, and packs the answer with a
ReadInfo saying which revision was served, how (HIT, MISS, …), how old the
copy was, and by whom. A KVError from anywhere below becomes its gRPC status
at the one boundary every server installs (:class:`edgekv.rpc.ErrorBoundary`).

A caller's gRPC deadline reaches the node as a plain ``deadline`` (event-loop
time): the moment by which the node must be done with central so that its
answer — a STALE copy, or UNAVAILABLE — still reaches the caller in time. The
margin kept for the answer is a fifth of the time the caller left, and at
least 50 ms.
"""

from __future__ import annotations

import asyncio

from edge.access import AccessChecks
from edge.link import Link
from edge.node import EdgeNode, PageRead, ValueRead
from edgekv.control import LinkSettings
from edgekv.core.cache import CacheStatus
from edgekv.core.model import Committed
from edgekv.core.validation import validate_cache_ttl
from edgekv.rpc import Context, authorization_of
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import edge_pb2, edge_pb2_grpc
from edgekv.wire import fill_entry, key_info_to_pb, optional, put_arguments

_STATUS = {
    CacheStatus.HIT: edge_pb2.CACHE_STATUS_HIT,
    CacheStatus.MISS: edge_pb2.CACHE_STATUS_MISS,
    CacheStatus.EXPIRED: edge_pb2.CACHE_STATUS_EXPIRED,
    CacheStatus.STALE: edge_pb2.CACHE_STATUS_STALE,
    CacheStatus.REVALIDATED: edge_pb2.CACHE_STATUS_REVALIDATED,
}


# Of the time a caller leaves, the part kept for answering it once central has not.
ANSWER_MARGIN_FRACTION = 0.2
MIN_ANSWER_MARGIN_S = 0.05


def _cache_ttl(message: edge_pb2.EdgeGetRequest | edge_pb2.EdgeGetManyRequest) -> int:
    return validate_cache_ttl(optional(message, "cache_ttl"))


def node_deadline(context: Context) -> float | None:
    """When the node must be done with central to answer this call in time (None: no
    deadline), on the event loop's clock."""
    remaining_s: float | None = context.time_remaining()
    if remaining_s is None:
        return None
    margin_s = max(MIN_ANSWER_MARGIN_S, ANSWER_MARGIN_FRACTION * remaining_s)
    return asyncio.get_running_loop().time() + remaining_s - margin_s


class EdgeKVService(edge_pb2_grpc.EdgeKVServicer):
    def __init__(self, node: EdgeNode, access: AccessChecks) -> None:
        self._node = node
        self._access = access
        self._region = node.identity.region
        self._name = node.identity.node

    def _info(self, read: ValueRead | PageRead, revision: int) -> edge_pb2.ReadInfo:
        return edge_pb2.ReadInfo(
            revision=revision,
            cache_status=_STATUS[read.status],
            age_s=read.age_s,
            region=self._region,
            node=self._name,
            fetched_at_revision=read.fetched_at_revision,
        )

    def _answer(self, raw_key: bytes, read: ValueRead) -> edge_pb2.EdgeGetResponse:
        revision = 0 if read.content is None else read.content.revision
        answer = edge_pb2.EdgeGetResponse(info=self._info(read, revision))
        fill_entry(answer.entry, raw_key, read.content)
        return answer

    async def _check(self, context: Context, namespace_id: str, *, write: bool) -> None:
        """Before any answer, a HIT's too: the caller may read (or write) the namespace.
        A call without a token to an edge that takes such calls costs one lookup."""
        authorization = authorization_of(context)
        if authorization is None and not self._access.require_token:
            return
        await self._access.check(
            authorization, namespace_id, write=write, deadline=node_deadline(context)
        )

    async def Get(
        self, request: edge_pb2.EdgeGetRequest, context: Context
    ) -> edge_pb2.EdgeGetResponse:
        await self._check(context, request.namespace_id, write=False)
        read = await self._node.get(
            request.namespace_id, request.key, _cache_ttl(request), node_deadline(context)
        )
        return self._answer(request.key, read)

    async def GetMany(
        self, request: edge_pb2.EdgeGetManyRequest, context: Context
    ) -> edge_pb2.EdgeGetManyResponse:
        await self._check(context, request.namespace_id, write=False)
        keys = list(request.keys)
        reads = await self._node.get_many(
            request.namespace_id, keys, _cache_ttl(request), node_deadline(context)
        )
        return edge_pb2.EdgeGetManyResponse(
            reads=[self._answer(raw, read) for raw, read in zip(keys, reads, strict=True)]
        )

    async def Put(self, request: pb.PutRequest, context: Context) -> edge_pb2.EdgeWriteResponse:
        await self._check(context, request.namespace_id, write=True)
        committed = await self._node.put(
            request.namespace_id, *put_arguments(request), deadline=node_deadline(context)
        )
        return self._written(committed)

    async def Delete(
        self, request: pb.DeleteRequest, context: Context
    ) -> edge_pb2.EdgeWriteResponse:
        await self._check(context, request.namespace_id, write=True)
        committed = await self._node.delete(
            request.namespace_id, request.key, node_deadline(context)
        )
        return self._written(committed)

    def _written(self, committed: Committed) -> edge_pb2.EdgeWriteResponse:
        return edge_pb2.EdgeWriteResponse(
            revision=committed.revision,
            commit_time=committed.commit_time,
            region=self._region,
            node=self._name,
        )

    async def List(
        self, request: edge_pb2.EdgeListRequest, context: Context
    ) -> edge_pb2.EdgeListResponse:
        await self._check(context, request.namespace_id, write=False)
        read: PageRead = await self._node.list(
            request.namespace_id,
            request.prefix,
            request.limit,
            request.cursor,
            validate_cache_ttl(optional(request, "cache_ttl")),
            node_deadline(context),
        )
        page = read.content
        return edge_pb2.EdgeListResponse(
            keys=[key_info_to_pb(info) for info in page.keys],
            list_complete=page.list_complete,
            cursor=page.cursor or "",
            info=self._info(read, read.fetched_at_revision),
        )


class EdgeControlService(edge_pb2_grpc.EdgeControlServicer):
    def __init__(self, node: EdgeNode, link: Link) -> None:
        self._node = node
        self._link = link

    async def GetStats(
        self, request: edge_pb2.GetStatsRequest, context: Context
    ) -> edge_pb2.EdgeStats:
        occupancy = await self._node.cache.occupancy()
        return edge_pb2.EdgeStats(
            region=self._node.identity.region,
            node=self._node.identity.node,
            mode=self._node.policy.mode.value,
            bytes_cached=occupancy.bytes_cached + self._node.pages.bytes_cached,
            entries=occupancy.entries,
            evictions=occupancy.evictions,
            **self._node.counters.as_dict(),
        )

    async def Flush(
        self, request: edge_pb2.FlushRequest, context: Context
    ) -> edge_pb2.FlushResponse:
        dropped = await self._node.flush(request.namespace_id or None)
        return edge_pb2.FlushResponse(entries_dropped=dropped)

    async def GetLink(
        self, request: edge_pb2.GetLinkRequest, context: Context
    ) -> edge_pb2.LinkSettings:
        return self._link.settings.to_pb()

    async def SetLink(
        self, request: edge_pb2.LinkSettings, context: Context
    ) -> edge_pb2.LinkSettings:
        self._link.settings = LinkSettings.from_pb(request).validated()
        return self._link.settings.to_pb()
