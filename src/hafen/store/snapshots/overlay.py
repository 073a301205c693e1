"""The overlay snapshotter: each layer holds only its own diff; mounts stack them.

Layout under ``root``::

    layers/<chain hex>/diff     the layer's own files (whiteouts as overlay whiteouts)
    layers/<chain hex>/parent   the ChainID below it (absent at the base)
    l/<short id>                short symlinks to diff dirs, to keep lowerdir= short
    active/<key>/{upper,work}   a writable snapshot; active/<key>/parent its chain
    empty/                      the lower dir of a snapshot over nothing (scratch)
"""

from __future__ import annotations

import os
import shutil
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

_PAGE_LIMIT = 4000  # mount data must fit in one page


class OverlaySnapshotter:
    name = "overlay"

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("layers", "l", "active", "empty"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        sweep_staging(root / "layers")
        sweep_staging(root / "active")

    def _layer(self, chain_id: str) -> Path:
        return self.root / "layers" / key_dir_name(chain_id)

    def has_layer(self, chain_id: str) -> bool:
        return (self._layer(chain_id) / "diff").is_dir()

    def _short_link(self, chain_id: str) -> Path:
        return self.root / "l" / key_dir_name(chain_id)[:16]

    def stage_layer(self, stream: BinaryIO, parent: str | None) -> tuple[Path, LayerStats]:
        """Unpack a layer (whose parent will be ``parent``) into a staging dir without
        needing that parent yet (an overlay layer holds only its own diff), so a pull can
        unpack its layers in parallel; the caller flushes them all at once (``sync``) and
        ``publish_staged`` then puts each in place in chain order. A crash leaves only a
        staging dir, swept at the next start."""
        staging = staging_dir(self.root / "layers")
        try:
            stats = unpack_layer(stream, staging / "diff", whiteouts="overlay")
            if parent is not None:  # written now, so that the caller's flush covers it
                (staging / "parent").write_text(parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, stats

    def publish_staged(self, chain_id: str, staging: Path, *, flushed: bool) -> None:
        """Put a staged layer in place (its parent must be). ``flushed``: the caller
        flushed this filesystem since staging it; otherwise it is flushed here first."""
        parent_file = staging / "parent"
        parent = parent_file.read_text().strip() if parent_file.exists() else None
        try:
            if parent is not None and not self.has_layer(parent):
                raise NotFound(f"parent layer {parent} is not unpacked")
            self._link(chain_id)
            publish(staging, self._layer(chain_id), flush=not flushed)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _link(self, chain_id: str) -> None:
        """The short ``l/`` link to a layer's diff, made before the layer is renamed into
        place: a symlink is metadata only, which the journal keeps with (and before) the
        rename, so a layer that survives a crash has its link."""
        link = self._short_link(chain_id)
        if not link.is_symlink():
            os.symlink(f"../layers/{key_dir_name(chain_id)}/diff", link)

    def discard_staged(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def apply_layer(self, chain_id: str, parent: str | None, stream: BinaryIO) -> LayerStats:
        """Unpack a layer, flush it (one ``syncfs``) and rename it into place."""
        if parent is not None and not self.has_layer(parent):
            raise NotFound(f"parent layer {parent} is not unpacked")
        staging = staging_dir(self.root / "layers")
        try:
            stats = unpack_layer(stream, staging / "diff", whiteouts="overlay")
            if parent is not None:
                (staging / "parent").write_text(parent)
            self._link(chain_id)
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

        The caller vouches that ``chain_id`` is its parent's chain plus the DiffID of
        exactly this snapshot's changes (it exported them first). Overlay's upper dir *is*
        the diff, so this is a rename, not a copy.
        """
        active = self._active(key)
        if not (active / "upper").is_dir():
            raise NotFound(f"snapshot {key} does not exist")
        if self.has_layer(chain_id):
            return
        staging = staging_dir(self.root / "layers")
        try:
            os.rename(active / "upper", staging / "diff")
            parent = self.parent(key)
            if parent is not None:
                (staging / "parent").write_text(parent)
            self._link(chain_id)
            # what was written into the upper dir (through the mount or straight into
            # it) is flushed before the layer becomes visible
            publish(staging, self._layer(chain_id), flush=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def sync(self) -> None:
        """Flush everything written under ``root`` (one ``syncfs``)."""
        durability.syncfs(self.root)

    def remove_layer(self, chain_id: str) -> None:
        self._short_link(chain_id).unlink(missing_ok=True)
        shutil.rmtree(self._layer(chain_id), ignore_errors=True)

    def _chain(self, chain_id: str | None) -> list[str]:
        """Chain ids from top to bottom."""
        chain: list[str] = []
        while chain_id:
            if not self.has_layer(chain_id):
                raise NotFound(f"layer {chain_id} is not unpacked")
            chain.append(chain_id)
            parent_file = self._layer(chain_id) / "parent"
            chain_id = parent_file.read_text().strip() if parent_file.exists() else None
        return chain

    def _active(self, key: str) -> Path:
        return self.root / "active" / key_dir_name(key)

    def prepare(self, key: str, parent_chain_id: str | None) -> None:
        self._chain(parent_chain_id)  # every layer must be there
        staging = staging_dir(self.root / "active")
        (staging / "upper").mkdir()
        (staging / "work").mkdir()
        if parent_chain_id:
            (staging / "parent").write_text(parent_chain_id)
        try:
            os.rename(staging, self._active(key))
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise InvalidArgument(f"snapshot {key} already exists")

    def mount(self, key: str, target: Path, volatile: bool = False) -> None:
        """Mount the snapshot at ``target``; ``volatile``: with overlay's ``volatile``
        option (Linux 5.10+, else plain), whose unmount does not sync the upper
        filesystem (a syncfs of the whole disk: 0.3 to tens of ms on a busy host)."""
        active = self._active(key)
        if not active.exists():
            raise NotFound(f"snapshot {key} does not exist")
        parent_file = active / "parent"
        parent = parent_file.read_text().strip() if parent_file.exists() else None
        lowers = [str(self._short_link(c)) for c in self._chain(parent)] or [
            str(self.root / "empty")
        ]
        data = f"lowerdir={':'.join(lowers)},upperdir={active / 'upper'},workdir={active / 'work'}"
        if len(data) > _PAGE_LIMIT:
            raise InvalidArgument(
                f"image has too many layers ({len(lowers)}) for one overlay mount"
            )
        # a volatile mount leaves work/work/incompat/volatile behind, and overlay refuses
        # to mount that work dir again until it is gone; only disposable snapshots are
        # mounted volatile, so their content need not be vouched for after a crash
        marker = active / "work" / "work" / "incompat" / "volatile"
        if marker.exists():
            shutil.rmtree(marker, ignore_errors=True)
        if volatile:
            try:
                _mount.mount("overlay", str(target), "overlay", 0, data + ",volatile")
                return
            except OSError:
                pass  # an older kernel: mount it plainly
        _mount.mount("overlay", str(target), "overlay", 0, data)

    def unmount(self, target: Path) -> None:
        try:
            _mount.unmount(str(target))
        except OSError:
            _mount.unmount(str(target), detach=True)  # busy: let it go when the last user leaves

    def remove(self, key: str) -> None:
        active = self._active(key)
        if not active.exists():
            return
        try:
            shutil.rmtree(active)
        except OSError as e:
            raise HafenError(f"removing snapshot {key}: {e}")

    def usage(self, key: str) -> int:
        return disk_usage(self._active(key) / "upper")

    def upper_dir(self, key: str) -> Path:
        return self._active(key) / "upper"

    def layer_dir(self, chain_id: str) -> Path:
        """That layer's own diff (whiteouts as overlay whiteouts)."""
        return self._layer(chain_id) / "diff"

    def parent(self, key: str) -> str | None:
        """The ChainID a snapshot was prepared on (None over nothing)."""
        parent_file = self._active(key) / "parent"
        return parent_file.read_text().strip() if parent_file.exists() else None

    def lower_dirs(self, key: str) -> list[Path]:
        """The diff dirs under a snapshot, top first."""
        return [self.layer_dir(c) for c in self._chain(self.parent(key))]
