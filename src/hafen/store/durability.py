"""Making many writes durable at once: ``syncfs`` of the filesystem that holds a path.

A pull writes hundreds of files; an ``fsync`` each would cost a journal commit apiece.
Instead the writers leave their data in the page cache, one ``syncfs`` flushes it all,
and only then are the results renamed into place (and synced once more) — so after a
machine crash nothing visible is ever partially written. Large files start their
writeback as soon as they are written, so that final flush has little left to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def syncfs(path: Path) -> None:
    """Flush the whole filesystem ``path`` lives on (falls back to ``sync``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def start_writeback(fd: int) -> None:
    """Start writing a file's dirty pages to disk now, without waiting (the kernel's
    ``POSIX_FADV_DONTNEED`` does that first): the final ``syncfs`` then has less left
    to wait for, and the disk works while the rest of a pull is still arriving."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # only advice
