"""Layers and image services the unit tests build on: tar bytes from (name, data) pairs,
and an ImageService on a real overlay or vfs snapshotter under a test's directory."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.images.service import ImageService
from hafen.store.content import FileContentStore
from hafen.store.metadata import MetadataStore
from hafen.store.snapshots import OverlaySnapshotter, VfsSnapshotter, overlay_supported


def tar_of(*entries: tuple[str, bytes | None]) -> bytes:
    """A PAX tar of (name, data) pairs, mtimes fixed; data None makes a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def snapshotter_on(kind: str, tmp_path: Path) -> OverlaySnapshotter | VfsSnapshotter:
    """The ``kind`` ("overlay" or "vfs") snapshotter under ``tmp_path/snapshots``; skips
    where overlayfs cannot be mounted."""
    root = tmp_path / "snapshots"
    root.mkdir()
    if kind == "overlay":
        if not overlay_supported(root):
            pytest.skip(f"overlayfs cannot be mounted under {root}")
        return OverlaySnapshotter(root / "overlay")
    return VfsSnapshotter(root / "vfs")


def image_service(kind: str, tmp_path: Path) -> Iterator[ImageService]:
    """An ImageService on the ``kind`` snapshotter (``snapshotter_on``), for a fixture to
    yield from."""
    snapshotter = snapshotter_on(kind, tmp_path)
    metadata = MetadataStore(tmp_path / "metadata.db")
    yield ImageService(FileContentStore(tmp_path / "content"), metadata, snapshotter)
    metadata.close()
