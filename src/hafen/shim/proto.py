"""Names and wire formats shared by the shim and its client.

Owns the file names inside a state dir, the launch's bundle-ready byte, the attach frame header
(``[stream:1][0,0,0][len:4 BE]``, as Docker multiplexes attach streams), RFC 3339 UTC
timestamps with nanoseconds, and a way to reach a unix socket whose path is longer
than ``sun_path`` allows. Standard library only, and cheap to import.
"""

from __future__ import annotations

import os
import struct
import time

SOCKET_NAME = "shim.sock"
CONSOLE_SOCKET_NAME = "console.sock"
PID_FILE_NAME = "init.pid"
INFO_FILE_NAME = "shim.json"
EXIT_FILE_NAME = "exit.json"
SHIM_LOG_NAME = "shim.log"
RUNTIME_LOG_NAME = "runtime.log"

# an --await-bundle launch: the daemon's byte on the report connection once the bundle
# (config.json, the mounted rootfs) is there
BUNDLE_READY = b"\x01"

STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size

# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def frame(stream: int, payload: bytes) -> bytes:
    """One attach frame: the 8-byte header followed by the payload."""
    return _HEADER.pack(stream, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(stream, payload length) from an 8-byte frame header."""
    stream, size = _HEADER.unpack(header)
    return stream, size


def rfc3339_nano(ns: int | None = None) -> str:
    """UTC time as RFC 3339 with nine fractional digits and ``Z`` (Docker's fixed form)."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def reachable_path(path: str) -> tuple[str, int | None]:
    """A path ``connect``/``bind`` accept for the socket at ``path``, and an fd to close.

    Paths too long for ``sun_path`` go through ``/proc/self/fd/<dirfd>/<name>``, which
    the kernel resolves like the real path. The caller closes the returned fd (if any)
    once the socket is connected or bound.
    """
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path, None
    parent, name = os.path.split(path)
    fd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd
