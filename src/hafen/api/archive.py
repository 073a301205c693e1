"""``GET/HEAD/PUT /containers/{id}/archive``: docker cp's tar API.

The tar work runs in a worker thread; bytes cross between it and the event loop through
bounded queues, so neither side buffers a whole archive and a slow client slows the
thread down instead of filling memory. ``X-Docker-Container-Path-Stat`` carries the
base64 JSON stat of the path, as dockerd sends it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, query_bool
from hafen.containers.archive import ContainerFiles, PathStat
from hafen.containers.model import Container
from hafen.errors import InvalidArgument

QUEUE_CHUNKS = 16
STAT_HEADER = "X-Docker-Container-Path-Stat"


def _stat_header(st: PathStat) -> str:
    raw = json.dumps(
        {
            "name": st.name,
            "size": st.size,
            "mode": st.mode,
            "mtime": st.mtime,
            "linkTarget": st.link_target,
        }
    )
    return base64.b64encode(raw.encode()).decode()


class _QueueWriter(io.RawIOBase):
    """A file the worker thread writes; chunks go to the loop through a bounded queue."""

    def __init__(self, queue: asyncio.Queue[bytes | None], loop: asyncio.AbstractEventLoop):
        self.queue = queue
        self.loop = loop
        self.cancelled = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.cancelled:
            raise BrokenPipeError("the client went away")
        chunk = bytes(data)
        if chunk:
            asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop).result()
        return len(chunk)


class _QueueReader(io.RawIOBase):
    """A file the worker thread reads; the loop feeds it from the request body."""

    def __init__(self, queue: asyncio.Queue[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.queue = queue
        self.loop = loop
        self.buffer = b""
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.buffer and not self.eof:
            chunk = asyncio.run_coroutine_threadsafe(self.queue.get(), self.loop).result()
            if not chunk:
                self.eof = True
            self.buffer = chunk
        n = min(len(b), len(self.buffer))
        b[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("Path cannot be empty")
    return path


@contextlib.asynccontextmanager
async def _locked_if_stopped(request: web.Request, c: Container) -> Any:
    """A stopped container's snapshot gets mounted for the copy: keep a start out."""
    service = daemon_of(request).containers
    if c.state.running:
        yield
        return
    async with service._lock(c.id):
        yield


async def head_archive(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    c = service.get(request.match_info["id"])
    files: ContainerFiles = service.files
    path = _path(request)

    def work() -> PathStat:
        with files.root(c) as root:
            return files.stat(c, root, path)

    async with _locked_if_stopped(request, c):
        st = await asyncio.to_thread(work)
    return web.Response(status=200, headers={STAT_HEADER: _stat_header(st)})


async def get_archive(request: web.Request) -> web.StreamResponse:
    service = daemon_of(request).containers
    c = service.get(request.match_info["id"])
    files: ContainerFiles = service.files
    path = _path(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)
    writer = _QueueWriter(queue, loop)
    ready: asyncio.Future[PathStat] = loop.create_future()

    def announce(st: PathStat) -> None:
        if not ready.done():
            ready.set_result(st)

    def fail(e: BaseException) -> None:
        if not ready.done():
            ready.set_exception(e)

    def work() -> None:
        try:
            with files.root(c) as root:
                st = files.stat(c, root, path)
                loop.call_soon_threadsafe(announce, st)
                files.read(c, root, path, writer)  # type: ignore[arg-type]
        except Exception as e:  # before the head: the error status; after: the end
            loop.call_soon_threadsafe(fail, e)
        finally:
            if not writer.cancelled:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    async with _locked_if_stopped(request, c):
        task = asyncio.ensure_future(asyncio.to_thread(work))
        response: web.StreamResponse | None = None
        try:
            st = await ready
            response = web.StreamResponse(
                status=200,
                headers={"Content-Type": "application/x-tar", STAT_HEADER: _stat_header(st)},
            )
            await response.prepare(request)
            while (chunk := await queue.get()) is not None:
                await response.write(chunk)
            await response.write_eof()
        finally:
            writer.cancelled = True
            while not task.done():  # let a blocked writer finish and unmount
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), 0.1)
            with contextlib.suppress(Exception):
                await task
    return response


async def put_archive(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    c = service.get(request.match_info["id"])
    files: ContainerFiles = service.files
    path = _path(request)
    no_overwrite = query_bool(request, "noOverwriteDirNonDir")
    copy_uid_gid = query_bool(request, "copyUIDGID")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_CHUNKS)
    reader = _QueueReader(queue, loop)

    def work() -> None:
        with files.root(c) as root:
            buffered = io.BufferedReader(reader, 1024 * 1024)
            files.write(c, root, path, buffered, no_overwrite, copy_uid_gid)
            while buffered.read(1024 * 1024):  # the rest (tar padding): let the feeder end
                pass

    async with _locked_if_stopped(request, c):
        task = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            async for chunk in request.content.iter_chunked(256 * 1024):
                if task.done():
                    break
                await _put_or_done(queue, chunk, task)
            await _put_or_done(queue, b"", task)
            await task
        finally:
            while not task.done():  # a reader still waiting: end its input
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(b"")
                await asyncio.sleep(0.01)
    return web.Response(status=200)


async def _put_or_done(
    queue: asyncio.Queue[bytes], chunk: bytes, task: asyncio.Future[Any]
) -> None:
    """Queue a chunk unless the worker already finished (e.g. it refused the archive)."""
    put = asyncio.ensure_future(queue.put(chunk))
    await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()


def register(routes: Routes) -> None:
    routes.add("HEAD", "/containers/{id}/archive", head_archive)
    routes.add("GET", "/containers/{id}/archive", get_archive)
    routes.add("PUT", "/containers/{id}/archive", put_archive)
