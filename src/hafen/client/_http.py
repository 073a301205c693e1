"""A small HTTP/1.1 client connection: one request, one response, then closed.

What the API client needs and no more: a request with a bytes body (``Content-Length``)
or a streamed one (a file or an iterable of byte chunks, sent ``chunked``); a response
whose body is framed by ``Content-Length``, ``chunked`` or the end of the connection,
read whole or as it arrives (``read1``). It replaces ``http.client``, whose import
(``email``, ``ssl``) was a fifth of the start-up of every ``hafen`` command.

    conn = Connection(sock)                    # a connected stream socket
    conn.request("POST", "/v1.45/containers/create", b"{...}", {"Host": "docker"})
    resp = conn.getresponse()                  # status line and headers are in
    body = resp.read()                         # or resp.read1(65536) while streaming
    conn.close()

Malformed responses raise ``HTTPException``; socket errors are ``OSError`` as usual.
"""

from __future__ import annotations

import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

_MAX_LINE = 65536
_MAX_HEADERS = 200
_CHUNK = 64 * 1024


class HTTPException(Exception):
    """The peer's response was not well-formed HTTP/1.1 (or ended in the middle)."""


class RemoteDisconnected(HTTPException):
    """The peer closed the connection before it answered at all."""


class Response:
    """Status, headers and the body of one response."""

    def __init__(self, reader: Any, method: str) -> None:
        self._reader = reader
        line = reader.readline(_MAX_LINE + 1)
        if not line:
            raise RemoteDisconnected("the connection closed before a response arrived")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HTTPException(f"malformed status line: {line[:100]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self._headers: list[tuple[str, str]] = []
        while True:
            line = reader.readline(_MAX_LINE + 1)
            if not line:
                raise HTTPException("the connection closed inside the response headers")
            if line in (b"\r\n", b"\n"):
                break
            if len(self._headers) >= _MAX_HEADERS or len(line) > _MAX_LINE:
                raise HTTPException("oversized response headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                self._headers.append((name.strip(), value.strip()))
        lowered = {k.lower(): v for k, v in self._headers}
        self._chunked = "chunked" in lowered.get("transfer-encoding", "").lower()
        self._left: int | None = None  # bytes left in the body (or current chunk)
        self._seen_chunk = False
        self._done = False
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._done = True
        elif self._chunked:
            self._left = 0
        elif "content-length" in lowered:
            try:
                self._left = int(lowered["content-length"])
            except ValueError:
                raise HTTPException(f"bad Content-Length: {lowered['content-length']!r}")
            self._done = self._left == 0

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def _next_chunk(self) -> bool:
        """Start the next chunk of a chunked body; False at the last (empty) one."""
        ended = self._left == 0 and self._seen_chunk  # the CRLF after a chunk's data
        if ended and self._reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise HTTPException("malformed chunked body")
        self._seen_chunk = True
        line = self._reader.readline(_MAX_LINE + 1)
        if not line:
            raise HTTPException("the connection closed inside a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPException(f"malformed chunk size: {line[:40]!r}")
        if size == 0:
            while self._reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return False
        self._left = size
        return True

    def read1(self, size: int = _CHUNK) -> bytes:
        """Up to ``size`` bytes of the body as soon as some are there; ``b""`` at its end."""
        if self._done:
            return b""
        if self._chunked and self._left == 0 and not self._next_chunk():
            self._done = True
            return b""
        want = size if self._left is None else min(size, self._left)
        data = self._reader.read1(want)
        if not data:
            if self._left is not None:
                raise HTTPException("the connection closed inside the response body")
            self._done = True
            return b""
        if self._left is not None:
            self._left -= len(data)
            if self._left == 0 and not self._chunked:
                self._done = True
        return data

    def read(self) -> bytes:
        """The rest of the body."""
        parts = []
        while data := self.read1(1 << 20):
            parts.append(data)
        return b"".join(parts)

    def close(self) -> None:
        self._done = True


class Connection:
    """One request/response exchange over a connected stream socket it then owns."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._method = "GET"

    def request(
        self, method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send the request: ``body`` is None, bytes, a file (``read``) or byte chunks."""
        self._method = method
        head = [f"{method} {url} HTTP/1.1"]
        hdrs = dict(headers or {})
        names = {k.lower() for k in hdrs}
        streamed = body is not None and not isinstance(body, bytes | bytearray)
        if streamed:
            hdrs.setdefault("Transfer-Encoding", "chunked")
        elif body is not None and "content-length" not in names:
            hdrs["Content-Length"] = str(len(body))
        head += [f"{k}: {v}" for k, v in hdrs.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if not streamed:
            self.sock.sendall(data + (body or b""))
            return
        self.sock.sendall(data)
        for chunk in _chunks(body):
            if chunk:
                self.sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        self.sock.sendall(b"0\r\n\r\n")

    def getresponse(self) -> Response:
        return Response(self._reader, self._method)

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


def _chunks(body: Any) -> Iterable[bytes]:
    if hasattr(body, "read"):
        while chunk := body.read(_CHUNK):
            yield chunk.encode() if isinstance(chunk, str) else chunk
        return
    for chunk in body:
        yield chunk.encode() if isinstance(chunk, str) else bytes(chunk)
