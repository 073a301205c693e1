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


def image_service(kind: str, tmp_path: Path) -> Iterator[ImageService]:
    """An ImageService on the ``kind`` ("overlay" or "vfs") snapshotter, for a fixture to
    yield from; skips where overlayfs cannot be mounted."""
    (tmp_path / "snapshots").mkdir()
    if kind == "overlay":
        if not overlay_supported(tmp_path / "snapshots"):
            pytest.skip("overlayfs cannot be mounted here")
        snapshotter: OverlaySnapshotter | VfsSnapshotter = OverlaySnapshotter(
            tmp_path / "snapshots" / "overlay"
        )
    else:
        snapshotter = VfsSnapshotter(tmp_path / "snapshots" / "vfs")
    metadata = MetadataStore(tmp_path / "metadata.db")
    yield ImageService(FileContentStore(tmp_path / "content"), metadata, snapshotter)
    metadata.close()
