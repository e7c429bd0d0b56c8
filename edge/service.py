"""The edge's gRPC services: ``EdgeKV`` (for Workers) and ``EdgeControl`` (for operators).

Theory of operation: thin shells. Each handler unpacks the request, asks the
:class:`~edge.node.EdgeNode`, and packs the answer with a ReadInfo saying which
revision was served, how (HIT, MISS, …), how old the copy was, and by whom.
KVError from anywhere below becomes its gRPC status at one boundary, as in
the central store.
"""

from __future__ import annotations

from typing import Any

from edge.link import Link
from edge.node import EdgeNode, PageRead, Read
from edgekv.core.cache import CacheStatus
from edgekv.core.validation import validate_cache_ttl
from edgekv.rpc import Context, handled
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import edge_pb2, edge_pb2_grpc
from edgekv.wire import fill_entry

_STATUS = {
    CacheStatus.HIT: edge_pb2.CACHE_STATUS_HIT,
    CacheStatus.MISS: edge_pb2.CACHE_STATUS_MISS,
    CacheStatus.EXPIRED: edge_pb2.CACHE_STATUS_EXPIRED,
    CacheStatus.STALE: edge_pb2.CACHE_STATUS_STALE,
    CacheStatus.REVALIDATED: edge_pb2.CACHE_STATUS_REVALIDATED,
}


def _cache_ttl(message: Any) -> int:
    return validate_cache_ttl(message.cache_ttl if message.HasField("cache_ttl") else None)


class EdgeKVService(edge_pb2_grpc.EdgeKVServicer):
    def __init__(self, node: EdgeNode) -> None:
        self._node = node
        self._region = node.identity.region
        self._name = node.identity.node

    def _info(self, read: Read | PageRead, revision: int) -> edge_pb2.ReadInfo:
        return edge_pb2.ReadInfo(
            revision=revision,
            cache_status=_STATUS[read.status],
            age_s=read.age_s,
            region=self._region,
            node=self._name,
            fetched_at_revision=read.fetched_at_revision,
        )

    def _answer(self, raw_key: bytes, read: Read) -> edge_pb2.EdgeGetResponse:
        revision = 0 if read.version is None else read.version.revision
        answer = edge_pb2.EdgeGetResponse(info=self._info(read, revision))
        fill_entry(answer.entry, raw_key, read.version)
        return answer

    @handled
    async def Get(
        self, request: edge_pb2.EdgeGetRequest, context: Context
    ) -> edge_pb2.EdgeGetResponse:
        read = await self._node.get(request.namespace_id, request.key, _cache_ttl(request))
        return self._answer(request.key, read)

    @handled
    async def GetMany(
        self, request: edge_pb2.EdgeGetManyRequest, context: Context
    ) -> edge_pb2.EdgeGetManyResponse:
        keys = list(request.keys)
        reads = await self._node.get_many(request.namespace_id, keys, _cache_ttl(request))
        return edge_pb2.EdgeGetManyResponse(
            reads=[self._answer(raw, read) for raw, read in zip(keys, reads, strict=True)]
        )

    @handled
    async def Put(self, request: pb.PutRequest, context: Context) -> edge_pb2.EdgeWriteResponse:
        written = await self._node.put(request)
        return self._written(written)

    @handled
    async def Delete(
        self, request: pb.DeleteRequest, context: Context
    ) -> edge_pb2.EdgeWriteResponse:
        written = await self._node.delete(request)
        return self._written(written)

    def _written(self, written: pb.WriteResponse) -> edge_pb2.EdgeWriteResponse:
        return edge_pb2.EdgeWriteResponse(
            revision=written.revision,
            commit_time=written.commit_time,
            region=self._region,
            node=self._name,
        )

    @handled
    async def List(
        self, request: edge_pb2.EdgeListRequest, context: Context
    ) -> edge_pb2.EdgeListResponse:
        upstream_request = pb.ListRequest(
            namespace_id=request.namespace_id,
            prefix=request.prefix,
            limit=request.limit,
            cursor=request.cursor,
        )
        read = await self._node.list(upstream_request, _cache_ttl(request))
        return edge_pb2.EdgeListResponse(
            keys=read.page.keys,
            list_complete=read.page.list_complete,
            cursor=read.page.cursor,
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

    def _settings(self) -> edge_pb2.LinkSettings:
        settings = self._link.settings
        return edge_pb2.LinkSettings(
            rtt_ms=settings.rtt_ms,
            jitter_ms=settings.jitter_ms,
            loss=settings.loss,
            partitioned=settings.partitioned,
        )

    async def GetLink(
        self, request: edge_pb2.GetLinkRequest, context: Context
    ) -> edge_pb2.LinkSettings:
        return self._settings()

    @handled
    async def SetLink(
        self, request: edge_pb2.LinkSettings, context: Context
    ) -> edge_pb2.LinkSettings:
        try:
            self._link.change(
                rtt_ms=request.rtt_ms,
                jitter_ms=request.jitter_ms,
                loss=request.loss,
                partitioned=request.partitioned,
            )
        except ValueError as exc:
            import grpc

            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self._settings()
