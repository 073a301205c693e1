"""The vfs snapshotter: every layer and snapshot is a full copy; works on any filesystem.

Slow and big, but needs nothing from the kernel: the fallback where overlayfs cannot
mount. Layout: ``layers/<chain hex>/fs`` (the whole tree up to that layer) and
``active/<key>/fs`` (a container's copy), bind-mounted on ``mount``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO

from hafen.errors import HafenError, InvalidArgument, NotFound
from hafen.store import _mount, durability
from hafen.store.archive import LayerStats, unpack_layer
from hafen.store.snapshots._common import (
    disk_usage,
    key_dir_name,
    publish,
    staging_dir,
    sweep_staging,
)


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy with owners, modes, xattrs, hard links and devices kept (cp -a)."""
    result = subprocess.run(
        ["cp", "-a", "--reflink=auto", f"{src}/.", str(dest)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise HafenError(f"copying {src}: {result.stderr.strip()}")


class VfsSnapshotter:
    name = "vfs"

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("layers", "active"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        sweep_staging(root / "layers")
        sweep_staging(root / "active")

    def _layer(self, chain_id: str) -> Path:
        return self.root / "layers" / key_dir_name(chain_id)

    def has_layer(self, chain_id: str) -> bool:
        return (self._layer(chain_id) / "fs").is_dir()

    def apply_layer(self, chain_id: str, parent: str | None, stream: BinaryIO) -> LayerStats:
        """Copy the parent's tree, unpack the layer over it, flush (one ``syncfs``) and
        rename it into place."""
        if parent is not None and not self.has_layer(parent):
            raise NotFound(f"parent layer {parent} is not unpacked")
        staging = staging_dir(self.root / "layers")
        try:
            (staging / "fs").mkdir()
            if parent is not None:
                _copy_tree(self._layer(parent) / "fs", staging / "fs")
            stats = unpack_layer(stream, staging / "fs", whiteouts="vfs")
            publish(staging, self._layer(chain_id), flush=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return stats

    def active_keys(self) -> list[str]:
        """The writable snapshots that exist (to find what a crash left behind)."""
        return sorted(
            e.name for e in (self.root / "active").iterdir() if not e.name.startswith(".")
        )

    def commit(self, key: str, chain_id: str) -> None:
        """Turn an unmounted writable snapshot into the committed layer ``chain_id``.

        The caller vouches that ``chain_id`` is its parent's chain plus the DiffID of this
        snapshot's changes. A vfs snapshot already holds the whole tree: a rename, after
        one ``syncfs`` (what the container or build step wrote is still in the page cache).
        """
        fs = self._active(key) / "fs"
        if not fs.is_dir():
            raise NotFound(f"snapshot {key} does not exist")
        if self.has_layer(chain_id):
            return
        staging = staging_dir(self.root / "layers")
        try:
            os.rename(fs, staging / "fs")
            publish(staging, self._layer(chain_id), flush=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def sync(self) -> None:
        """Flush everything written under ``root`` (one ``syncfs``)."""
        durability.syncfs(self.root)

    def remove_layer(self, chain_id: str) -> None:
        shutil.rmtree(self._layer(chain_id), ignore_errors=True)

    def _active(self, key: str) -> Path:
        return self.root / "active" / key_dir_name(key)

    def prepare(self, key: str, parent_chain_id: str | None) -> None:
        if self._active(key).exists():
            raise InvalidArgument(f"snapshot {key} already exists")
        if parent_chain_id is not None and not self.has_layer(parent_chain_id):
            raise NotFound(f"layer {parent_chain_id} is not unpacked")
        staging = staging_dir(self.root / "active")
        try:
            (staging / "fs").mkdir()
            if parent_chain_id is not None:
                _copy_tree(self._layer(parent_chain_id) / "fs", staging / "fs")
                (staging / "parent").write_text(parent_chain_id)
            # a container's writable copy is not flushed: what the container writes into
            # it is never synced either (as with any snapshotter), and no record points
            # at it until it is committed, which flushes
            publish(staging, self._active(key), flush=False)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def mount(self, key: str, target: Path, volatile: bool = False) -> None:
        del volatile  # a bind mount has nothing to sync at unmount
        fs = self._active(key) / "fs"
        if not fs.is_dir():
            raise NotFound(f"snapshot {key} does not exist")
        _mount.mount(str(fs), str(target), None, _mount.MS_BIND | _mount.MS_REC)

    def unmount(self, target: Path) -> None:
        try:
            _mount.unmount(str(target))
        except OSError:
            _mount.unmount(str(target), detach=True)

    def remove(self, key: str) -> None:
        shutil.rmtree(self._active(key), ignore_errors=True)

    def usage(self, key: str) -> int:
        return disk_usage(self._active(key) / "fs")

    def upper_dir(self, key: str) -> Path:
        return self._active(key) / "fs"

    def parent(self, key: str) -> str | None:
        """The ChainID a snapshot was prepared on (None over nothing)."""
        parent_file = self._active(key) / "parent"
        return parent_file.read_text().strip() if parent_file.exists() else None

    def layer_dir(self, chain_id: str) -> Path:
        """The whole tree up to that layer."""
        return self._layer(chain_id) / "fs"
