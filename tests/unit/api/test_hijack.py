"""Hijacked connections (attach, exec start) hand their end back to the HTTP server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from hafen.api.hijack import hijack


async def _echo(request: web.Request) -> web.StreamResponse:
    response, stream = await hijack(request, "application/vnd.docker.raw-stream")
    try:
        data = await stream.read()
        await stream.write(data.upper())
    finally:
        stream.close()
    return response


async def _one_hijack(sock: str) -> bytes:
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(
        b"POST /h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(b"hello")
    data = await reader.read()
    writer.close()
    return data


def test_ended_hijacks_leave_no_connection_behind(tmp_path: Path) -> None:
    """Every attach and exec used to leave its HTTP handler, parser and task registered
    with the server for the daemon's life (~10 KB a container run)."""

    async def scenario() -> int:
        app = web.Application()
        app.router.add_post("/h", _echo)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = str(tmp_path / "s.sock")
        await web.UnixSite(runner, sock).start()
        try:
            for _ in range(5):
                assert await _one_hijack(sock) == b"HELLO"
            for _ in range(100):  # the handlers finish on the loop's next turns
                await asyncio.sleep(0.01)
                assert runner.server is not None
                if not runner.server.connections:
                    break
            assert runner.server is not None
            return len(runner.server.connections)
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == 0
