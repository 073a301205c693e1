"""Snapshots in, layers out: the filesystem side of build steps.

``LayerWriter`` prepares a writable snapshot on a chain, lets a step change it (COPY,
ADD, WORKDIR) or takes a finished RUN container's, and turns the changes into an
uncompressed layer blob (its digest is the DiffID) whose snapshot becomes the layer
itself: storing the image then unpacks nothing. Blob and snapshot are flushed by one
``syncfs`` per layer before either is renamed into place; the image record that points
at them follows store_image's flush of the renames. Mount points the runtime created for
``RUN --mount`` targets are left out of the layer, as BuildKit leaves them out.
Everything here blocks: callers run it in worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import secrets
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from hafen.build.copy import _clean, resolve_in_root
from hafen.build.runstep import MOUNT_POINTS
from hafen.images.service import ImageService
from hafen.store import durability
from hafen.store.changes import export_changes
from hafen.store.content import ContentStore
from hafen.store.snapshots.protocol import Snapshotter


class LayerWriter:
    """Writes build steps' snapshots as layers (see the module docstring)."""

    def __init__(
        self,
        snapshotter: Snapshotter,
        content: ContentStore,
        images: ImageService,
        work_dir: Path,
    ) -> None:
        self.snapshotter = snapshotter
        self.content = content
        self.images = images
        self.work_dir = work_dir

    def export(
        self,
        snapshot_key: str,
        mount_targets: list[str] | None = None,
        commit_snapshot: Callable[[str, int], None] | None = None,
    ) -> tuple[str, int]:
        """The snapshot's changes as an uncompressed layer blob: (digest = DiffID, size).

        Mount points the runtime had to create for ``--mount`` targets (and directories
        made only to hold them) are left out, as BuildKit leaves them out.
        ``commit_snapshot(diff_id, size)``: called before the blob is committed, to make
        the snapshot the layer itself; its flush then covers the blob's data too, so a
        step costs one ``syncfs``.
        """
        skip = set(MOUNT_POINTS)
        if mount_targets:
            from hafen.store.changes import changes

            found = changes(self.snapshotter, snapshot_key)
            added = {c.path.lstrip("/") for c in found if c.kind == "A"}
            for target in mount_targets:
                rel = posixpath.normpath(target).lstrip("/")
                while rel and rel in added:
                    others = [a for a in added if a.startswith(rel + "/") and a not in skip]
                    if any(not any(o == s or o.startswith(s + "/") for s in skip) for o in others):
                        break
                    skip.add(rel)
                    rel = posixpath.dirname(rel)

        def exclude(rel: str) -> bool:
            return rel in skip

        with self.content.writer() as writer:
            stats = export_changes(self.snapshotter, snapshot_key, writer,  # type: ignore[arg-type]
                                   exclude=exclude)  # fmt: skip
            digest = writer.verify(durable=False)
            assert digest == stats.diff_id
            if commit_snapshot is None:
                # one syncfs for the blob's data (not an fsync apiece); the image record
                # that will point at it comes after store_image's own flush
                self.content.sync()
            else:
                commit_snapshot(digest, stats.size)  # flushes the snapshot, blob with it
                if not durability.same_filesystem(self.content.root, self.snapshotter.root):
                    self.content.sync()
            writer.commit(durable=False)
        return digest, stats.size

    def mount_chain(self, chain: str | None) -> tuple[Path, Callable[[], None]]:
        key = "build-" + secrets.token_hex(16)
        target = Path(tempfile.mkdtemp(dir=self.work_dir, prefix="mnt-"))
        self.snapshotter.prepare(key, chain)
        try:
            self.snapshotter.mount(key, target)
        except BaseException:
            self.snapshotter.remove(key)
            os.rmdir(target)
            raise

        def release() -> None:
            self.snapshotter.unmount(target)
            self.snapshotter.remove(key)
            with contextlib.suppress(OSError):
                os.rmdir(target)

        return target, release

    def write_step(
        self, chain: str | None, action: Callable[[Path], None]
    ) -> tuple[str, int] | None:
        """Run ``action`` on a writable snapshot of ``chain``; its changes as a layer (or None)."""
        return self.write_step_direct(chain, lambda root, _upper, _detach: action(root))

    def write_step_direct(
        self, chain: str | None, action: Callable[[Path, Path | None, Callable[[], None]], None]
    ) -> tuple[str, int] | None:
        """``write_step`` for an action that may finish by writing into the overlay upper
        dir itself: ``action(mounted_root, upper_dir_or_None, detach)``, where ``detach()``
        unmounts the snapshot first (overlayfs forbids changing its layers while mounted).
        A new file in a directory that is already in the upper dir is exactly what overlay
        would have written there, without overlay's cost per file."""
        key = "build-" + secrets.token_hex(16)
        target = Path(tempfile.mkdtemp(dir=self.work_dir, prefix="mnt-"))
        self.snapshotter.prepare(key, chain)
        try:
            self.snapshotter.mount(key, target)
            mounted = True

            def detach() -> None:
                nonlocal mounted
                if mounted:
                    mounted = False
                    self.snapshotter.unmount(target)

            upper = self.snapshotter.upper_dir(key) if self.snapshotter.name == "overlay" else None
            try:
                action(target, upper, detach)
            finally:
                detach()
            if not self.changed(key):
                return None
            return self.export(
                key,
                commit_snapshot=lambda diff_id, size: self.commit_snapshot(
                    key, chain, (diff_id, size)
                ),
            )
        finally:
            self.snapshotter.remove(key)
            with contextlib.suppress(OSError):
                os.rmdir(target)

    def changed(self, key: str) -> bool:
        """Whether the snapshot differs from its parent: on overlay, whether the upper dir
        holds anything at all (the change walk would list exactly that)."""
        if self.snapshotter.name == "overlay":
            with os.scandir(self.snapshotter.upper_dir(key)) as entries:
                return any(True for _ in entries)
        from hafen.store.changes import changes

        return bool(changes(self.snapshotter, key))

    def commit_snapshot(self, key: str, parent_chain: str | None, layer: tuple[str, int]) -> None:
        """Make the written snapshot the layer itself, so storing the image unpacks nothing.

        The snapshotter flushes the snapshot (one ``syncfs``) before renaming it into
        place. Nothing is recorded here: the image store learns the layer's size and
        records the layer with the image, after its flush of the renames.
        """
        diff_id, size = layer
        chain = (
            diff_id
            if parent_chain is None
            else "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()
        )
        if self.snapshotter.has_layer(chain):
            return
        self.snapshotter.commit(key, chain)
        self.images.note_unrecorded_layer(chain, size)

    def empty_layer(self) -> tuple[str, int]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT):
            pass
        digest = self.content.put_bytes(buf.getvalue())
        return digest, len(buf.getvalue())

    def is_dir_in(self, chain: str | None, path: str) -> bool:
        if chain is None:
            return path == "/"
        root, release = self.mount_chain(chain)
        try:
            return resolve_in_root(root, _clean(path, "image"), follow_last=True).is_dir()
        finally:
            release()
