"""TLS for a ``tcp://`` daemon, chosen as the docker CLI chooses it.

Owns the client side of dockerd-style mutual TLS: ``--tls`` (encrypt, trust anything),
``--tlsverify`` (encrypt and verify the daemon against ``--tlscacert``), the client
certificate (``--tlscert``/``--tlskey``) the daemon checks, and the environment the
docker CLI reads (``DOCKER_TLS_VERIFY``, ``DOCKER_TLS``, ``DOCKER_CERT_PATH``; the
``HAFEN_`` names win where both are set). Files default to ``ca.pem``, ``cert.pem`` and
``key.pem`` in the cert path (``~/.docker``); a default file that does not exist is left
out, a file named on the command line must exist.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Mapping

from hafen import errors
from hafen.records import record

TLS_PORT = 2376  # dockerd's port for tcp:// with TLS (2375 without)


@record(frozen=True)
class TLSOptions:
    """What a connection to the daemon is secured with."""

    verify: bool
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        """The client's SSL context; InvalidArgument names a file that cannot be used."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            if not self.ca:
                raise errors.InvalidArgument("--tlsverify needs a CA certificate (--tlscacert)")
            try:
                ctx.load_verify_locations(cafile=self.ca)
            except (OSError, ssl.SSLError) as e:
                raise errors.InvalidArgument(
                    f"could not read CA certificate {self.ca!r}: {_reason(e)}"
                ) from e
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert or self.key:
            if not (self.cert and self.key):
                raise errors.InvalidArgument(
                    "a client certificate needs both --tlscert and --tlskey"
                )
            try:
                ctx.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as e:
                raise errors.InvalidArgument(
                    f"could not load X509 key pair ({self.cert}, {self.key}): {_reason(e)}"
                ) from e
        return ctx


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def tls_options(
    *,
    tls: bool = False,
    verify: bool = False,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> TLSOptions | None:
    """The TLS a client uses from its flags and environment; None for plain connections."""
    environ = os.environ if env is None else env

    def var(name: str) -> str:
        return environ.get(f"HAFEN_{name}") or environ.get(f"DOCKER_{name}") or ""

    verify = verify or bool(var("TLS_VERIFY"))
    if not (tls or verify or var("TLS") or ca or cert or key):
        return None
    cert_path = var("CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")

    def pick(given: str | None, default: str) -> str | None:
        if given:
            if not os.path.exists(given):
                raise errors.InvalidArgument(f"TLS file {given!r} does not exist")
            return given
        path = os.path.join(cert_path, default)
        return path if os.path.exists(path) else None

    return TLSOptions(
        verify=verify, ca=pick(ca, "ca.pem"), cert=pick(cert, "cert.pem"), key=pick(key, "key.pem")
    )


class TLSStream:
    """A TLS client stream whose write side can end alone, for hijacked connections.

    ``SSLSocket`` cannot half-close: its ``shutdown`` ends the session and its
    ``unwrap`` waits for the peer's close_notify. Here the TLS state is an ``SSLObject``
    over memory buffers, so ``close_write`` sends close_notify and reading goes on, as
    Go's ``tls.Conn.CloseWrite`` does for the docker CLI (hafend keeps writing after
    one). One reader thread and one writer thread may use it at once: the TLS state is
    under a lock, never held while waiting on the network for input.
    """

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_hostname: str) -> None:
        self._sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = ctx.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._lock = threading.Lock()
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed()
        self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self._sock.sendall(data)

    def _feed(self) -> bool:
        raw = self._sock.recv(65536)
        if raw:
            self._in.write(raw)
        else:
            self._in.write_eof()
        return bool(raw)

    def recv(self, size: int = 65536) -> bytes:
        while True:
            with self._lock:
                try:
                    data = self._tls.read(size)
                    self._flush()  # post-handshake messages may want an answer
                    return data
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
            raw = self._sock.recv(65536)  # outside the lock: the writer goes on meanwhile
            with self._lock:
                if raw:
                    self._in.write(raw)
                else:
                    self._in.write_eof()

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._tls.write(data)
            self._flush()

    def close_write(self) -> None:
        """Send close_notify: the peer sees the end of our data; we can still read."""
        with self._lock:
            try:
                self._tls.unwrap()
            except ssl.SSLWantReadError:  # the alert is out; the peer's is not needed
                pass
            self._flush()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def close(self) -> None:
        self._sock.close()


__all__ = ["TLS_PORT", "TLSOptions", "TLSStream", "tls_options"]
