"""``APIClient``: the synchronous Docker Engine API client that the CLI and compose use.

It negotiates the API version the way docker does (``/_ping``'s ``API-Version``
header, then ``/v{min(1.45, server)}`` on every path), returns parsed JSON or small
records (``hafen.records``), raises ``hafen.errors`` for failed requests, and exposes the three
streaming shapes of the API: plain streamed bodies (logs), JSON-message progress
streams (``post_stream``), and hijacked connections (attach).

Usage::

    client = APIClient()                      # HAFEN_HOST or unix:///run/hafen/hafen.sock
    created = client.create_container({"Image": "busybox", "Cmd": ["true"]})
    client.start(created.id)
    print(client.wait(created.id).status_code)
"""

from __future__ import annotations

import json
import os
import socket
import threading

from hafen import errors
from hafen.client import _transport
from hafen.client._http import Connection, HTTPException, RemoteDisconnected, Response
from hafen.client._stream import json_messages
from hafen.client._transport import DEFAULT_HOST, Host, parse_host
from hafen.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any, BinaryIO

    from hafen.client._tls import TLSOptions

    Params = Mapping[str, Any] | None

CLIENT_API_VERSION = "1.45"
# Docker's fallback when a daemon's ping carries no API-Version header.
_FALLBACK_API_VERSION = "1.24"


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def _encode_params(params: Params) -> str:
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, tuple):  # a repeated parameter: names=a&names=b
            pairs.extend((key, str(v)) for v in value)
        elif isinstance(value, (dict, list)):
            pairs.append((key, json.dumps(value, separators=(",", ":"))))
        else:
            pairs.append((key, str(value)))
    return "&".join(f"{_percent(k, b'', True)}={_percent(v, b'', True)}" for k, v in pairs)


def _q(ident: str) -> str:
    """Quote an id/name/reference for use as one path segment (keeps ':' and '@')."""
    return _percent(ident, b":@", False)


# RFC 3986's unreserved characters; everything else is %XX-escaped, as urllib.parse's
# quote/quote_plus do (not imported: it and ipaddress cost ~2 ms of every CLI start).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _percent(text: str, safe: bytes, space_as_plus: bool) -> str:
    if text.isascii() and text.isalnum():
        return text
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED or byte in safe:
            out.append(chr(byte))
        elif byte == 0x20 and space_as_plus:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


@record(frozen=True)
class PingResult:
    api_version: str
    os_type: str
    experimental: bool
    builder_version: str


@record(frozen=True)
class CreateResult:
    id: str
    warnings: list[str] = field(default_factory=list)


@record(frozen=True)
class WaitResult:
    status_code: int
    error: str | None = None


@record
class Hijacked:
    """A connection taken over for raw stdio: ``buffered`` holds bytes already read."""

    sock: socket.socket
    buffered: bytes = b""
    upgraded: bool = True

    def recv(self, size: int = 65536) -> bytes:
        """Read from the stream: first what was buffered, then from the socket."""
        if self.buffered:
            data, self.buffered = self.buffered[:size], self.buffered[size:]
            return data
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: tells the container its stdin reached EOF.

        Over TLS that is a close_notify alone (``TLSStream.close_write``), as Go's
        ``tls.Conn.CloseWrite`` sends it: a TCP half-close would end the whole TLS
        session, and the output still to come with it."""
        try:
            close_write = getattr(self.sock, "close_write", None)  # a TLSStream
            if close_write is not None:
                close_write()
            else:
                self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class StreamResponse:
    """A response whose body is read as it arrives; close it when done."""

    def __init__(self, conn: Connection, resp: Response) -> None:
        self._conn = conn
        self._resp = resp
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes as soon as some are available; ``b""`` at the end."""
        try:
            return self._resp.read1(size)
        except (HTTPException, OSError):
            return b""

    def read_all(self) -> bytes:
        return self._resp.read()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def close(self) -> None:
        self._resp.close()
        self._conn.close()

    def __enter__(self) -> StreamResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PendingWait:
    """A ``POST /containers/{id}/wait`` in flight: its result arrives when the container
    reaches the wait condition. Sent before ``start`` so a fast exit is never missed."""

    def __init__(self, client: APIClient, container: str, condition: str | None) -> None:
        self._client = client
        self._container = container
        self._condition = condition
        self._headers = threading.Event()
        self._done = threading.Event()
        self._result: WaitResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hafen-wait", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            stream = self._client._send(
                "POST",
                f"/containers/{_q(self._container)}/wait",
                {"condition": self._condition},
            )
            self._headers.set()
            with stream:
                body = stream.read_all()
            doc = json.loads(body or b"{}")
            err = doc.get("Error") or None
            message = err.get("Message") if isinstance(err, dict) else None
            self._result = WaitResult(int(doc.get("StatusCode", 0)), message or None)
        except BaseException as exc:
            self._error = exc
        finally:
            self._headers.set()
            self._done.set()

    def registered(self, timeout: float | None = None) -> bool:
        """Block until the daemon has answered with headers (it registered the wait) or
        failed; ``False`` if ``timeout`` passed first. Raises the request's error."""
        ok = self._headers.wait(timeout)
        if self._error is not None:
            raise self._error
        return ok

    def result(self, timeout: float | None = None) -> WaitResult:
        """The container's exit status; raises the request's error if it failed."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"container {self._container} did not exit in time")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class APIClient:
    """A synchronous Engine API client over a unix socket (or TCP)."""

    def __init__(
        self,
        host: str | None = None,
        version: str | None = None,
        timeout: float | None = None,
        tls: TLSOptions | None = None,
    ) -> None:
        url = host or os.environ.get("HAFEN_HOST") or DEFAULT_HOST
        self.host: Host = parse_host(url)
        if tls is not None and self.host.scheme == "tcp":
            # as the docker CLI: TLS on tcp:// (a unix socket ignores it), port 2376 by default
            from urllib.parse import urlsplit

            from hafen.client._tls import TLS_PORT
            from hafen.records import replace

            port = urlsplit(url).port or TLS_PORT
            self.host = replace(self.host, port=port, ssl_context=tls.context())
        self.timeout = timeout
        self._version: str | None = version or os.environ.get("HAFEN_API_VERSION") or None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    @property
    def api_version(self) -> str:
        """The negotiated API version (pings the daemon the first time)."""
        with self._lock:
            if self._version is None:
                server = self.ping().api_version or _FALLBACK_API_VERSION
                if _version_tuple(server) < _version_tuple(CLIENT_API_VERSION):
                    self._version = server
                else:
                    self._version = CLIENT_API_VERSION
            return self._version

    def _url(self, path: str, params: Params = None, versioned: bool = True) -> str:
        prefix = f"/v{self.api_version}" if versioned else ""
        query = _encode_params(params)
        return prefix + path + ("?" + query if query else "")

    def _send(
        self,
        method: str,
        path: str,
        params: Params = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        versioned: bool = True,
        timeout: float | None = None,
    ) -> StreamResponse:
        """Send one request and return once the status line and headers are in.

        Raises ``Unavailable`` when nothing listens, the mapped ``hafen.errors`` class
        when the daemon answers with an error status.
        """
        url = self._url(path, params, versioned)
        conn = _transport.open_connection(
            self.host, timeout if timeout is not None else self.timeout
        )
        hdrs = {"User-Agent": "hafen-cli", "Host": "docker"}
        data: Any = None
        if hasattr(body, "read"):  # a file: streamed, chunked
            data = body
            hdrs["Content-Type"] = "application/x-tar"
        elif body is not None and not isinstance(body, (bytes, dict, list, str)):
            data = body  # an iterable of byte chunks: streamed, chunked, as it is produced
            hdrs["Content-Type"] = "application/x-tar"
        elif body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif method in ("POST", "PUT"):
            data = b""
        if headers:
            hdrs.update(headers)
        try:
            conn.request(method, url, body=data, headers=hdrs)
        except OSError as exc:
            conn.close()
            if self.host.ssl_context is not None:
                import ssl

                if isinstance(exc, ssl.SSLError):
                    raise _transport.DaemonUnreachable(
                        f"TLS connection to the daemon at {self.host.url} failed: {exc}"
                    )
            raise _transport.unavailable(self.host)
        try:
            resp = conn.getresponse()
        except (OSError, HTTPException) as exc:
            conn.close()
            if isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                raise _transport.unavailable(self.host)
            if self.host.ssl_context is not None and isinstance(
                exc, (RemoteDisconnected, ConnectionResetError)
            ):
                # TLS 1.3: a daemon that rejects our certificate hangs up after the handshake
                raise _transport.DaemonUnreachable(
                    f"the daemon at {self.host.url} closed the TLS connection: it may require "
                    "a client certificate it trusts (--tlscert, --tlskey)"
                )
            raise errors.HafenError(f"error reading the daemon's response: {exc}")
        stream = StreamResponse(conn, resp)
        if not _transport.is_success(resp.status):
            try:
                payload = resp.read()
            except (OSError, HTTPException):
                payload = b""
            stream.close()
            raise _transport.error_from_response(resp.status, payload, resp.reason)
        return stream

    def _call(
        self,
        method: str,
        path: str,
        params: Params = None,
        body: Any = None,
        versioned: bool = True,
    ) -> Any:
        """Send a request, read the whole body, return it parsed (``None`` if empty)."""
        with self._send(method, path, params, body, versioned=versioned) as stream:
            try:
                raw = stream.read_all()
            except (OSError, HTTPException) as exc:
                raise errors.HafenError(f"error reading the daemon's response: {exc}")
        if not raw.strip():
            return None
        if "json" in stream.content_type or raw[:1] in (b"{", b"["):
            try:
                return json.loads(raw)
            except ValueError:
                pass
        return raw.decode("utf-8", "replace")

    # ------------------------------------------------------------------ system

    def ping(self) -> PingResult:
        """``GET /_ping``; raises ``Unavailable`` if the daemon does not answer."""
        with self._send("GET", "/_ping", versioned=False) as stream:
            stream.read_all()
            h = stream.headers
        return PingResult(
            api_version=h.get("api-version", ""),
            os_type=h.get("ostype", ""),
            experimental=h.get("docker-experimental", "").lower() == "true",
            builder_version=h.get("builder-version", ""),
        )

    def version(self) -> dict[str, Any]:
        return dict(self._call("GET", "/version") or {})

    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "/info") or {})

    # ------------------------------------------------------------------ containers

    def containers(
        self,
        all: bool = False,
        limit: int | None = None,
        size: bool = False,
        filters: Mapping[str, list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /containers/json``: the list ``ps`` shows."""
        params: dict[str, Any] = {"all": all or None, "size": size or None}
        if limit is not None and limit > 0:
            params["limit"] = limit
        if filters:
            params["filters"] = dict(filters)
        return list(self._call("GET", "/containers/json", params) or [])

    def create_container(
        self, config: Mapping[str, Any], name: str | None = None, platform: str | None = None
    ) -> CreateResult:
        """``POST /containers/create``; ``config`` is the create JSON (with HostConfig)."""
        doc = self._call(
            "POST", "/containers/create", {"name": name or None, "platform": platform}, dict(config)
        )
        return CreateResult(doc["Id"], list(doc.get("Warnings") or []))

    def inspect_container(self, container: str, size: bool = False) -> dict[str, Any]:
        return dict(self._call("GET", f"/containers/{_q(container)}/json", {"size": size or None}))

    def start(self, container: str, detach_keys: str | None = None) -> None:
        self._call("POST", f"/containers/{_q(container)}/start", {"detachKeys": detach_keys})

    def stop(self, container: str, timeout: int | None = None, signal: str | None = None) -> None:
        self._call("POST", f"/containers/{_q(container)}/stop", {"t": timeout, "signal": signal})

    def restart(
        self, container: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        self._call("POST", f"/containers/{_q(container)}/restart", {"t": timeout, "signal": signal})

    def rename(self, container: str, name: str) -> None:
        self._call("POST", f"/containers/{_q(container)}/rename", {"name": name})

    def kill(self, container: str, signal: str | None = None) -> None:
        self._call("POST", f"/containers/{_q(container)}/kill", {"signal": signal})

    def pause(self, container: str) -> None:
        self._call("POST", f"/containers/{_q(container)}/pause")

    def unpause(self, container: str) -> None:
        self._call("POST", f"/containers/{_q(container)}/unpause")

    def update_container(self, container: str, body: dict[str, Any]) -> list[str]:
        """``POST /containers/{id}/update``; returns the daemon's warnings."""
        out = self._call("POST", f"/containers/{_q(container)}/update", body=body)
        return list((out or {}).get("Warnings") or [])

    def top(self, container: str, ps_args: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self._call(
            "GET", f"/containers/{_q(container)}/top", {"ps_args": ps_args}
        )
        return out

    def stats(self, container: str) -> dict[str, Any]:
        """One stats object (``stream=false``: two samples a second apart)."""
        out: dict[str, Any] = self._call(
            "GET", f"/containers/{_q(container)}/stats", {"stream": "false"}
        )
        return out

    def stats_stream(self, container: str) -> StreamResponse:
        """``GET /containers/{id}/stats``: JSON lines, one a second."""
        return self._send(
            "GET", f"/containers/{_q(container)}/stats", {"stream": "true"}, timeout=86400 * 365
        )

    def remove_container(
        self, container: str, force: bool = False, volumes: bool = False, link: bool = False
    ) -> None:
        self._call(
            "DELETE",
            f"/containers/{_q(container)}",
            {"force": force or None, "v": volumes or None, "link": link or None},
        )

    def wait(self, container: str, condition: str | None = None) -> WaitResult:
        """Block until the container reaches ``condition`` (not-running, next-exit, removed)."""
        return self.wait_async(container, condition).result()

    def wait_async(self, container: str, condition: str | None = None) -> PendingWait:
        """Send the wait request now; read its result later with ``.result()``."""
        return PendingWait(self, container, condition)

    def resize(self, container: str, height: int, width: int) -> None:
        self._call("POST", f"/containers/{_q(container)}/resize", {"h": height, "w": width})

    def logs(
        self,
        container: str,
        stdout: bool = True,
        stderr: bool = True,
        follow: bool = False,
        timestamps: bool = False,
        tail: str | None = None,
        since: str | None = None,
        until: str | None = None,
        details: bool = False,
    ) -> StreamResponse:
        """``GET /containers/{id}/logs`` as a stream; multiplexed unless the container has a TTY."""
        params = {
            "stdout": stdout,
            "stderr": stderr,
            "follow": follow or None,
            "timestamps": timestamps or None,
            "tail": tail,
            "since": since,
            "until": until,
            "details": details or None,
        }
        return self._send("GET", f"/containers/{_q(container)}/logs", params)

    def attach(
        self,
        container: str,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        detach_keys: str | None = None,
    ) -> Hijacked:
        """Hijack ``POST /containers/{id}/attach``: returns the raw duplex connection.

        Sends ``Connection: Upgrade``/``Upgrade: tcp`` and expects ``101 UPGRADED``; a
        ``200`` with the raw stream (old daemons) is accepted too.
        """
        params = {
            "stream": True,
            "stdin": stdin,
            "stdout": stdout,
            "stderr": stderr,
            "logs": logs or None,
            "detachKeys": detach_keys,
        }
        return self._hijack(self._url(f"/containers/{_q(container)}/attach", params), None)

    def _hijack(self, url: str, body: Any) -> Hijacked:
        """POST ``url`` asking for a connection upgrade; the raw duplex stream."""
        data = json.dumps(body).encode() if body is not None else b""
        content_type = "application/json" if body is not None else "text/plain"
        sock = _transport.open_socket(self.host, self.timeout, half_close=True)
        request = (
            f"POST {url} HTTP/1.1\r\n"
            "Host: docker\r\n"
            "User-Agent: hafen-cli\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: tcp\r\n"
            "\r\n"
        )
        try:
            sock.sendall(request.encode("latin-1") + data)
            head = _transport.read_response_head(sock)
        except OSError:
            sock.close()
            raise _transport.unavailable(self.host)
        except BaseException:
            sock.close()
            raise
        if head.status in (101, 200):
            sock.settimeout(None)
            return Hijacked(sock, head.rest, upgraded=head.status == 101)
        body = head.rest
        try:
            length = int(head.headers.get("content-length", "-1"))
            while length < 0 or len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except (OSError, ValueError):
            pass
        finally:
            sock.close()
        if "chunked" in head.headers.get("transfer-encoding", ""):
            body = _dechunk(body)
        raise _transport.error_from_response(head.status, body, head.reason)

    # ------------------------------------------------------------------ events

    def events(
        self, since: str | None = None, until: str | None = None, filters: str | None = None
    ) -> StreamResponse:
        """``GET /events``: a stream of JSON lines (read with ``read``/iteration)."""
        params = {"since": since, "until": until, "filters": filters}
        # an events stream is quiet for as long as nothing happens: no read timeout
        return self._send("GET", "/events", params, timeout=86400 * 365)

    # ------------------------------------------------------------------ archive

    def stat_path(self, container: str, path: str) -> dict[str, Any]:
        """``HEAD /containers/{id}/archive``: the decoded path stat."""
        with self._send("HEAD", f"/containers/{_q(container)}/archive", {"path": path}) as r:
            raw = r.headers.get("x-docker-container-path-stat", "")
        return _decode_path_stat(raw)

    def get_archive(self, container: str, path: str) -> tuple[StreamResponse, dict[str, Any]]:
        """``GET /containers/{id}/archive``: the tar stream (close it) and the path stat."""
        stream = self._send("GET", f"/containers/{_q(container)}/archive", {"path": path})
        return stream, _decode_path_stat(stream.headers.get("x-docker-container-path-stat", ""))

    def put_archive(
        self,
        container: str,
        path: str,
        tar: Any,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """``PUT /containers/{id}/archive``: extract a tar (bytes or a file) at ``path``."""
        params = {
            "path": path,
            "noOverwriteDirNonDir": no_overwrite_dir_non_dir or None,
            "copyUIDGID": copy_uid_gid or None,
        }
        with self._send("PUT", f"/containers/{_q(container)}/archive", params, tar) as r:
            r.read_all()

    # ------------------------------------------------------------------ exec

    def exec_create(self, container: str, config: dict[str, Any]) -> str:
        """``POST /containers/{id}/exec``: the new exec's id."""
        result = self._call("POST", f"/containers/{_q(container)}/exec", body=config)
        return str(result["Id"])

    def exec_start(
        self, exec_id: str, tty: bool, console_size: tuple[int, int] | None = None
    ) -> Hijacked:
        """Hijack ``POST /exec/{id}/start``: the raw duplex connection."""
        body: dict[str, Any] = {"Detach": False, "Tty": tty}
        if console_size:
            body["ConsoleSize"] = list(console_size)
        return self._hijack(self._url(f"/exec/{_q(exec_id)}/start"), body)

    def exec_start_detached(self, exec_id: str) -> None:
        self._call("POST", f"/exec/{_q(exec_id)}/start", body={"Detach": True, "Tty": False})

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/exec/{_q(exec_id)}/json"))

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self._call("POST", f"/exec/{_q(exec_id)}/resize", {"h": height, "w": width})

    # ------------------------------------------------------------------ images

    def images(
        self,
        all: bool = False,
        digests: bool = False,
        filters: Mapping[str, list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"all": all or None, "digests": digests or None}
        if filters:
            params["filters"] = dict(filters)
        return list(self._call("GET", "/images/json", params) or [])

    def inspect_image(self, image: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/images/{_q(image)}/json"))

    def remove_image(
        self, image: str, force: bool = False, noprune: bool = False
    ) -> list[dict[str, str]]:
        """``DELETE /images/{name}``: the list of ``{"Untagged": ...}`` / ``{"Deleted": ...}``."""
        result = self._call(
            "DELETE", f"/images/{_q(image)}", {"force": force or None, "noprune": noprune or None}
        )
        return list(result or [])

    def tag(self, image: str, repo: str, tag: str | None = None) -> None:
        self._call("POST", f"/images/{_q(image)}/tag", {"repo": repo, "tag": tag})

    # ------------------------------------------------------------------ volumes

    def volumes(self, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"filters": dict(filters)} if filters else {}
        doc = self._call("GET", "/volumes", params) or {}
        return list(doc.get("Volumes") or [])

    def create_volume(
        self,
        name: str | None = None,
        driver: str | None = None,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "Name": name or "",
            "Driver": driver or "local",
            "DriverOpts": dict(options or {}),
            "Labels": dict(labels or {}),
        }
        return dict(self._call("POST", "/volumes/create", None, body))

    def inspect_volume(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/volumes/{_q(name)}"))

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._call("DELETE", f"/volumes/{_q(name)}", {"force": force or None})

    def prune_volumes(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"filters": dict(filters)} if filters else {}
        return dict(self._call("POST", "/volumes/prune", params) or {})

    # ------------------------------------------------------------------ networks

    def networks(self, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"filters": dict(filters)} if filters else {}
        return list(self._call("GET", "/networks", params) or [])

    def create_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/networks/create", None, dict(body)))

    def inspect_network(self, network: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/networks/{_q(network)}"))

    def remove_network(self, network: str) -> None:
        self._call("DELETE", f"/networks/{_q(network)}")

    def connect_network(
        self, network: str, container: str, ip: str = "", aliases: list[str] | None = None
    ) -> None:
        endpoint: dict[str, Any] = {"Aliases": list(aliases or []) or None}
        if ip:
            endpoint["IPAMConfig"] = {"IPv4Address": ip}
        body = {"Container": container, "EndpointConfig": endpoint}
        self._call("POST", f"/networks/{_q(network)}/connect", None, body)

    def disconnect_network(self, network: str, container: str, force: bool = False) -> None:
        body = {"Container": container, "Force": force}
        self._call("POST", f"/networks/{_q(network)}/disconnect", None, body)

    def prune_networks(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"filters": dict(filters)} if filters else {}
        return dict(self._call("POST", "/networks/prune", params) or {})

    # ------------------------------------------------------------------ streams

    def commit(self, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /commit``: the new image's ``{"Id": ...}``."""
        return dict(self._call("POST", "/commit", params) or {})

    def container_changes(self, container: str) -> list[dict[str, Any]] | None:
        result = self._call("GET", f"/containers/{_q(container)}/changes")
        return list(result) if result else None

    def export_container(self, container: str) -> StreamResponse:
        """``GET /containers/{id}/export``: the tar stream (the caller closes it)."""
        return self._send("GET", f"/containers/{_q(container)}/export")

    def image_history(self, image: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/images/{_q(image)}/history") or [])

    def prune_images(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        params = {"filters": dict(filters)} if filters else None
        return dict(self._call("POST", "/images/prune", params) or {})

    def save_images(self, names: list[str]) -> StreamResponse:
        """``GET /images/get``: the archive as a stream (the caller closes it)."""
        return self._send("GET", "/images/get", {"names": tuple(names)})

    def load_images(self, archive: Any, quiet: bool = False) -> list[dict[str, Any]]:
        """``POST /images/load`` with a file object as the body; the JSON messages."""
        with self._send("POST", "/images/load", {"quiet": quiet or None}, archive) as stream:
            return list(json_messages(iter(stream)))

    def login(self, username: str, password: str, server: str) -> dict[str, Any]:
        """``POST /auth``: the daemon checks the credentials against the registry."""
        body = {"username": username, "password": password, "serveraddress": server}
        return dict(self._call("POST", "/auth", body=body) or {})

    def build(
        self,
        context: BinaryIO | Iterable[bytes],
        params: Params = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``POST /build`` with the context tar streamed from ``context`` (a file, or an
        iterable of chunks); the JSON messages.

        No read timeout: a step may be silent for as long as it runs.
        """
        stream = self._send("POST", "/build", params, context, headers=headers,
                            timeout=86400 * 365)  # fmt: skip
        try:
            yield from json_messages(iter(stream))
        finally:
            stream.close()

    def build_context_session(self, key: str, entries: list[list[Any]]) -> dict[str, Any]:
        """``POST /hafen/build/context``: the session and the members the daemon needs."""
        return dict(
            self._call("POST", "/hafen/build/context", body={"Key": key, "Entries": entries}) or {}
        )

    def prune_builder(self) -> dict[str, Any]:
        return dict(self._call("POST", "/build/prune") or {})

    def post_stream(
        self,
        path: str,
        params: Params = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """POST ``path`` and yield the JSON messages of its progress stream as they come.

        Messages are yielded as sent, errors included (``{"error": ...}``): the caller
        decides how to show them. The connection is closed when the generator ends.
        """
        stream = self._send("POST", path, params, body, headers=headers)
        try:
            yield from json_messages(iter(stream))
        finally:
            stream.close()


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        line, _, rest = body.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def _decode_path_stat(raw: str) -> dict[str, Any]:
    import base64

    if not raw:
        return {}
    try:
        value = json.loads(base64.b64decode(raw))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
