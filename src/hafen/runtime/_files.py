"""Whole-file reads and writes on raw file descriptors, for the runtime's small files.

Owns ``read_bytes``, ``read_text``, ``write_text`` and ``write_new``. A container's start
reads and writes some hundred small files (cgroup knobs, /proc entries, its state), and
``open()`` costs more than the work on each: an ``fstat``, an ``isatty`` ioctl and an
``lseek`` on top of the ``open``, and three Python objects. Here, each is ``open``,
one ``read`` or ``write``, ``close``.

A kernel file (cgroupfs, procfs, sysfs) takes each ``write`` as one value: ``write_text``
writes its value in a single call and reports a short write as an error, so a value is
never split.
"""

from __future__ import annotations

import errno

from hafen.runtime import _os as os

_READ_SIZE = 65536


def read_bytes(path: str) -> bytes:
    """The whole file; ``OSError`` as ``open()`` raises it (``FileNotFoundError``...)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _READ_SIZE)
        if len(data) < _READ_SIZE:
            return data
        chunks = [data]
        while data:
            data = os.read(fd, _READ_SIZE)
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    return read_bytes(path).decode()


def write_text(path: str, value: str) -> None:
    """Write ``value`` in one ``write`` call (a kernel knob), as ``open(path, "w")``
    opens: created if missing (a plain directory standing in for cgroupfs in tests),
    truncated (which kernel files ignore)."""
    data = value.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(errno.EIO, f"short write: {written} of {len(data)} bytes", path)


def write_new(path: str, data: bytes, mode: int = 0o644) -> None:
    """Create or truncate the regular file ``path`` and write all of ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
