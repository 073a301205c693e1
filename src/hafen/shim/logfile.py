"""Docker's json-file log format, written as the container produces output.

Owns the record format — one JSON object per line,
``{"log":"hello\\n","stream":"stdout","time":"<RFC 3339 nano UTC>"}``, with
``"attrs":{...}`` before ``time`` when the container has log attributes (``--log-opt``
labels, env, tag: the same in every record, as dockerd writes them) — and Docker's
splitting rules: a record per newline-terminated line; a partial line becomes its own
record (without ``\\n``) once it reaches 16 KiB or when its stream ends. The file is
opened with ``O_APPEND`` and every batch of complete records is written with one
``write`` as soon as it exists, because the daemon follows the file for ``logs -f``.

Rotation (``--log-opt max-size``/``max-file``): once the file reaches ``max_size`` bytes
it is renamed to ``<path>.1`` (older ones shift up to ``<path>.<max_files-1>``, the
oldest is dropped) and a new file is started; with ``max_files`` 1 the file is truncated
instead. A record is never split across files. With ``compress`` every rotated file is
gzipped (``<path>.1.gz`` …, as dockerd), its gzip header's extra field holding
``{"LastTime": ..., "Inode": N}`` — the inode the file had while it was written, so a
follower holding it open can still tell where it sits among the rotated files.

With ``buffer_size`` (``--log-opt mode=non-blocking``) the records go to a ``LogRing``
(``logbuffer.py``) instead, and a writer thread does the file work (writes, rotation,
gzip): the caller never waits on the file; records that do not fit are dropped whole.

``LocalLogWriter`` writes the same records in dockerd's ``local`` driver framing: per
record ``[u32 size][protobuf LogEntry][u32 size]`` (big endian; ``source``,
``time_nano``, ``line`` without its newline, ``partial``), readable backwards as forwards.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from typing import TYPE_CHECKING

from hafen.shim.proto import STREAM_NAMES, rfc3339_nano

if TYPE_CHECKING:
    from hafen.shim.logbuffer import LogRing

MAX_PARTIAL = 16 * 1024


def encode_record(data: bytes, stream: str, ts: str, attrs: str = "") -> bytes:
    """One json-file line; bytes that are not UTF-8 become U+FFFD as in Docker.
    ``attrs`` is the record's encoded ``,"attrs":{...}`` member, or empty."""
    text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
    return f'{{"log":{text},"stream":"{stream}"{attrs},"time":"{ts}"}}\n'.encode()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_local(data: bytes, stream: str, ns: int) -> bytes:
    """One ``local`` driver frame (dockerd's logdriver.LogEntry protobuf, size-framed)."""
    partial = not data.endswith(b"\n")
    line = data if partial else data[:-1]
    source = stream.encode()
    entry = (
        b"\x0a" + _varint(len(source)) + source
        + b"\x10" + _varint(ns)
        + b"\x1a" + _varint(len(line)) + line
        + (b"\x20\x01" if partial else b"")
    )  # fmt: skip
    size = struct.pack(">I", len(entry))
    return size + entry + size


def gzip_rotated(src: str, dst: str, inode: int, last_time: str) -> None:
    """Compress ``src`` into ``dst`` (via a temp file and a rename: a reader never sees a
    partial one), the header's extra field naming the file's inode and last time."""
    extra = json.dumps({"LastTime": last_time, "Inode": inode}).encode()
    header = (
        b"\x1f\x8b\x08\x04"  # magic, deflate, FEXTRA
        + struct.pack("<I", int(time.time()) & 0xFFFFFFFF)
        + b"\x00\xff"
        + struct.pack("<H", len(extra))
        + extra
    )
    tmp = dst + ".tmp"
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    crc, size = 0, 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        fout.write(header)
        while chunk := fin.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            fout.write(deflate.compress(chunk))
        fout.write(deflate.flush())
        fout.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    os.rename(tmp, dst)


class JsonLogWriter:
    """Appends container output to one json-file log, keeping partial lines per stream."""

    def __init__(
        self,
        path: str,
        max_size: int = 0,
        max_files: int = 1,
        attrs: dict[str, str] | None = None,
        compress: bool = False,
        buffer_size: int | None = None,
    ) -> None:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.compress = compress and self.max_files > 1
        self._last_time = ""
        self._attrs = (
            ',"attrs":' + json.dumps(attrs, ensure_ascii=False, separators=(",", ":"))
            if attrs
            else ""
        )
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[int, bytearray] = {}
        self.failed = False
        # non-blocking mode: records queue for a writer thread (None: written here)
        self.ring: LogRing | None = None
        if buffer_size is not None:
            # imported only here: threading is not on every container's start path
            from hafen.shim.logbuffer import LogRing

            self.ring = LogRing(self._write_records, buffer_size, path)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files > 1 and self.compress:
            first = f"{self.path}.1"
            if os.path.exists(first):  # left plain by a shim that died compressing it
                self._gzip(first, os.stat(first).st_ino)
            for i in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}.gz", f"{self.path}.{i}.gz")
                except FileNotFoundError:
                    pass
            inode = os.stat(self.path).st_ino
            os.rename(self.path, first)
            self._gzip(first, inode)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        elif self.max_files > 1:
            for i in range(self.max_files - 1, 0, -1):
                older = f"{self.path}.{i - 1}" if i > 1 else self.path
                try:
                    os.rename(older, f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0

    def _gzip(self, plain: str, inode: int) -> None:
        # synchronous: the shim has one thread, and a rotated file is at most max-size
        gzip_rotated(plain, plain + ".gz", inode, self._last_time)
        os.unlink(plain)

    def _encode(self, data: bytes, stream: str, ts: str, ns: int) -> bytes:
        return encode_record(data, stream, ts, self._attrs)

    def write(self, stream: int, data: bytes) -> None:
        """Add output of ``stream`` (1 stdout, 2 stderr); write every record it completes."""
        buf = self._partial.setdefault(stream, bytearray())
        buf += data
        name = STREAM_NAMES.get(stream, "stdout")
        ns = time.time_ns()
        ts = rfc3339_nano(ns)
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            # a long line is cut into 16 KiB records even when its newline is already here
            while nl + 1 - start > MAX_PARTIAL:
                out.append(self._encode(bytes(buf[start : start + MAX_PARTIAL]), name, ts, ns))
                start += MAX_PARTIAL
            out.append(self._encode(bytes(buf[start : nl + 1]), name, ts, ns))
            start = nl + 1
        while len(buf) - start >= MAX_PARTIAL:
            out.append(self._encode(bytes(buf[start : start + MAX_PARTIAL]), name, ts, ns))
            start += MAX_PARTIAL
        del buf[:start]
        if out:
            self._last_time = ts
            self._emit(out)

    def end(self, stream: int) -> None:
        """The stream reached EOF: its partial line becomes a record of its own."""
        buf = self._partial.pop(stream, None)
        if buf:
            name = STREAM_NAMES.get(stream, "stdout")
            ns = time.time_ns()
            self._last_time = rfc3339_nano(ns)
            self._emit([self._encode(bytes(buf), name, self._last_time, ns)])

    def close(self) -> None:
        for stream in list(self._partial):
            self.end(stream)
        if self.ring is not None and not self.ring.close():
            return  # the thread is stuck in a write: leave it the fd, the shim is leaving
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _emit(self, records: list[bytes]) -> None:
        if self.ring is not None:
            self.ring.put(records)
        else:
            self._write_records(records)

    def _write_records(self, records: list[bytes]) -> None:
        """Write records to the file (rotating as needed): on the caller's thread in
        blocking mode, on the ring's writer thread in non-blocking mode."""
        if not records or self._fd < 0:
            return
        try:
            if not self.max_size:
                self._write(b"".join(records))
                return
            # whole records per file: cut the batch where the file would overflow
            batch: list[bytes] = []
            room = self.max_size - self._size
            for record in records:
                if len(record) > room and (batch or self._size):
                    if batch:
                        self._write(b"".join(batch))
                        batch = []
                    self._rotate()
                    room = self.max_size
                batch.append(record)  # an oversized record gets a file of its own
                room -= len(record)
            if batch:
                self._write(b"".join(batch))
        except OSError:
            # a full disk must not stop the container: keep serving attachers, log once
            if not self.failed:
                self.failed = True
                os.write(2, f"hafen-shim: writing {self.path} failed; output dropped\n".encode())

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)


class LocalLogWriter(JsonLogWriter):
    """The same records, in dockerd's ``local`` driver framing (no attrs: it has none)."""

    def _encode(self, data: bytes, stream: str, ts: str, ns: int) -> bytes:
        return encode_local(data, stream, ns)
