"""Decoders for the Engine API's streamed bodies.

Owns the multiplexed stdio framing (``application/vnd.docker.multiplexed-stream``:
an 8-byte header ``[stream, 0, 0, 0, size(4, big-endian)]`` then ``size`` bytes,
stream 0 stdin, 1 stdout, 2 stderr) and the newline-or-concatenated JSON message
streams that pull/push/build/bootstrap send.
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

STDIN = 0
STDOUT = 1
STDERR = 2
SYSTEMERR = 3  # moby sends stream 3 for a daemon-side error in the middle of a stream

_HEADER = struct.Struct(">BxxxL")


class MultiplexDecoder:
    """Incremental demultiplexer: feed it bytes as they arrive, get whole frames back.

    Useful where the caller owns the read loop (select on a socket); ``demux`` wraps it
    as a generator over a ``read`` function.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data``; return every frame that is now complete, in order."""
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buf) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buf)
            end = _HEADER.size + size
            if len(self._buf) < end:
                break
            frames.append((stream, bytes(self._buf[_HEADER.size : end])))
            del self._buf[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held back because their frame is not complete yet."""
        return len(self._buf)


def demux(read: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(stream, payload)`` frames read through ``read(n)`` until EOF.

    ``read`` may return fewer bytes than asked (a socket's ``recv``) and ``b""`` at EOF.
    A frame cut short by EOF is dropped, as docker's ``stdcopy`` does.
    """
    decoder = MultiplexDecoder()
    while True:
        chunk = read(65536)
        if not chunk:
            return
        yield from decoder.feed(chunk)


def encode_frame(stream: int, payload: bytes) -> bytes:
    """One multiplexed frame (used by tests and fakes)."""
    return _HEADER.pack(stream, len(payload)) + payload


def json_messages(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode a JSON message stream: objects separated by newlines or simply concatenated."""
    decoder = json.JSONDecoder()
    buf = ""
    pending = b""
    for chunk in chunks:
        pending += chunk
        try:
            buf += pending.decode("utf-8")
            pending = b""
        except UnicodeDecodeError:
            # A multi-byte character split across chunks: wait for the rest.
            continue
        while True:
            stripped = buf.lstrip()
            if not stripped:
                buf = ""
                break
            try:
                obj, end = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                buf = stripped
                break
            buf = stripped[end:]
            if isinstance(obj, dict):
                yield obj
    if buf.strip():
        raise ValueError(f"truncated JSON message stream: {buf.strip()[:80]!r}")
