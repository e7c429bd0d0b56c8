"""Central's replicas serve one store: a client given several addresses checks that.

Theory of operation: replicas share one Redis database, and each says which store it
serves in ``Authorize``'s ``store_id`` (made when the store was). A replica pointed at
another database would serve other data for every call it takes, silently, so a node
given a list ``A,B`` (an edge, the API node) asks each address once at start and
refuses, in one line, a list whose centrals serve different stores.
"""

from __future__ import annotations

import asyncio

import grpc

from edgekv.channels import open_channel, parse_target
from edgekv.rpc import AUTHORIZATION_METADATA_KEY
from edgekv.v1 import central_pb2 as pb
from edgekv.v1 import central_pb2_grpc


async def check_one_store(
    central: str, tls_ca: str | None, authorization: str | None, timeout_s: float
) -> None:
    """Raise a one-line OSError when the centrals of a list ``A,B`` serve different stores.

    Replicas serve one store (one Redis database) together, and each says which in
    ``Authorize``'s ``store_id``; a replica pointed at another database would answer
    from other data for every other call. Each address is asked once, on a channel of
    its own; one that does not answer (down, or refusing the edge's token) cannot tell,
    and is left to the failover. A ``dns:///`` name's addresses are not asked.
    """
    if parse_target(central).elements < 2:
        return
    metadata = None if authorization is None else ((AUTHORIZATION_METADATA_KEY, authorization),)

    async def store_of(address: str) -> str | None:
        async with open_channel(address, tls_ca=tls_ca) as channel:
            stub = central_pb2_grpc.CentralStoreStub(channel)
            try:
                answer = await stub.Authorize(
                    pb.AuthorizeRequest(), timeout=timeout_s, metadata=metadata
                )
            except grpc.aio.AioRpcError:
                return None
        return answer.store_id or None

    addresses = [part.strip() for part in central.split(",")]
    stores = dict(zip(addresses, await asyncio.gather(*map(store_of, addresses)), strict=True))
    answered = {address: store for address, store in stores.items() if store is not None}
    if len(set(answered.values())) > 1:
        which = ", ".join(f"{address} serves store {store}" for address, store in answered.items())
        raise OSError(
            f"the centrals of --central {central} serve different stores ({which}): "
            "replicas must share one Redis database"
        )
