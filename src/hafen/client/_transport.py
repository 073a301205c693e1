"""HTTP over a unix socket (or TCP) with the standard library only.

Owns: parsing a host URL (``unix:///path``, ``tcp://host:port``), opening
connections to it (``_http.Connection``, over TLS where the host has an SSL context),
turning connection failures into
``Unavailable``, turning non-2xx/3xx responses into ``hafen.errors`` by status, and
the raw connection-upgrade ("hijack") handshake used by attach.
"""

from __future__ import annotations

import json
import socket

from hafen import errors
from hafen.client._http import Connection
from hafen.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Any

DEFAULT_HOST = "unix:///run/hafen/hafen.sock"

_STATUS_ERRORS: dict[int, type[errors.HafenError]] = {
    400: errors.InvalidArgument,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    500: errors.HafenError,
    503: errors.Unavailable,
}


@record(frozen=True)
class Host:
    """Where the daemon listens: ``scheme`` is "unix" (``address`` a path) or "tcp"."""

    url: str
    scheme: str
    address: str
    port: int = 0
    ssl_context: ssl.SSLContext | None = None  # tcp:// with TLS


def parse_host(url: str) -> Host:
    """Parse ``unix:///path``, a bare ``/path``, or ``tcp://host:port``."""
    if url.startswith("/"):
        return Host("unix://" + url, "unix", url)
    if url.startswith("unix://") and "?" not in url and "#" not in url:
        path = url[len("unix://") :]
        if not path:
            raise errors.InvalidArgument(f"invalid host {url!r}: no socket path")
        return Host(url, "unix", path)
    from urllib.parse import urlsplit  # tcp:// only: it costs ~2 ms to import

    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = parts.path or parts.netloc
        if not path:
            raise errors.InvalidArgument(f"invalid host {url!r}: no socket path")
        return Host(url, "unix", path)
    if parts.scheme in ("tcp", "http"):
        if not parts.hostname:
            raise errors.InvalidArgument(f"invalid host {url!r}: no address")
        return Host(url, "tcp", parts.hostname, parts.port or 2375)
    raise errors.InvalidArgument(f"invalid host {url!r}: the scheme must be unix:// or tcp://")


class DaemonUnreachable(errors.Unavailable):
    """Nothing answered on the daemon's socket (as opposed to a daemon answering 503)."""


def unavailable(host: Host) -> DaemonUnreachable:
    return DaemonUnreachable(
        f"Cannot connect to the hafen daemon at {host.url}. Is the daemon running?"
    )


def open_connection(host: Host, timeout: float | None) -> Connection:
    """A connection to ``host`` (TLS-wrapped where the host has an SSL context); raises
    ``Unavailable`` if nobody answers."""
    return Connection(open_socket(host, timeout))


def open_socket(host: Host, timeout: float | None, half_close: bool = False) -> Any:
    """A connected raw socket to ``host``; raises ``Unavailable`` if nobody answers.

    Over TLS it is an ``SSLSocket``, or with ``half_close`` (hijacked streams, whose
    stdin may end before their output) a ``TLSStream`` that can send close_notify
    alone."""
    try:
        if host.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(host.address)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((host.address, host.port), timeout=timeout)
    except OSError:
        raise unavailable(host)
    if host.ssl_context is None:
        return sock
    try:
        if half_close:
            from hafen.client._tls import TLSStream

            return TLSStream(sock, host.ssl_context, host.address)
        return host.ssl_context.wrap_socket(sock, server_hostname=host.address)
    except OSError as e:  # ssl.SSLError is an OSError: a failed handshake
        sock.close()
        raise errors.Unavailable(f"TLS handshake with {host.url} failed: {e}") from e


def error_from_response(status: int, body: bytes, reason: str = "") -> errors.HafenError:
    """The ``hafen.errors`` exception for a failed response, carrying the daemon's message."""
    message = ""
    text = body.decode("utf-8", "replace").strip()
    if text:
        try:
            doc = json.loads(text)
        except ValueError:
            message = text
        else:
            if isinstance(doc, dict) and isinstance(doc.get("message"), str):
                message = doc["message"]
            else:
                message = text
    if not message:
        message = f"{status} {reason}".strip()
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = errors.InvalidArgument if 400 <= status < 500 else errors.HafenError
    err = cls.__new__(cls)
    errors.HafenError.__init__(err, message)
    # Keep the exact status for callers that care (e.g. 401 vs 400).
    err.status = status
    return err


def is_success(status: int) -> bool:
    # Like docker's client, 1xx-3xx are not errors: 304 means "already started/stopped".
    return 100 <= status < 400


@record
class HijackResponse:
    """Status line and headers of a hijack reply, plus bytes read past the headers."""

    status: int
    reason: str
    headers: dict[str, str]
    rest: bytes


def read_response_head(sock: socket.socket) -> HijackResponse:
    """Read an HTTP response head from ``sock`` byte-exactly, without a buffered reader."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise errors.HafenError("the daemon closed the connection during attach")
        data += chunk
        if len(data) > 65536:
            raise errors.HafenError("the daemon sent an oversized response header")
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise errors.HafenError(f"malformed response from the daemon: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HijackResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest)
