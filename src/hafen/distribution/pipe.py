"""``BlobPipe``: a blob's bytes from the event loop (the download) to one worker thread
(hash, store and unpack), so a layer is read off the network once and never re-read.

The loop side ``await put(chunk)``s; it waits while more than ``limit`` bytes are
unread, so a slow unpack slows the download instead of filling memory. The thread side
``read(n)``s like a file (short reads, ``b""`` at the end). Either side can stop the
other: ``close()`` marks the end of the data, ``fail(exc)`` makes the reader raise
(a failed download), and a reader that gives up calls ``abandon()``, after which
``put`` raises ``ReaderGone`` (the caller then collects the reader's own error).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque


class ReaderGone(Exception):
    """The consuming thread stopped reading (it failed); its error says why."""


class BlobPipe:
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = 8 * 1024 * 1024) -> None:
        self._loop = loop
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._abandoned = False
        self._space = asyncio.Event()

    # ------------------------------------------------------------ event loop side

    async def put(self, data: bytes) -> None:
        while True:
            with self._cond:
                if self._abandoned:
                    raise ReaderGone("the unpacking thread stopped")
                if self._size < self._limit:
                    self._chunks.append(data)
                    self._size += len(data)
                    self._cond.notify()
                    return
                self._space.clear()
            await self._space.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._closed = True
            self._cond.notify()

    # ------------------------------------------------------------ thread side

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._closed:
                self._cond.wait()
            if self._error is not None:
                raise OSError(f"download failed: {self._error}")
            if not self._chunks:
                return b""
            if n < 0:
                data = b"".join(self._chunks)
                self._chunks.clear()
            else:
                data = self._chunks.popleft()
                if len(data) > n:
                    self._chunks.appendleft(data[n:])
                    data = data[:n]
            was_full = self._size >= self._limit
            self._size -= len(data)
            if was_full and self._size < self._limit:
                self._loop.call_soon_threadsafe(self._space.set)
            return data

    def abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            self._chunks.clear()
            self._size = 0
        self._loop.call_soon_threadsafe(self._space.set)
