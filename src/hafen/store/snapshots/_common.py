"""Helpers both snapshotters share: directory naming, atomic publication, disk usage."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hafen.errors import InvalidArgument
from hafen.store import durability


def key_dir_name(key: str) -> str:
    """A snapshot key or chain id as a safe directory name."""
    name = key[7:] if key.startswith("sha256:") else key
    if not name or "/" in name or name in (".", ".."):
        raise InvalidArgument(f"invalid snapshot key {key!r}")
    return name


def staging_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=".staging-"))


def publish(staging: Path, final: Path, *, flush: bool) -> None:
    """Rename a fully written directory into place (atomic on one filesystem).

    ``flush``: one ``syncfs`` first, so that a directory that becomes visible is never
    partially written after a machine crash. Only a caller that flushed the filesystem
    itself since writing everything in ``staging`` (a pull: one flush for all its layers),
    or whose directory need not survive a crash (a container's writable copy), passes
    False. The rename itself is made durable by the caller's next flush, before it
    records anything."""
    if flush:
        durability.syncfs(staging)
    try:
        os.rename(staging, final)
    except OSError:
        if final.exists():  # unpacked concurrently: the other copy is as good
            shutil.rmtree(staging, ignore_errors=True)
            return
        raise


def sweep_staging(parent: Path) -> None:
    """Remove staging dirs left by a crash mid-unpack."""
    if parent.exists():
        for entry in parent.iterdir():
            if entry.name.startswith(".staging-"):
                shutil.rmtree(entry, ignore_errors=True)


def disk_usage(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total
