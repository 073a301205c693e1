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
instead. A record is never split across files.
"""

from __future__ import annotations

import json
import os

from hafen.shim.proto import STREAM_NAMES, rfc3339_nano

MAX_PARTIAL = 16 * 1024


def encode_record(data: bytes, stream: str, ts: str, attrs: str = "") -> bytes:
    """One json-file line; bytes that are not UTF-8 become U+FFFD as in Docker.
    ``attrs`` is the record's encoded ``,"attrs":{...}`` member, or empty."""
    text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
    return f'{{"log":{text},"stream":"{stream}"{attrs},"time":"{ts}"}}\n'.encode()


class JsonLogWriter:
    """Appends container output to one json-file log, keeping partial lines per stream."""

    def __init__(
        self,
        path: str,
        max_size: int = 0,
        max_files: int = 1,
        attrs: dict[str, str] | None = None,
    ) -> None:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self._attrs = (
            ',"attrs":' + json.dumps(attrs, ensure_ascii=False, separators=(",", ":"))
            if attrs
            else ""
        )
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[int, bytearray] = {}
        self.failed = False

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files > 1:
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

    def write(self, stream: int, data: bytes) -> None:
        """Add output of ``stream`` (1 stdout, 2 stderr); write every record it completes."""
        buf = self._partial.setdefault(stream, bytearray())
        buf += data
        name = STREAM_NAMES.get(stream, "stdout")
        ts = rfc3339_nano()
        out = bytearray()
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            # a long line is cut into 16 KiB records even when its newline is already here
            while nl + 1 - start > MAX_PARTIAL:
                out += encode_record(bytes(buf[start : start + MAX_PARTIAL]), name, ts, self._attrs)
                start += MAX_PARTIAL
            out += encode_record(bytes(buf[start : nl + 1]), name, ts, self._attrs)
            start = nl + 1
        while len(buf) - start >= MAX_PARTIAL:
            out += encode_record(bytes(buf[start : start + MAX_PARTIAL]), name, ts, self._attrs)
            start += MAX_PARTIAL
        del buf[:start]
        self._emit(out)

    def end(self, stream: int) -> None:
        """The stream reached EOF: its partial line becomes a record of its own."""
        buf = self._partial.pop(stream, None)
        if buf:
            name = STREAM_NAMES.get(stream, "stdout")
            self._emit(encode_record(bytes(buf), name, rfc3339_nano(), self._attrs))

    def close(self) -> None:
        for stream in list(self._partial):
            self.end(stream)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _emit(self, data: bytes | bytearray) -> None:
        if not data or self._fd < 0:
            return
        try:
            if not self.max_size:
                self._write(data)
                return
            # whole records per file: cut the batch where the file would overflow
            start = 0
            while start < len(data):
                room = self.max_size - self._size
                end = data.rfind(b"\n", start, start + max(room, 0)) + 1
                if end <= start:  # not even one record fits
                    if self._size:
                        self._rotate()
                        continue
                    end = data.find(b"\n", start) + 1 or len(data)  # an oversized record
                self._write(data[start:end])
                start = end
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
