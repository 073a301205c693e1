"""Connection hijacking for attach (and later exec): the Engine API's raw streams.

The client asks with ``Connection: Upgrade`` / ``Upgrade: tcp``; we answer ``101
UPGRADED`` and the HTTP connection becomes a raw byte stream in both directions (a
client without the upgrade headers gets a 200 and the same raw stream, as dockerd
does). aiohttp has no hijack API, so after the response head is written we take the
transport over with a protocol of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web


class HijackedStream(asyncio.Protocol):
    """Both directions of a hijacked connection, with write flow control."""

    def __init__(
        self, transport: asyncio.Transport, http: asyncio.BaseProtocol | None = None
    ) -> None:
        self.transport = transport
        # aiohttp's handler of the connection before the hijack: it must hear of the end
        # too, or the server keeps it (with its parser and task) for the daemon's life
        self._http = http
        self._ssl_protocol: Any = None
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = asyncio.Event()

    # asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        self._incoming.put_nowait(data)

    def eof_received(self) -> bool | None:
        self._incoming.put_nowait(b"")
        if self._ssl_protocol is not None:
            return None  # (asyncio warns about True over TLS; keep_half_open_over_tls acts)
        return True  # keep our half open: output may still flow after stdin ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._incoming.put_nowait(b"")
        self.closed.set()
        self._can_write.set()
        http, self._http = self._http, None
        if http is not None:
            http.connection_lost(exc)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # our side
    async def read(self) -> bytes:
        """The next chunk from the client; b"" at its EOF."""
        return await self._incoming.get()

    async def write(self, data: bytes) -> None:
        if self.closed.is_set():
            raise ConnectionResetError("client went away")
        self.transport.write(data)
        await self._can_write.wait()

    def keep_half_open_over_tls(self) -> None:
        """Let output flow after a TLS client's close_notify (its stdin EOF).

        asyncio's SSL transport shuts the whole connection down when the peer sends
        close_notify, ignoring ``eof_received``'s wish to stay open; docker clients send
        it as soon as they have no stdin to forward. Until we close, that shutdown is
        deferred (TLS lets us keep writing after the peer's close_notify).
        """
        proto = getattr(self.transport, "_ssl_protocol", None)
        if proto is not None and callable(getattr(proto, "_start_shutdown", None)):
            self._ssl_protocol = proto
            proto._start_shutdown = lambda: None

    def close(self) -> None:
        if self._ssl_protocol is not None:
            with contextlib.suppress(AttributeError):
                del self._ssl_protocol._start_shutdown  # the class's own again
            self._ssl_protocol = None
        if not self.transport.is_closing():
            self.transport.close()


async def hijack(
    request: web.Request, content_type: str
) -> tuple[web.StreamResponse, HijackedStream]:
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    headers = {"Content-Type": content_type}
    if upgrade:
        headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
        response = web.StreamResponse(status=101, reason="UPGRADED", headers=headers)
    else:
        response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    transport = request.transport
    assert transport is not None
    stream = HijackedStream(transport, transport.get_protocol())
    stream.keep_half_open_over_tls()
    transport.set_protocol(stream)
    if transport.is_reading() is False:  # aiohttp may have paused reading under back-pressure
        transport.resume_reading()
    return response, stream
