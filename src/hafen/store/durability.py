"""Making many writes durable at once: ``syncfs`` of the filesystem that holds a path.

A pull writes hundreds of files; an ``fsync`` each would cost a journal commit apiece.
Instead the writers leave their data in the page cache, one ``syncfs`` flushes it all,
and only then are the results renamed into place (and synced once more) — so after a
machine crash nothing visible is ever partially written. Large files start their
writeback as soon as they are written, so that final flush has little left to do.

The rule every path that publishes a blob, a layer or an image record follows (pull,
load, import, commit, bootstrap, build, both snapshotters):

1. write (no fsync), 2. ``flush`` what was written, 3. rename it into place,
4. ``flush`` again (the renames), 5. record it in the metadata database.

Callers reach ``syncfs`` through this module (``durability.syncfs``/``flush``), so one
spy on ``syncfs`` sees every flush.
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


def flush(*paths: Path) -> None:
    """``syncfs`` each filesystem that holds one of ``paths``, once per filesystem (the
    content store and the snapshots share one in practice)."""
    seen: set[int] = set()
    for path in paths:
        dev = os.stat(path).st_dev
        if dev not in seen:
            seen.add(dev)
            syncfs(path)


def same_filesystem(a: Path, b: Path) -> bool:
    """Whether one ``syncfs`` of ``a`` flushes ``b`` too."""
    return os.stat(a).st_dev == os.stat(b).st_dev


def start_writeback(fd: int) -> None:
    """Start writing a file's dirty pages to disk now, without waiting (the kernel's
    ``POSIX_FADV_DONTNEED`` does that first): the final ``syncfs`` then has less left
    to wait for, and the disk works while the rest of a pull is still arriving."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # only advice
