"""A TCP proxy that can break a connection right after the server acted on a request.

Theory of operation: the proxy listens on 127.0.0.1 (port 0) and joins each
client connection to a new connection to the server, passing bytes both ways.
Armed with :meth:`ReplyDroppingProxy.drop_reply_to`, it watches what clients
send: once a request containing the marker has passed to the server, the
server's next bytes on that connection are not passed back — the proxy closes
both sides instead. The server has done what it was asked and its client never
hears of it: the one failure a client cannot tell from "never sent", made on
demand.
"""

from __future__ import annotations

import asyncio
import contextlib


class ReplyDroppingProxy:
    def __init__(self, server_host: str, server_port: int) -> None:
        self._server = (server_host, server_port)
        self._marker: bytes | None = None
        self._listener: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.dropped = 0

    async def start(self) -> int:
        """Listen; the port."""
        self._listener = await asyncio.start_server(self._join, "127.0.0.1", 0)
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    def drop_reply_to(self, marker: bytes) -> None:
        """Drop the reply to the next request that contains ``marker`` (once)."""
        self._marker = marker

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _join(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection(*self._server)
        armed = asyncio.Event()

        async def to_server() -> None:
            while data := await client_in.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    armed.set()
                server_out.write(data)
                await server_out.drain()

        async def to_client() -> None:
            while data := await server_in.read(65536):
                if armed.is_set():
                    self.dropped += 1
                    break  # the server acted; its client is told nothing
                client_out.write(data)
                await client_out.drain()

        pumps = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._pumps.discard(pump)
            for writer in (client_out, server_out):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
