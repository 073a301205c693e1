"""Making many writes durable at once: ``syncfs`` of the filesystem that holds a path.

A pull writes hundreds of files; an ``fsync`` each would cost a journal commit apiece.
Instead the writers leave their data in the page cache, one ``syncfs`` flushes it all,
and only then are the results renamed into place (and synced once more) — so after a
machine crash nothing visible is ever partially written.
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
