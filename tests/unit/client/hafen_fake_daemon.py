"""A tiny fake Engine API daemon on a unix socket, for client and CLI unit tests.

``http.server`` over AF_UNIX in a thread. Routes are ``(method, regex) -> handler``;
a handler gets the request and returns ``Reply`` (status, JSON or bytes, headers), or
takes the raw connection itself (hijack, slow streams) and returns ``None``.
Every request is recorded so tests can assert what the client sent.
"""

from __future__ import annotations

import json
import os
import re
import socketserver
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str  # without the /vX.Y prefix
    version: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    handler: BaseHTTPRequestHandler
    match: re.Match[str] | None = None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, bytes -> raw, None -> empty
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply | None]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a CLI under test that hangs up mid-stream is no fault of the fake's
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeDaemon:
    """Start with ``with FakeDaemon(path) as d:``; add routes with ``d.route(...)``."""

    def __init__(self, path: str, api_version: str = "1.45") -> None:
        self.path = path
        self.api_version = api_version
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def route(self, method: str, pattern: str, handler: Handler | Reply) -> None:
        fn: Handler = (lambda _r, reply=handler: reply) if isinstance(handler, Reply) else handler
        self.routes.insert(0, (method, re.compile(pattern + "$"), fn))

    def __enter__(self) -> FakeDaemon:
        daemon = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                daemon._dispatch(self)

            do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _handle

        self._server = _Server(self.path, H)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        version = None
        path = parts.path
        m = re.match(r"^/v(\d+\.\d+)(/.*)$", path)
        if m:
            version, path = m.group(1), m.group(2)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = raw
        if raw and "json" in (h.headers.get("Content-Type") or ""):
            body = json.loads(raw)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        req = Request(h.command, path, version, query, dict(h.headers), body, h)
        self.requests.append(req)
        if path == "/_ping" and not any(r[1].match(path) for r in self.routes):
            self.send(h, Reply(200, b"OK", {"API-Version": self.api_version, "OSType": "linux"}))
            return
        for method, pattern, fn in self.routes:
            match = pattern.match(path)
            if method == h.command and match:
                req.match = match
                reply = fn(req)
                if reply is not None:
                    self.send(h, reply)
                return
        self.send(h, Reply(404, {"message": f"page not found: {path}"}))

    @staticmethod
    def send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
            reply.headers.setdefault("Content-Type", "application/json")
        h.send_response(reply.status)
        for key, value in reply.headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def find(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]
