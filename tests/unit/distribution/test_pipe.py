"""BlobPipe: bytes from the event loop to a worker thread, bounded, failures both ways."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hafen.distribution.pipe import BlobPipe, ReaderGone


def test_bytes_arrive_in_order_and_the_writer_waits_for_a_slow_reader() -> None:
    async def main() -> bytes:
        pipe = BlobPipe(asyncio.get_running_loop(), limit=8)
        got: list[bytes] = []

        def reader() -> None:
            while data := pipe.read(3):
                got.append(data)

        thread = asyncio.ensure_future(asyncio.to_thread(reader))
        for i in range(50):
            await pipe.put(b"%02d" % i)
            assert pipe._size <= 8 + 2  # never more than the limit (plus one chunk) queued
        pipe.close()
        await thread
        return b"".join(got)

    assert asyncio.run(main()) == b"".join(b"%02d" % i for i in range(50))


def test_a_failed_download_makes_the_reader_raise() -> None:
    async def main() -> None:
        pipe = BlobPipe(asyncio.get_running_loop())
        await pipe.put(b"abc")
        pipe.fail(ConnectionError("dropped"))
        with pytest.raises(OSError, match="download failed: dropped"):
            await asyncio.to_thread(pipe.read, 10)

    asyncio.run(main())


def test_a_reader_that_gives_up_stops_the_writer() -> None:
    async def main() -> None:
        pipe = BlobPipe(asyncio.get_running_loop(), limit=4)
        await pipe.put(b"12345")  # over the limit: the next put waits

        def give_up() -> None:
            threading.Event().wait(0.05)
            pipe.abandon()

        waiter = asyncio.ensure_future(asyncio.to_thread(give_up))
        with pytest.raises(ReaderGone):
            await asyncio.wait_for(pipe.put(b"more"), timeout=5)
        await waiter

    asyncio.run(main())
