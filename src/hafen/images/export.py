"""``export``: a container's whole filesystem as one tar stream.

vfs snapshots are full trees and are tarred as they are. An overlay snapshot is mounted
a second time, read-only, with its upper dir as the topmost *lower* dir (no upper, no
work dir: safe while the container runs and writes), so overlay itself applies the
whiteouts; the mount is removed when the tar is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from hafen.errors import InvalidArgument
from hafen.store import _mount
from hafen.store.archive import tar_directory

_PAGE_LIMIT = 4000  # mount data must fit in a page


def export_snapshot(snapshotter: Any, key: str, out: BinaryIO, spool: Path) -> None:
    """Write the filesystem of snapshot ``key`` as a tar to ``out`` (blocking)."""
    if getattr(snapshotter, "name", "") == "vfs":
        tar_directory(snapshotter.upper_dir(key), out)
        return
    lowers = [snapshotter.upper_dir(key), *snapshotter.lower_dirs(key)]
    data = "lowerdir=" + ":".join(str(p) for p in lowers)
    if len(data) > _PAGE_LIMIT:
        raise InvalidArgument(f"container has too many layers ({len(lowers)}) to export")
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool, prefix="export-") as work:
        target = str(Path(work) / "rootfs")
        Path(target).mkdir()
        if len(lowers) < 2:  # overlay needs two lower dirs when it has no upper
            (Path(work) / "empty").mkdir()
            data += f":{Path(work) / 'empty'}"
        _mount.mount("overlay", target, "overlay", _mount.MS_RDONLY, data)
        try:
            tar_directory(Path(target), out)
        finally:
            try:
                _mount.unmount(target)
            except OSError:
                _mount.unmount(target, detach=True)
